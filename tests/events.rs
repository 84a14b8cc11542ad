//! The event log end to end: what a 2xx promises (stored, exactly once, across a
//! kill -9), the query and replay API, and deliveries to handler plugins with
//! retries and dead-lettering.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{client, event_ids, github_signature, HostSpec};
use serde_json::Value;

const SECRET: &str = "kill-nine-secret";

fn get(host: &common::Host, path: &str) -> Value {
    let response = host.get(path);
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().unwrap()
}

fn post(host: &common::Host, path: &str) -> Value {
    let response = host.post(path);
    assert_eq!(response.status(), 200, "POST {path}");
    response.json().unwrap()
}

/// Every stored event matching `query`, following the cursor through all pages.
fn all_events(host: &common::Host, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let page = get(host, &format!("/api/events?limit=500&{query}{after}"));
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return events,
        }
    }
}

fn send_event(host: &common::Host, id: &str, kind: &str, payload: &str) -> Value {
    let response = host.send_faulty_event(id, kind, payload);
    assert_eq!(response.status(), 200);
    let listed = get(host, &format!("/api/events?plugin=faulty&kind={kind}"));
    common::event_in(&listed, id)
        .unwrap_or_else(|| panic!("event {id} is not listed: {listed}"))
        .clone()
}

fn send_push(host: &common::Host, id: &str) -> reqwest::blocking::Response {
    let body = br#"{"ref":"refs/heads/main","repository":{"full_name":"acme/widgets"}}"#;
    client()
        .post(host.url("/hooks/github"))
        .header("x-github-event", "push")
        .header("x-github-delivery", id)
        .header("x-hub-signature-256", github_signature(SECRET, body))
        .body(body.to_vec())
        .send()
        .unwrap()
}

#[test]
fn a_provider_retry_is_acknowledged_again_stored_once_and_replayable() {
    let host = HostSpec::default()
        .example_plugin("github")
        .test_plugin("handler")
        .config(&format!(
            "[plugins.github]\nconfig = {{ secret = \"{SECRET}\" }}\n\
             [plugins.handler]\nconfig = {{ subscriptions = \"github.push\" }}\n"
        ))
        .start();
    let send = || {
        let response = send_push(&host, "delivery-1");
        assert_eq!(response.status(), 200);
        response.text().unwrap()
    };
    let first = send();
    let retry = send();
    assert_eq!(first, retry, "a retry gets the same answer");

    let events = all_events(&host, "plugin=github");
    assert_eq!(events.len(), 1, "{events:?}");
    let id = events[0]["id"].as_str().unwrap();
    assert_eq!(events[0]["event_id"], "delivery-1");
    assert_eq!(events[0]["kind"], "github.push");
    assert_eq!(events[0]["subject"], "acme/widgets");
    assert_eq!(events[0]["payload"]["ref"], "refs/heads/main");

    let event = get(&host, &format!("/api/events/{id}"));
    let request = &event["request"];
    assert_eq!(request["method"], "POST");
    assert!(request["body"]
        .as_str()
        .unwrap()
        .contains("refs/heads/main"));
    let headers = request["headers"].as_array().unwrap();
    assert!(headers
        .iter()
        .any(|h| h[0] == "x-github-delivery" && h[1] == "delivery-1"));
    let deliveries = event["deliveries"].as_array().unwrap();
    assert_eq!(
        deliveries.len(),
        1,
        "delivered to the handler once: {event}"
    );

    let replay = post(&host, &format!("/api/events/{id}/replay"));
    assert_eq!(replay["replay"]["status"], 200, "{replay}");
    assert_eq!(replay["replay"]["events"][0]["event_id"], "delivery-1");
    assert_eq!(replay["stored"]["id"], id);
    assert_eq!(
        all_events(&host, "plugin=github").len(),
        1,
        "replay stores nothing"
    );

    let missing = host.get("/api/events/999999");
    assert_eq!(missing.status(), 404);
}

#[test]
fn events_are_listed_newest_first_with_filters_and_a_cursor() {
    let host = HostSpec::default().test_plugin("faulty").start();
    for n in 0..5 {
        let kind = if n % 2 == 0 {
            "faulty.even"
        } else {
            "faulty.odd"
        };
        send_event(&host, &format!("e{n}"), kind, &format!("{{\"n\":{n}}}"));
    }
    let page = get(&host, "/api/events?limit=2");
    let ids = event_ids(&page);
    assert_eq!(ids, ["e4", "e3"]);
    let next = page["next"].as_str().unwrap();
    let rest = get(&host, &format!("/api/events?limit=10&after={next}"));
    let ids = event_ids(&rest);
    assert_eq!(ids, ["e2", "e1", "e0"]);
    assert!(rest["next"].is_null());
    assert_eq!(all_events(&host, "kind=faulty.even").len(), 3);
    assert_eq!(all_events(&host, "kind=faulty.*").len(), 5);
    assert_eq!(all_events(&host, "plugin=github").len(), 0);
    let bad = host.get("/api/events?limit=0");
    assert_eq!(bad.status(), 400);
}

fn handler_host(max_attempts: u32, retry_base: &str) -> common::Host {
    HostSpec::default()
        .test_plugin("faulty")
        .test_plugin("handler")
        .config(&format!(
            "[plugins.handler]\nconfig = {{ subscriptions = \"faulty.flaky.*\" }}\n\
             max_attempts = {max_attempts}\nretry_base = \"{retry_base}\"\n"
        ))
        .start()
}

/// Waits for the one delivery of event `id` to reach `state`, and returns it.
fn wait_for_delivery(host: &common::Host, id: &str, state: &str) -> Value {
    host.wait_for(&format!("the delivery to be {state}"), || {
        let delivery = delivery_of(host, id);
        (delivery["state"] == state).then_some(delivery)
    })
}

fn delivery_of(host: &common::Host, event_id: &str) -> Value {
    let event = get(host, &format!("/api/events/{event_id}"));
    let deliveries = event["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{event}");
    deliveries[0].clone()
}

/// The `retry_in_ms` of every "will retry" line of the log, in order.
fn retry_delays(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|line| line.contains("delivery failed, will retry"))
        .map(|line| {
            let at = line.find("retry_in_ms=").unwrap() + "retry_in_ms=".len();
            let digits: String = line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().unwrap()
        })
        .collect()
}

#[test]
fn a_handler_that_fails_three_times_then_succeeds_is_delivered_with_growing_delays() {
    let host = handler_host(8, "100ms");
    let unsubscribed = send_event(&host, "other", "faulty.other", "{}");
    let event = send_event(&host, "flaky-1", "faulty.flaky.x", r#"{"fail_attempts":3}"#);
    let id = event["id"].as_str().unwrap();
    let delivery = wait_for_delivery(&host, id, "delivered");
    assert_eq!(delivery["attempts"], 4, "{delivery}");
    let log = host.log();
    assert!(log.contains("handled faulty/flaky-1 attempt 4"), "{log}");
    let delays = retry_delays(&log);
    assert_eq!(delays.len(), 3, "{log}");
    assert!(
        delays.windows(2).all(|pair| pair[0] < pair[1]),
        "delays grow: {delays:?}"
    );
    let other = get(
        &host,
        &format!("/api/events/{}", unsubscribed["id"].as_str().unwrap()),
    );
    assert!(
        other["deliveries"].as_array().unwrap().is_empty(),
        "{other}"
    );
}

#[test]
fn a_handler_that_always_fails_ends_dead_lettered_and_can_be_retried() {
    let host = handler_host(3, "50ms");
    let event = send_event(&host, "doomed", "faulty.flaky.y", r#"{"always_fail":true}"#);
    let id = event["id"].as_str().unwrap();
    let dead = wait_for_delivery(&host, id, "dead");
    assert_eq!(dead["attempts"], 3, "{dead}");
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("always failing, attempt 3"),
        "{dead}"
    );
    let listed = get(&host, "/api/deliveries?state=dead");
    assert_eq!(listed["deliveries"][0]["id"], dead["id"]);

    let delivery_id = dead["id"].as_str().unwrap();
    let requeued = post(&host, &format!("/api/deliveries/{delivery_id}/retry"));
    assert_eq!(requeued["attempts"], 0, "{requeued}");
    host.wait_for("the retried delivery to fail three more times", || {
        let delivery = delivery_of(&host, id);
        let done = delivery["state"] == "dead"
            && delivery["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("attempt 3"))
            && host.log().matches("dead-lettered").count() == 2;
        done.then_some(())
    });
    let missing = host.post("/api/deliveries/999999/retry");
    assert_eq!(missing.status(), 404);
}

#[test]
fn after_kill_9_every_acknowledged_delivery_is_stored_once_and_handler_deliveries_resume() {
    // Every push fails its first handler attempt and is retried 1-2 s later, so the
    // deliveries of the last second before the kill are certainly still pending.
    let mut host = HostSpec::default()
        .example_plugin("github")
        .test_plugin("handler")
        .config(&format!(
            "[plugins.github]\nconfig = {{ secret = \"{SECRET}\" }}\n\
             [plugins.handler]\nconfig = {{ subscriptions = \"github.push\" }}\n\
             retry_base = \"2s\"\n"
        ))
        .start();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = host.url("/hooks/github");
    let senders: Vec<_> = (0..4)
        .map(|thread| {
            let acknowledged = acknowledged.clone();
            let stop = stop.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let client = client();
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let id = format!("t{thread}-{n}");
                    let body = format!(
                        r#"{{"ref":"refs/heads/main","repository":{{"full_name":"acme/widgets"}},"fail_attempts":1,"n":{n}}}"#
                    );
                    let sent = client
                        .post(&url)
                        .header("x-github-event", "push")
                        .header("x-github-delivery", &id)
                        .header(
                            "x-hub-signature-256",
                            github_signature(SECRET, body.as_bytes()),
                        )
                        .body(body)
                        .send();
                    match sent {
                        Ok(response) if response.status().is_success() => {
                            acknowledged.lock().unwrap().push(id)
                        }
                        Ok(response) => panic!("{id}: unexpected status {}", response.status()),
                        // The host was killed: this one was never acknowledged.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    host.wait_for("200 acknowledged webhooks", || {
        (acknowledged.lock().unwrap().len() >= 200).then_some(())
    });
    host.kill();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.join().unwrap();
    }
    let log_before_restart = host.log().len();
    host.restart();

    let acknowledged = acknowledged.lock().unwrap().clone();
    let stored = all_events(&host, "plugin=github");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for event in &stored {
        *counts
            .entry(event["event_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for id in &acknowledged {
        assert_eq!(counts.get(id), Some(&1), "acknowledged {id} stored once");
    }
    assert!(counts.values().all(|&n| n == 1), "no event stored twice");

    // Every stored push reaches the handler, including those pending at the kill.
    host.wait_for("every delivery to be delivered", || {
        let delivered = get(
            &host,
            "/api/deliveries?plugin=handler&state=delivered&limit=500",
        );
        let pending = get(
            &host,
            "/api/deliveries?plugin=handler&state=pending&limit=1",
        );
        (pending["deliveries"].as_array().unwrap().is_empty()
            && delivered["deliveries"].as_array().unwrap().len() >= stored.len().min(500))
        .then_some(())
    });
    let dead = get(&host, "/api/deliveries?state=dead");
    assert!(dead["deliveries"].as_array().unwrap().is_empty(), "{dead}");
    let after_restart = host.log()[log_before_restart..].to_string();
    assert!(
        after_restart.contains("event delivered"),
        "pending deliveries resumed after the restart: {after_restart}"
    );
}
