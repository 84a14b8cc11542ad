//! Retention on the real binary: the purge removes what is past `retention`, but
//! never a pending delivery or a dead letter (nor the event and request they need);
//! an operator discards a dead letter through the API or the CLI, or
//! `dead_letter_retention` lets it go; and a purge over a large table runs in
//! batches beside webhooks instead of stalling them.

mod common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, output_text, test_plugin, HostSpec};
use serde_json::Value;

/// `faulty` emits what the tests send; `handler` dead-letters after two quick
/// attempts; `patient` (the same component) fails once and then waits an hour
/// for its next attempt, so its delivery stays pending for the whole test.
fn failing_handlers_host(extra_config: &str) -> common::Host {
    HostSpec::default()
        .plugin("faulty", test_plugin("faulty"))
        .plugin("handler", test_plugin("handler"))
        .plugin("patient", test_plugin("handler"))
        .config(&format!(
            "retention = \"2s\"\n{extra_config}\n\
             [plugins.handler]\n\
             config = {{ subscriptions = \"faulty.doomed.*,faulty.fine.*\" }}\n\
             max_attempts = 2\nretry_base = \"50ms\"\n\
             [plugins.patient]\n\
             config = {{ subscriptions = \"faulty.doomed.*\" }}\n\
             max_attempts = 5\nretry_base = \"1h\"\n"
        ))
        .start()
}

/// The payload of an event whose every delivery to `handler` fails.
const ALWAYS_FAIL: &str = r#"{"always_fail":true}"#;

/// Sends one event through `faulty`; its host id.
fn send_event(host: &common::Host, id: &str, kind: &str, payload: &str) -> String {
    let response = host.send_faulty_event(id, kind, payload);
    assert_eq!(response.status(), 200);
    host.wait_for("the event to be listed", || {
        let listed = host.get_json(&format!("/api/events?plugin=faulty&kind={kind}"));
        let event = common::event_in(&listed, id)?;
        Some(event["id"].as_str().unwrap().to_string())
    })
}

/// The stored event with its request and deliveries; `None` once purged.
fn event(host: &common::Host, id: &str) -> Option<Value> {
    let response = host.get(&format!("/api/events/{id}"));
    match response.status().as_u16() {
        404 => None,
        200 => Some(response.json().unwrap()),
        other => panic!("GET /api/events/{id} answered {other}"),
    }
}

/// The delivery of event `id` to `plugin`.
fn delivery(host: &common::Host, id: &str, plugin: &str) -> Value {
    let event = event(host, id).unwrap_or_else(|| panic!("event {id} was purged"));
    event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|delivery| delivery["plugin"] == plugin)
        .unwrap_or_else(|| panic!("event {id} has no delivery to {plugin}: {event}"))
        .clone()
}

/// The plugins `event` (as `event` returns it) still has deliveries to.
fn delivered_to(event: &Value) -> Vec<&str> {
    let deliveries = event["deliveries"].as_array().unwrap();
    deliveries
        .iter()
        .map(|delivery| delivery["plugin"].as_str().unwrap())
        .collect()
}

fn wait_for_state(host: &common::Host, id: &str, plugin: &str, state: &str) -> Value {
    host.wait_for(
        &format!("the delivery of {id} to {plugin} to be {state}"),
        || {
            let delivery = delivery(host, id, plugin);
            (delivery["state"] == state).then_some(delivery)
        },
    )
}

/// The value of `hookhost_retention_purged_total{what="<what>"}`; 0 before any.
fn purged(host: &common::Host, what: &str) -> u64 {
    let metrics = host.metrics();
    let prefix = format!("hookhost_retention_purged_total{{what=\"{what}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0)
}

fn cli(host: &common::Host, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args(args)
        .args(["--url", &host.base_url])
        .env_remove("HOOKHOST_ADMIN_TOKEN")
        .env("RUST_LOG", "warn")
        .output()
        .expect("running hookhost")
}

#[test]
fn a_short_retention_keeps_a_failing_handlers_pending_and_dead_deliveries() {
    let host = failing_handlers_host("");
    let doomed = send_event(&host, "doomed", "faulty.doomed.x", ALWAYS_FAIL);
    let fine = send_event(&host, "fine", "faulty.fine.x", "{}");
    let unsubscribed = send_event(&host, "unsubscribed", "faulty.other", "{}");
    let dead = wait_for_state(&host, &doomed, "handler", "dead");
    let pending = host.wait_for("the patient handler's first attempt to fail", || {
        let delivery = delivery(&host, &doomed, "patient");
        (delivery["attempts"] == 1 && delivery["last_error"].is_string()).then_some(delivery)
    });
    assert_eq!(pending["state"], "pending", "{pending}");

    // The purge runs (every 2 s here) and takes what is finished (`fine` goes only
    // once its delivery was delivered)...
    host.wait_for("the finished events to be purged", || {
        (event(&host, &fine).is_none() && event(&host, &unsubscribed).is_none()).then_some(())
    });
    // ...and, purge after purge, leaves the unfinished work alone.
    let purged_events = purged(&host, "events");
    assert!(purged_events >= 2, "{}", host.metrics());
    assert!(purged(&host, "deliveries") >= 1, "{}", host.metrics());
    std::thread::sleep(Duration::from_secs(5));
    let kept = event(&host, &doomed).expect("the event of unfinished deliveries was purged");
    assert!(kept["request"].is_object(), "its request went: {kept}");
    assert_eq!(delivery(&host, &doomed, "handler")["state"], "dead");
    assert_eq!(delivery(&host, &doomed, "patient")["state"], "pending");
    assert_eq!(purged(&host, "events"), purged_events);
    assert_eq!(purged(&host, "dead_letters"), 0);
    assert!(
        !host.log().contains("purging old events failed"),
        "{}",
        host.log()
    );
    assert!(
        host.log().contains("purged what was past its retention"),
        "{}",
        host.log()
    );

    // An operator discards the dead letter; a pending delivery cannot be.
    let pending_id = pending["id"].as_str().unwrap();
    let refused = host.delete(&format!("/api/deliveries/{pending_id}"));
    assert_eq!(refused.status(), 409);
    let refused: Value = refused.json().unwrap();
    assert!(
        refused["message"].as_str().unwrap().contains("pending"),
        "{refused}"
    );
    let dead_id = dead["id"].as_str().unwrap();
    let discarded = host.delete(&format!("/api/deliveries/{dead_id}"));
    assert_eq!(discarded.status(), 200);
    let discarded: Value = discarded.json().unwrap();
    assert_eq!(discarded["discarded"], true, "{discarded}");
    assert_eq!(discarded["state"], "dead", "{discarded}");
    let again = host.delete(&format!("/api/deliveries/{dead_id}"));
    assert_eq!(again.status(), 404);
    let left = event(&host, &doomed).expect("the pending delivery keeps its event");
    assert_eq!(delivered_to(&left), ["patient"], "{left}");

    // The same from the CLI, on a second dead letter.
    let doomed_again = send_event(&host, "doomed-2", "faulty.doomed.y", ALWAYS_FAIL);
    let dead = wait_for_state(&host, &doomed_again, "handler", "dead");
    let dead_id = dead["id"].as_str().unwrap();
    let output = cli(&host, &["deliveries", "discard", dead_id]);
    assert!(output.status.success(), "{}", output_text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(&format!("discarded dead delivery {dead_id}")),
        "{}",
        output_text(&output)
    );
    let output = cli(&host, &["deliveries", "discard", dead_id]);
    assert_eq!(output.status.code(), Some(3), "{}", output_text(&output));
    let output = cli(&host, &["deliveries", "discard", pending_id]);
    assert_eq!(output.status.code(), Some(1), "{}", output_text(&output));
    assert!(
        output_text(&output).contains("only a dead delivery can be discarded"),
        "{}",
        output_text(&output)
    );
    let left = event(&host, &doomed_again).unwrap();
    assert_eq!(delivered_to(&left), ["patient"], "{left}");
}

#[test]
fn dead_letters_go_after_their_own_retention_and_then_their_events() {
    let host = HostSpec::default()
        .plugin("faulty", test_plugin("faulty"))
        .plugin("handler", test_plugin("handler"))
        .config(
            "retention = \"1s\"\ndead_letter_retention = \"6s\"\n\
             [plugins.handler]\n\
             config = { subscriptions = \"faulty.doomed.*\" }\n\
             max_attempts = 2\nretry_base = \"50ms\"\n",
        )
        .start();
    let doomed = send_event(&host, "doomed", "faulty.doomed.x", ALWAYS_FAIL);
    let dead = wait_for_state(&host, &doomed, "handler", "dead");
    let went_dead = Instant::now();
    host.wait_for("the dead letter and its event to be purged", || {
        event(&host, &doomed).is_none().then_some(())
    });
    // Not at the events' 1 s retention, but after its own 6 s, counted from when it
    // went dead (2 s of margin for when this test saw it dead).
    assert!(
        went_dead.elapsed() >= Duration::from_secs(4),
        "purged {:?} after it went dead",
        went_dead.elapsed()
    );
    assert_eq!(purged(&host, "dead_letters"), 1, "{}", host.metrics());
    assert_eq!(purged(&host, "events"), 1, "{}", host.metrics());
    let listed = host.get_json("/api/deliveries?state=dead");
    assert!(
        !listed["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|delivery| delivery["id"] == dead["id"]),
        "{listed}"
    );
}

/// Old events written straight into the SQLite file of a stopped host, as years of
/// traffic would have left them: every one with its request, half of them with a
/// delivered delivery.
const OLD_EVENTS: i64 = 200_000;

fn fill_with_old_events(store: &std::path::Path) {
    let mut conn = rusqlite::Connection::open(store).unwrap();
    let tx = conn.transaction().unwrap();
    let old = now_ms() - 10 * 24 * 3600 * 1000;
    {
        let mut request = tx
            .prepare(
                "INSERT INTO requests (id, plugin, received_at, method, path, query, headers, body)
                 VALUES (?1, 'faulty', ?2, 'POST', '/ok', '', '[]', x'7b7d')",
            )
            .unwrap();
        let mut event = tx
            .prepare(
                "INSERT INTO events (id, plugin, event_id, kind, subject, payload, received_at, request_id)
                 VALUES (?1, 'faulty', 'old-' || ?1, 'faulty.ok', NULL, '{}', ?2, ?1)",
            )
            .unwrap();
        let mut delivery = tx
            .prepare(
                "INSERT INTO deliveries (event_id, plugin, state, attempts, next_at, updated_at)
                 VALUES (?1, 'handler', 'delivered', 1, ?2, ?2)",
            )
            .unwrap();
        for id in 1..=OLD_EVENTS {
            let at = old + id;
            request.execute((id, at)).unwrap();
            event.execute((id, at)).unwrap();
            if id % 2 == 0 {
                delivery.execute((id, at)).unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn a_purge_over_a_large_table_runs_beside_webhooks() {
    let mut host = HostSpec::default()
        .plugin("faulty", test_plugin("faulty"))
        .config("retention = \"1d\"\n")
        .start();
    host.signal("TERM");
    assert!(host.wait_for_exit(Duration::from_secs(30)).success());
    fill_with_old_events(&host.data_dir().join("events.sqlite3"));
    host.restart();

    // Webhooks from four senders for as long as the purge runs.
    let purging = Arc::new(AtomicBool::new(true));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let url = host.url("/hooks/faulty/ok");
            let (purging, latencies, failures) =
                (purging.clone(), latencies.clone(), failures.clone());
            std::thread::spawn(move || {
                let client = client();
                let mut n = 0;
                while purging.load(Ordering::Relaxed) {
                    n += 1;
                    let started = Instant::now();
                    let sent = client
                        .post(&url)
                        .header("x-id", format!("new-{sender}-{n}"))
                        .timeout(Duration::from_secs(30))
                        .send();
                    let took = started.elapsed();
                    match sent {
                        Ok(response) if response.status() == 200 => {
                            latencies.lock().unwrap().push(took)
                        }
                        Ok(response) => failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", response.status())),
                        Err(error) => failures.lock().unwrap().push(error.to_string()),
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    while purged(&host, "requests") < OLD_EVENTS as u64 {
        assert!(
            Instant::now() < deadline,
            "the purge did not finish within 10 minutes: {}",
            host.metrics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let purge_took = started.elapsed();
    purging.store(false, Ordering::Relaxed);
    for sender in senders {
        sender.join().unwrap();
    }

    assert_eq!(purged(&host, "events"), OLD_EVENTS as u64);
    assert_eq!(purged(&host, "deliveries"), OLD_EVENTS as u64 / 2);
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "webhooks failed during the purge: {failures:?}"
    );
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    assert!(
        latencies.len() >= 20,
        "too few webhooks overlapped the purge to say anything: {}",
        latencies.len()
    );
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let max = *latencies.last().unwrap();
    println!(
        "purged {OLD_EVENTS} events (and as many requests, {} deliveries) in {purge_took:?}; \
         {} webhooks sent meanwhile: p50 {:?}, p99 {:?}, max {max:?}",
        OLD_EVENTS / 2,
        latencies.len(),
        p(0.5),
        p(0.99),
    );
    // A correctness bound, not a benchmark: no webhook waited behind the whole purge.
    assert!(max < Duration::from_secs(5), "a webhook took {max:?}");
    // The new events are all there.
    let listed = host.get_json("/api/events?plugin=faulty&limit=500");
    assert!(
        listed["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["event_id"].as_str().unwrap().starts_with("new-")),
        "{listed}"
    );
}
