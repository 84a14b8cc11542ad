//! Microsoft Graph (`plugins/msgraph`, Python): the `validationToken` handshake
//! as Graph sends it (a POST with the token form-encoded in the query and an empty
//! `text/plain` body), and change and lifecycle notifications in the shapes of
//! Graph's documentation, checked by `clientState`.

use reqwest::blocking::Response;
use serde_json::{json, Value};

use super::delivery;
use crate::common::{client, Host};

const CLIENT_STATE: &str = "secretClientValue-7c41e2";
const SUBSCRIPTION: &str = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07";
const TENANT: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
const RESOURCE: &str = "Users/622eaaff-0683-4862-9de4-f2ec83c2bd98/Messages/AAMkADMxZmEz";

fn graph_host() -> Host {
    delivery::provider_host("msgraph", &format!("client_state = \"{CLIENT_STATE}\""))
}

fn stored(host: &Host) -> Vec<Value> {
    delivery::stored(host, "msgraph")
}

/// A change notification as Graph sends one for a message.
fn change(change_type: &str, etag: &str, client_state: &str) -> Value {
    json!({
        "subscriptionId": SUBSCRIPTION,
        "subscriptionExpirationDateTime": "2026-12-02T11:00:00.0000000Z",
        "changeType": change_type,
        "resource": RESOURCE,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": RESOURCE,
            "@odata.etag": etag,
            "id": "AAMkADMxZmEz"
        },
        "clientState": client_state,
        "tenantId": TENANT
    })
}

fn notify(host: &Host, notifications: &[Value]) -> Response {
    client()
        .post(host.url("/hooks/msgraph"))
        .header("content-type", "application/json")
        .body(json!({ "value": notifications }).to_string())
        .send()
        .unwrap()
}

#[test]
fn msgraph_echoes_the_validation_token_as_text_on_any_method() {
    let host = graph_host();
    let token = "Validation: Testing client application reachability for subscription \
                 Request-Id: 9f2a1b3c-<&>\"'";
    let encoded = "Validation%3a+Testing+client+application+reachability+for+subscription+\
                   Request-Id%3a+9f2a1b3c-%3C%26%3E%22%27";
    // Graph POSTs it; a GET, and the name in other case, are answered alike.
    let asked = [
        (reqwest::Method::POST, "validationToken"),
        (reqwest::Method::GET, "validationToken"),
        (reqwest::Method::POST, "validationtoken"),
    ];
    for (method, name) in asked {
        let response = client()
            .request(
                method.clone(),
                host.url(&format!("/hooks/msgraph?{name}={encoded}")),
            )
            .header("content-type", "text/plain; charset=utf-8")
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{method}: {}", host.log());
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.text().unwrap(), token, "{method}");
    }
    assert!(stored(&host).is_empty());
}

#[test]
fn msgraph_stores_notifications_whose_client_state_matches_and_refuses_others() {
    let host = graph_host();
    let created = change(
        "created",
        "W/\"CQAAABYAAADkrWGo7bouTKlsgTZMr9KwAAAUWRHf\"",
        CLIENT_STATE,
    );
    let updated = change(
        "updated",
        "W/\"CQAAABYAAADkrWGo7bouTKlsgTZMr9KwAAAUWRHg\"",
        CLIENT_STATE,
    );
    let response = notify(&host, &[created.clone(), updated.clone()]);
    assert_eq!(response.status(), 202, "{}", host.log());
    assert_eq!(response.text().unwrap(), "");
    let events = stored(&host);
    assert_eq!(events.len(), 2, "{events:?}");
    let created_event = events
        .iter()
        .find(|e| e["kind"] == "msgraph.created")
        .unwrap();
    assert_eq!(created_event["subject"], RESOURCE);
    let mut without_secret = created.clone();
    without_secret
        .as_object_mut()
        .unwrap()
        .remove("clientState");
    assert_eq!(
        created_event["payload"], without_secret,
        "the payload keeps no clientState"
    );
    assert!(events.iter().any(|e| e["kind"] == "msgraph.updated"));

    // Graph's retry of the same delivery is stored once; a later change of the same
    // resource (same subscription, resource and change type) is a new event.
    assert_eq!(
        notify(&host, &[created.clone(), updated.clone()]).status(),
        202
    );
    assert_eq!(stored(&host).len(), 2);
    let updated_again = change(
        "updated",
        "W/\"CQAAABYAAADkrWGo7bouTKlsgTZMr9KwAAAUWRHh\"",
        CLIENT_STATE,
    );
    assert_eq!(notify(&host, &[updated_again]).status(), 202);
    assert_eq!(stored(&host).len(), 3);

    // Forged: a wrong, missing or non-string clientState stores nothing.
    let forged = change("deleted", "W/\"x\"", "guessed");
    let response = notify(&host, std::slice::from_ref(&forged));
    assert_eq!(response.status(), 401, "{}", host.log());
    let mut missing = change("deleted", "W/\"y\"", "");
    missing.as_object_mut().unwrap().remove("clientState");
    assert_eq!(notify(&host, &[missing]).status(), 401);
    let mut not_text = change("deleted", "W/\"z\"", "");
    not_text["clientState"] = json!([CLIENT_STATE]);
    assert_eq!(notify(&host, &[not_text]).status(), 401);
    let prefix = change(
        "deleted",
        "W/\"p\"",
        &CLIENT_STATE[..CLIENT_STATE.len() - 1],
    );
    assert_eq!(notify(&host, &[prefix]).status(), 401);
    assert_eq!(
        stored(&host).len(),
        3,
        "forged notifications stored nothing"
    );

    // One delivery may mix subscriptions: only the matching one is kept.
    let genuine = change("deleted", "W/\"d\"", CLIENT_STATE);
    assert_eq!(notify(&host, &[forged, genuine]).status(), 202);
    let events = stored(&host);
    assert_eq!(events.len(), 4);
    assert!(events.iter().any(|e| e["kind"] == "msgraph.deleted"));

    // Malformed deliveries are bad requests.
    let not_json = client()
        .post(host.url("/hooks/msgraph"))
        .body("value=1")
        .send()
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(notify(&host, &[]).status(), 400);
    assert_eq!(stored(&host).len(), 4);
}

#[test]
fn msgraph_lifecycle_notifications_and_notification_ids() {
    let host = graph_host();
    let lifecycle = json!({
        "subscriptionId": SUBSCRIPTION,
        "subscriptionExpirationDateTime": "2026-12-02T11:00:00.0000000Z",
        "tenantId": TENANT,
        "clientState": CLIENT_STATE,
        "lifecycleEvent": "reauthorizationRequired"
    });
    let mut with_id = change("created", "W/\"i\"", CLIENT_STATE);
    with_id["id"] = json!("lsgTZMr9KwAAA");
    assert_eq!(
        notify(&host, &[lifecycle, with_id]).status(),
        202,
        "{}",
        host.log()
    );
    let events = stored(&host);
    let reauthorize = events
        .iter()
        .find(|e| e["kind"] == "msgraph.lifecycle.reauthorizationRequired")
        .unwrap();
    assert_eq!(reauthorize["subject"], SUBSCRIPTION);
    assert!(
        events.iter().any(|e| e["event_id"] == "lsgTZMr9KwAAA"),
        "a notification's own id is the event id: {events:?}"
    );
}
