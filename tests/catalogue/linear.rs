//! `linear` (Rust): `Linear-Signature`, the hex HMAC-SHA256 of the body under the
//! webhook's signing secret, and the body's `webhookTimestamp` (milliseconds)
//! within a minute. Linear publishes no Python signing library, so the test
//! signs by its documented algorithm with the RustCrypto `hmac` crate.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::blocking::Response;
use serde_json::{json, Value};
use sha2::Sha256;

use super::delivery;
use crate::common::Host;

const SECRET: &str = "lin_wh_5gUq4nrjJfbpWiTXHm2ZBCAf0i6kwQGkzE9lDOt8Rccy";
const DELIVERY: &str = "234d1a4e-b617-4388-90fe-adc3633d6b72";

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// An issue created, as Linear's documentation shows it, sent at `timestamp_ms`.
fn issue_created(timestamp_ms: u64) -> Vec<u8> {
    format!(
        r#"{{"action":"create","actor":{{"id":"2e6eea91-1111-0000-9486-acea0603064d","type":"user","name":"Linear app"}},"createdAt":"2020-01-23T12:53:18.084Z","data":{{"id":"2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9","createdAt":"2020-01-23T12:53:18.084Z","updatedAt":"2020-01-23T12:53:18.084Z","number":2,"title":"Bug in the login flow","priority":0,"teamId":"72b2a2dc-6f4f-4423-9d34-24b5bd10634a"}},"url":"https://linear.app/issue/LIN-2/bug-in-the-login-flow","type":"Issue","organizationId":"78a4b6c6-0000-4212-9fa5-be0c3b5bb6b0","webhookTimestamp":{timestamp_ms},"webhookId":"000042e3-d123-4980-b49f-8e140eef9329"}}"#
    )
    .into_bytes()
}

fn host(extra_config: &str) -> Host {
    delivery::provider_host("linear", &format!("secret = \"{SECRET}\"{extra_config}"))
}

fn send(host: &Host, signature: Option<&str>, delivery_id: &str, body: &[u8]) -> Response {
    let headers = [
        ("Linear-Signature", signature),
        ("Linear-Delivery", Some(delivery_id)),
        ("Linear-Event", Some("Issue")),
    ];
    delivery::post(host, "linear", &headers, body)
}

fn send_signed(host: &Host, secret: &str, body: &[u8]) -> Response {
    send(host, Some(&signature(secret, body)), DELIVERY, body)
}

fn stored(host: &Host) -> Vec<Value> {
    delivery::stored(host, "linear")
}

#[test]
fn linear_stores_signed_fresh_deliveries_once() {
    let host = host("");
    let body = issue_created(now_ms());

    let response = send_signed(&host, SECRET, &body);
    assert_eq!(response.status(), 200, "{}", host.log());
    assert_eq!(
        response.json::<Value>().unwrap(),
        json!({"ok": true, "event": {"id": DELIVERY, "kind": "linear.Issue.create"}})
    );
    // Linear retries a failed delivery under the same Linear-Delivery.
    assert_eq!(send_signed(&host, SECRET, &body).status(), 200);

    let events = stored(&host);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = delivery::event(&events, DELIVERY);
    assert_eq!(event["kind"], "linear.Issue.create");
    assert_eq!(event["subject"], "2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9");
    assert_eq!(
        event["payload"],
        serde_json::from_slice::<Value>(&body).unwrap()
    );
}

#[test]
fn linear_refuses_forged_tampered_stale_and_unsigned_deliveries() {
    let host = host("");
    let now = now_ms();
    let body = issue_created(now);
    let valid = signature(SECRET, &body);

    assert_eq!(
        send_signed(&host, "lin_wh_another", &body).status(),
        401,
        "signed with another secret"
    );
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("Bug in the login flow", "Bug in the logout flow");
    assert_eq!(
        send(&host, Some(&valid), DELIVERY, tampered.as_bytes()).status(),
        401,
        "body changed after signing"
    );
    let later = String::from_utf8(body.clone())
        .unwrap()
        .replace(&now.to_string(), &(now + 30_000).to_string());
    assert_eq!(
        send(&host, Some(&valid), DELIVERY, later.as_bytes()).status(),
        401,
        "webhookTimestamp changed after signing"
    );
    let stale = send_signed(&host, SECRET, &issue_created(now - 61_000));
    assert_eq!(stale.status(), 401, "sent 61 s ago");
    assert!(stale.text().unwrap().contains("tolerance"));
    // Well past the minute, as the clock runs on while the test does.
    assert_eq!(
        send_signed(&host, SECRET, &issue_created(now_ms() + 90_000)).status(),
        401,
        "sent 90 s in the future"
    );
    let undated = String::from_utf8(body.clone())
        .unwrap()
        .replace(&format!(r#","webhookTimestamp":{now}"#), "");
    assert_eq!(
        send_signed(&host, SECRET, undated.as_bytes()).status(),
        401,
        "no webhookTimestamp, so no proof it is fresh"
    );
    assert_eq!(send(&host, None, DELIVERY, &body).status(), 401);
    assert_eq!(
        send(&host, Some(&format!("sha256={valid}")), DELIVERY, &body).status(),
        401,
        "a signature Linear would not send"
    );
    assert!(stored(&host).is_empty(), "{:?}", stored(&host));

    // A delivery like the first, fresh, still passes: the refusals were for cause.
    assert_eq!(
        send_signed(&host, SECRET, &issue_created(now_ms())).status(),
        200,
        "{}",
        host.log()
    );
}

#[test]
fn linear_tolerance_is_configurable() {
    let host = host(", tolerance = \"300\"");
    let response = send_signed(&host, SECRET, &issue_created(now_ms() - 200_000));
    assert_eq!(response.status(), 200, "{}", host.log());
    assert_eq!(
        send_signed(&host, SECRET, &issue_created(now_ms() - 301_000)).status(),
        401
    );
}
