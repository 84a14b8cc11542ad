//! Event provenance against the real binary: a plugin may emit only the kinds its
//! manifest's `emits` covers (webhook and poll alike; a refused call stores
//! nothing, is logged and counted), and `[plugins.<id>] sources` decides from which
//! plugins a handler gets events, including deliveries queued before it was set.

mod common;

use common::{client, test_plugin, Host, HostSpec};
use serde_json::Value;

fn get(host: &Host, path: &str) -> Value {
    let response = host.get(path);
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().unwrap()
}

fn list(host: &Host, path: &str, key: &str) -> Vec<Value> {
    get(host, path)[key].as_array().unwrap().clone()
}

fn metrics(host: &Host) -> String {
    host.metrics()
}

/// The value of the metric line that starts with `series` (name and labels), if any.
fn metric(host: &Host, series: &str) -> Option<f64> {
    metrics(host)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Rows of `table` whose `plugin` is `plugin`, read from the host's SQLite file:
/// what is stored, including raw requests the API shows only beside their events.
fn stored_rows(host: &Host, table: &str, plugin: &str) -> i64 {
    let store = rusqlite::Connection::open(host.data_dir().join("events.sqlite3")).unwrap();
    store
        .query_row(
            &format!("SELECT count(*) FROM {table} WHERE plugin = ?1"),
            [plugin],
            |row| row.get(0),
        )
        .unwrap()
}

fn emit(host: &Host, id: &str, kind: &str) -> reqwest::blocking::Response {
    client()
        .post(host.url("/hooks/hostile/emit"))
        .header("x-id", id)
        .header("x-kind", kind)
        .send()
        .unwrap()
}

#[test]
fn a_webhook_event_outside_the_manifests_emits_is_refused_and_nothing_of_it_is_stored() {
    let host = HostSpec::default()
        .test_plugin("hostile")
        .test_plugin("handler")
        .config("[plugins.handler]\nconfig = { subscriptions = \"github.push,hostile.*\" }\n")
        .start();
    let plugins = list(&host, "/api/plugins", "plugins");
    let hostile = plugins.iter().find(|p| p["id"] == "hostile").unwrap();
    assert_eq!(
        hostile["emits"],
        serde_json::json!(["hostile.*"]),
        "{hostile}"
    );

    // Another plugin's kind, and kinds that only look like the declared prefix.
    let spoofed = ["github.push", "hostile", "hostile.", "hostilex.push"];
    for (n, kind) in spoofed.iter().enumerate() {
        let response = emit(&host, &format!("spoof-{n}"), kind);
        assert_eq!(response.status(), 500, "{kind} was not refused");
        let body: Value = response.json().unwrap();
        assert_eq!(body["error"], "internal", "{body}");
        assert!(
            !body["message"].as_str().unwrap().contains(kind),
            "the provider is not told the plugin's business: {body}"
        );
    }

    assert!(list(&host, "/api/events?kind=github.push", "events").is_empty());
    assert!(list(&host, "/api/events?plugin=hostile", "events").is_empty());
    assert_eq!(stored_rows(&host, "requests", "hostile"), 0);
    assert!(list(&host, "/api/deliveries", "deliveries").is_empty());
    assert_eq!(
        metric(
            &host,
            r#"hookhost_events_refused_total{plugin="hostile",call="handle_webhook",reason="undeclared_kind"}"#
        ),
        Some(spoofed.len() as f64),
        "{}",
        metrics(&host)
    );
    let refusal = host.log_line("emitted an event of kind \"github.push\"");
    assert!(refusal.contains("plugin hostile 1"), "{refusal}");
    assert!(refusal.contains(r#"["hostile.*"]"#), "{refusal}");

    // A kind the manifest declares goes through as before, and is delivered.
    let response = emit(&host, "fine-1", "hostile.fine");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "emitted");
    let events = list(&host, "/api/events?plugin=hostile", "events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"], "hostile.fine");
    assert_eq!(stored_rows(&host, "requests", "hostile"), 1);
    let deliveries = list(&host, "/api/deliveries?plugin=handler", "deliveries");
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["event"], events[0]["id"]);
}

#[test]
fn a_poll_with_an_event_outside_the_manifests_emits_saves_nothing() {
    // The ticker declares `ticker.tick` but is configured to poll `github.push`.
    let host = HostSpec::default()
        .plugin("ticker", test_plugin("ticker-v1"))
        .test_plugin("handler")
        .config(
            "[plugins.ticker]\nconfig = { kind = \"github.push\" }\n\
             [plugins.handler]\nconfig = { subscriptions = \"github.push\" }\n",
        )
        .start();
    let response = host.post("/api/plugins/ticker/poll");
    assert_eq!(response.status(), 500);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"], "undeclared_kind", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("\"github.push\""), "{message}");
    assert!(message.contains(r#"["ticker.tick"]"#), "{message}");

    assert!(list(&host, "/api/events", "events").is_empty());
    assert!(list(&host, "/api/deliveries", "deliveries").is_empty());
    assert_eq!(
        stored_rows(&host, "poll_cursors", "ticker"),
        0,
        "no cursor saved"
    );
    // The timer's first poll may have been refused too.
    let refused = metric(
        &host,
        r#"hookhost_events_refused_total{plugin="ticker",call="poll",reason="undeclared_kind"}"#,
    );
    assert!(refused.is_some_and(|n| n >= 1.0), "{}", metrics(&host));
    let log = host.log();
    assert!(
        log.lines().any(|line| line.contains("poll failed")
            && line.contains("plugin ticker 1.0.0 emitted an event of kind \"github.push\"")),
        "{log}"
    );
}

/// `faulty` under two ids, `alpha` and `beta`, both emitting `faulty.*`, and two
/// handlers subscribed to `faulty.*`: `picky` with `picky_sources` (a TOML value or
/// nothing) and `open` with none.
fn two_sources_host(picky_sources: &str) -> HostSpec {
    HostSpec::default()
        .plugin("alpha", test_plugin("faulty"))
        .plugin("beta", test_plugin("faulty"))
        .plugin("picky", test_plugin("handler"))
        .plugin("open", test_plugin("handler"))
        .config(&two_sources_config(picky_sources))
}

fn two_sources_config(picky_sources: &str) -> String {
    format!(
        "[plugins.picky]\nconfig = {{ subscriptions = \"faulty.*\" }}\nmax_attempts = 1\n\
         {picky_sources}\n\
         [plugins.open]\nconfig = {{ subscriptions = \"faulty.*\" }}\nmax_attempts = 1\n"
    )
}

/// Sends event `id` through plugin `source` (a `faulty`) and returns its host id.
fn send(host: &Host, source: &str, id: &str, payload: &str) -> String {
    let response = client()
        .post(host.url(&format!("/hooks/{source}/event")))
        .header("x-id", id)
        .header("x-kind", "faulty.job")
        .body(payload.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = list(host, &format!("/api/events?plugin={source}"), "events");
    let event = events.iter().find(|e| e["event_id"] == id).unwrap();
    event["id"].as_str().unwrap().to_string()
}

/// The handlers that got a delivery of stored event `event`, sorted.
fn handlers_of(host: &Host, event: &str) -> Vec<String> {
    let mut handlers: Vec<String> = list(host, &format!("/api/events/{event}"), "deliveries")
        .iter()
        .map(|d| d["plugin"].as_str().unwrap().to_string())
        .collect();
    handlers.sort();
    handlers
}

#[test]
fn a_handler_with_sources_gets_events_only_from_those_plugins() {
    let host = two_sources_host("sources = [\"alpha\"]").start();
    let plugins = list(&host, "/api/plugins", "plugins");
    let by_id = |id: &str| plugins.iter().find(|p| p["id"] == id).unwrap().clone();
    assert_eq!(by_id("picky")["sources"], serde_json::json!(["alpha"]));
    assert_eq!(by_id("open")["sources"], Value::Null);

    let from_alpha = send(&host, "alpha", "a-1", "{}");
    let from_beta = send(&host, "beta", "b-1", "{}");
    // Deliveries are queued in the webhook's own transaction: none was ever
    // queued for picky from beta.
    assert_eq!(handlers_of(&host, &from_alpha), ["open", "picky"]);
    assert_eq!(handlers_of(&host, &from_beta), ["open"]);
    let picky = host.wait_for("picky's delivery to go through", || {
        let picky = list(&host, "/api/deliveries?plugin=picky", "deliveries");
        picky
            .iter()
            .all(|d| d["state"] == "delivered")
            .then_some(picky)
    });
    assert_eq!(picky.len(), 1, "{picky:?}");
    assert_eq!(picky[0]["event"], from_alpha.as_str());
    host.wait_for("open's deliveries to go through", || {
        let log = host.log();
        (log.contains("handled alpha/a-1") && log.contains("handled beta/b-1")).then_some(())
    });
}

#[test]
fn a_delivery_queued_before_sources_excluded_its_source_is_not_made_after_a_retry() {
    // Without `sources`, picky gets beta's event and dead-letters it.
    let mut host = two_sources_host("").start();
    let event = send(&host, "beta", "b-1", r#"{"always_fail":true}"#);
    let delivery = host.wait_for("picky's delivery to die", || {
        list(
            &host,
            &format!("/api/deliveries?plugin=picky&event={event}"),
            "deliveries",
        )
        .into_iter()
        .find(|d| d["state"] == "dead")
    });
    let id = delivery["id"].as_str().unwrap().to_string();

    // Now picky takes events from alpha only; a retry of the old delivery must not
    // reach it.
    host.kill();
    std::fs::write(
        host.dir.path().join("hookhost.toml"),
        two_sources_config("sources = [\"alpha\"]"),
    )
    .unwrap();
    host.restart();
    let response = client()
        .post(host.url(&format!("/api/deliveries/{id}/retry")))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let refused = host.wait_for("the retried delivery to be refused", || {
        list(&host, "/api/deliveries?plugin=picky", "deliveries")
            .into_iter()
            .find(|d| {
                d["id"] == id.as_str()
                    && d["state"] == "dead"
                    && d["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("not among [plugins.picky] sources"))
            })
    });
    assert_eq!(refused["attempts"], 1, "{refused}");
    assert!(
        !metrics(&host)
            .lines()
            .any(|line| line.contains(r#"plugin="picky",call="on_event""#)),
        "picky was called after the restart:\n{}",
        metrics(&host)
    );
}
