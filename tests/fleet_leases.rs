//! Leases across a fleet (issue 17): real nodes on one real PostgreSQL server
//! (tests/common/postgres.rs), showing that a delivery's claim is fenced, that no
//! node clock decides a lease, that a node claims only deliveries of handlers it
//! has loaded, and that poll leases are spread over the nodes and released when
//! a plugin goes.
//!
//! A node is paused with SIGSTOP (as a long GC pause, a frozen VM or a swapped-out
//! process would), and its clock is skewed with the test-only
//! `HOOKHOST_TEST_CLOCK_OFFSET_MS`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::feed::Feed;
use common::postgres::Postgres;
use common::{eventually, test_plugin, Host};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// A node on `database` with `plugins` and `config`, and `env` set.
fn node(
    database: &Postgres,
    plugins: &[(&str, PathBuf)],
    config: &str,
    env: &[(&str, &str)],
) -> Host {
    let mut spec = database.node(plugins, config);
    for (name, value) in env {
        spec = spec.env(name, value);
    }
    spec.start()
}

/// The `faulty` webhook source and the `handler` plugin subscribed to its
/// `faulty.slow.*` events, with a handler call timeout of `timeout`.
fn faulty_and_handler(timeout: &str) -> (Vec<(&'static str, PathBuf)>, String) {
    (
        vec![
            ("faulty", test_plugin("faulty")),
            ("handler", test_plugin("handler")),
        ],
        format!(
            "[plugins.handler]\nconfig = {{ subscriptions = \"faulty.slow.*\" }}\ntimeout = \"{timeout}\"\nretry_base = \"200ms\"\n"
        ),
    )
}

/// Sends event `id` (kind `faulty.slow.job`, the JSON `payload`) through `host`.
fn send_event(host: &Host, id: &str, payload: &str) {
    let response = host.send_faulty_event(id, "faulty.slow.job", payload);
    assert_eq!(response.status(), 200, "sending {id}");
}

/// The handler's deliveries, as `host` lists them.
fn deliveries(host: &Host) -> Vec<Value> {
    host.get_list("/api/deliveries?plugin=handler&limit=500", "deliveries")
}

#[test]
fn a_node_paused_past_its_lease_cannot_change_a_delivery_claimed_since() {
    let database = Postgres::start();
    // A 5 s call timeout: the delivery's lease is 20 s.
    let (plugins, config) = faulty_and_handler("5s");
    let paused = node(&database, &plugins, &config, &[]);
    send_event(&paused, "p-1", r#"{"sleep_first_attempt_ms": 4000}"#);
    eventually("the first attempt to start", WAIT, || {
        paused.log().contains("sleeping in faulty/p-1 attempt 1")
    });
    paused.signal("STOP");

    // Its lease runs out while it is stopped; another node claims the delivery
    // and delivers it.
    let other = node(&database, &plugins, &config, &[]);
    let mut delivered = Value::Null;
    eventually("the other node to deliver it", WAIT, || {
        delivered = deliveries(&other)[0].clone();
        delivered["state"] == "delivered"
    });
    assert_eq!(delivered["attempts"], 2, "{delivered}");
    assert!(other.log().contains("handled faulty/p-1 attempt 2"));

    // The paused node wakes up and finishes (or times out) its attempt: its
    // outcome is dropped and logged, and the delivery stays as the other node left it.
    paused.signal("CONT");
    eventually("the stale outcome to be dropped", WAIT, || {
        paused.log().contains("stale delivery outcome dropped")
    });
    let after = deliveries(&other)[0].clone();
    assert_eq!(after, delivered, "the stale outcome changed nothing");
}

#[test]
fn a_node_whose_clock_runs_a_minute_ahead_takes_no_lease_early() {
    let database = Postgres::start();
    let feed = Feed::start(&[1]);
    // A 20 s call timeout: the delivery's lease is 35 s, well under a minute.
    let (mut plugins, config) = faulty_and_handler("20s");
    plugins.push(("feed", common::example_plugin("feed")));
    let config = format!("{config}{}", feed.config("1s", ""));
    let on_time = node(&database, &plugins, &config, &[]);
    eventually("the on-time node to hold the poll lease", WAIT, || {
        on_time.holds_poll_lease("feed")
    });
    send_event(&on_time, "slow-1", r#"{"sleep_first_attempt_ms": 12000}"#);
    eventually("the first attempt to start", WAIT, || {
        on_time
            .log()
            .contains("sleeping in faulty/slow-1 attempt 1")
    });

    // Its clock says the delivery's claim and the poll lease ran out long ago.
    let ahead = node(
        &database,
        &plugins,
        &config,
        &[("HOOKHOST_TEST_CLOCK_OFFSET_MS", "60000")],
    );
    // Recorded just after the handler logs its success.
    let mut delivered = Value::Null;
    eventually("the delivery to be delivered", WAIT, || {
        delivered = deliveries(&ahead)[0].clone();
        delivered["state"] == "delivered"
    });
    assert!(on_time.log().contains("handled faulty/slow-1 attempt 1"));
    assert_eq!(
        delivered["attempts"], 1,
        "nobody took the claim early: {delivered}"
    );
    let log = ahead.log();
    assert!(
        !log.contains("faulty/slow-1"),
        "the node ahead never ran it:\n{log}"
    );
    // Several lease rounds of the node ahead (every 3 s) have run by now: none
    // took the poll lease from the node that renews it.
    std::thread::sleep(Duration::from_secs(7));
    assert!(on_time.holds_poll_lease("feed"));
    assert!(!ahead.holds_poll_lease("feed"));
    assert!(
        !ahead.log().contains("poll leases taken"),
        "{}",
        ahead.log()
    );
}

#[test]
fn on_three_nodes_with_the_handler_on_two_the_third_attempts_no_delivery() {
    let database = Postgres::start();
    let (plugins, config) = faulty_and_handler("5s");
    let with_handler = [
        node(&database, &plugins, &config, &[]),
        node(&database, &plugins, &config, &[]),
    ];
    let without = node(&database, &plugins[..1], "", &[]);
    // Each event fails its first attempt, so every delivery is claimed twice.
    let count = 20;
    for n in 0..count {
        send_event(
            &with_handler[n % 2],
            &format!("e-{n}"),
            r#"{"fail_attempts": 1}"#,
        );
    }
    let mut listed = Vec::new();
    eventually("every delivery delivered", WAIT, || {
        listed = deliveries(&without);
        listed.len() == count && listed.iter().all(|d| d["state"] == "delivered")
    });
    for delivery in &listed {
        assert_eq!(
            delivery["attempts"], 2,
            "no attempt was spent elsewhere: {delivery}"
        );
    }
    let log = without.log();
    assert!(!log.contains("not loaded"), "{log}");
    assert!(!log.contains("delivery failed"), "{log}");
    assert!(!log.contains("event delivered"), "{log}");
}

#[test]
fn polls_are_spread_over_three_nodes_and_a_plugin_removed_on_one_releases_its_lease() {
    let database = Postgres::start();
    let feed = Feed::start(&[1, 2]);
    let ids: Vec<String> = (1..=6).map(|n| format!("feed{n}")).collect();
    let plugins: Vec<(&str, PathBuf)> = ids
        .iter()
        .map(|id| (id.as_str(), common::example_plugin("feed")))
        .collect();
    let config: String = ids
        .iter()
        .map(|id| {
            feed.config("2s", "")
                .replace("[plugins.feed]", &format!("[plugins.{id}]"))
        })
        .collect();
    // One after the other: the first takes every lease, and hands them over as
    // the others join.
    let nodes: Vec<Host> = (0..3)
        .map(|_| node(&database, &plugins, &config, &[]))
        .collect();
    let held = |host: &Host| -> Vec<String> {
        ids.iter()
            .filter(|id| host.holds_poll_lease(id))
            .cloned()
            .collect()
    };
    let mut spread = Vec::new();
    eventually("two leases held by each node", WAIT, || {
        spread = nodes.iter().map(held).collect();
        spread.iter().all(|h| h.len() == 2)
    });
    let mut all: Vec<String> = spread.concat();
    all.sort();
    assert_eq!(all, ids, "every plugin is held by one node: {spread:?}");
    // Each node polls what it holds.
    for id in &ids {
        eventually(&format!("{id}'s items stored"), WAIT, || {
            nodes[0].get_json(&format!("/api/events?plugin={id}"))["events"]
                .as_array()
                .unwrap()
                .len()
                == 2
        });
    }

    // The plugin is removed from the node that holds its lease: that node gives
    // the lease up at its next round, and another node takes it.
    let removed = spread[0][0].clone();
    std::fs::remove_file(nodes[0].plugins_dir().join(format!("{removed}.wasm"))).unwrap();
    eventually("the lease released", WAIT, || {
        nodes[0]
            .log()
            .contains("poll leases released: the plugins are no longer loaded here")
    });
    eventually("another node to take it over", WAIT, || {
        nodes[1..].iter().any(|n| n.holds_poll_lease(&removed))
    });
    assert!(!nodes[0].holds_poll_lease(&removed));
}
