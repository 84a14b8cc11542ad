//! Polling: the scheduler, the poll route, atomic cursor saves and plugin state,
//! driven through the real binary against a feed served on 127.0.0.1 by the test.

mod common;

use std::time::Duration;

use common::feed::{Feed, Mode};
use common::{client, eventually, test_plugin, Host, HostSpec};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// The event ids stored for `plugin`, oldest first.
fn stored_ids(host: &Host, plugin: &str) -> Vec<String> {
    let reply = host.get_json(&format!("/api/events?plugin={plugin}&limit=500"));
    let mut ids: Vec<String> = reply["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    ids.dedup();
    ids
}

fn poll_status(host: &Host, id: &str) -> Option<Value> {
    host.plugin_listing(id)?.get("poll").cloned()
}

fn poll_now(host: &Host, id: &str) -> (u16, Value) {
    let response = client()
        .post(host.url(&format!("/api/plugins/{id}/poll")))
        .send()
        .unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

fn numbers(ids: &[String]) -> Vec<u32> {
    let mut n: Vec<u32> = ids.iter().map(|id| id.parse().unwrap()).collect();
    n.sort();
    n
}

#[test]
fn items_arrive_once_each_across_restarts_and_a_crash_between_poll_and_save() {
    let feed = Feed::start(&[1, 2, 3]);
    let mut host = feed.host_spec("300ms").start();
    eventually("the first three items", WAIT, || {
        stored_ids(&host, "feed").len() == 3
    });

    host.kill_and_restart();
    feed.publish(&[4, 5]);
    eventually("items 4 and 5 after a restart", WAIT, || {
        stored_ids(&host, "feed").len() == 5
    });

    // Hold the next poll's request at the provider, kill the host while it waits
    // (the plugin has asked, nothing is saved), then let the provider answer.
    feed.publish(&[6, 7]);
    feed.set_mode(Mode::Hold);
    let before = feed.request_count();
    eventually("a poll to reach the provider", WAIT, || {
        feed.request_count() > before
    });
    host.kill();
    feed.set_mode(Mode::Serve);
    host.restart();
    eventually("items 6 and 7 after the crash", WAIT, || {
        stored_ids(&host, "feed").len() == 7
    });
    // A few more polls find nothing new, and nothing came twice.
    let polled = feed.request_count();
    eventually("more polls", WAIT, || feed.request_count() >= polled + 3);
    let ids = stored_ids(&host, "feed");
    assert_eq!(numbers(&ids), [1, 2, 3, 4, 5, 6, 7], "{ids:?}");
    assert_eq!(
        ids,
        ["1", "2", "3", "4", "5", "6", "7"],
        "stored oldest first"
    );
    let status = poll_status(&host, "feed").unwrap();
    assert_eq!(status["cursor"], "7", "{status}");
    assert_eq!(status["consecutive_failures"], 0, "{status}");
}

/// Gaps between the provider's requests, in order.
fn gaps(feed: &Feed) -> Vec<Duration> {
    let state = feed.state.lock().unwrap();
    state
        .requests
        .windows(2)
        .map(|pair| pair[1].at - pair[0].at)
        .collect()
}

fn assert_backs_off_and_keeps_the_cursor(mode: Mode, extra_config: &str, error_mentions: &str) {
    let feed = Feed::start(&[1]);
    let host = HostSpec::default()
        .example_plugin("feed")
        .config(&feed.config("200ms", extra_config))
        .start();
    eventually("item 1", WAIT, || stored_ids(&host, "feed") == ["1"]);
    let etag_before = {
        let state = feed.state.lock().unwrap();
        format!("\"v{}\"", state.version)
    };

    feed.set_mode(mode);
    let first_failing = feed.request_count();
    eventually("four failed polls", WAIT, || {
        poll_status(&host, "feed").unwrap()["consecutive_failures"]
            .as_u64()
            .unwrap()
            >= 4
    });
    let status = poll_status(&host, "feed").unwrap();
    assert_eq!(status["cursor"], "1", "the cursor stays: {status}");
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains(error_mentions), "{error}");

    // Each wait between failed polls is longer than the one before.
    let failing = gaps(&feed)[first_failing..].to_vec();
    assert!(failing.len() >= 3, "{failing:?}");
    for pair in failing.windows(2) {
        assert!(pair[1] > pair[0], "the wait did not grow: {failing:?}");
    }
    // The failed polls changed no state either: each sent the same ETag.
    for seen in &feed.state.lock().unwrap().requests[first_failing..] {
        assert_eq!(seen.if_none_match.as_deref(), Some(etag_before.as_str()));
    }

    // Recovery: a manual poll succeeds at once, finds only the new item (the
    // cursor was kept, so item 1 is not even offered again), and resets the backoff.
    feed.set_mode(Mode::Serve);
    feed.publish(&[2]);
    let (status_code, report) = poll_now(&host, "feed");
    assert_eq!(status_code, 200, "{report}");
    let events: Vec<(&str, bool)> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap(),
                e["duplicate"].as_bool().unwrap(),
            )
        })
        .collect();
    // A timer poll may have found item 2 a moment before; then this one found nothing.
    assert!(events == [("2", false)] || events.is_empty(), "{report}");
    assert_eq!(report["cursor"], "2", "{report}");
    let status = poll_status(&host, "feed").unwrap();
    assert_eq!(status["consecutive_failures"], 0, "{status}");
    assert_eq!(status["last_error"], Value::Null, "{status}");
    assert_eq!(stored_ids(&host, "feed"), ["1", "2"]);
}

#[test]
fn a_provider_answering_500_keeps_the_cursor_and_the_wait_grows() {
    assert_backs_off_and_keeps_the_cursor(Mode::Fail, "", "500");
}

#[test]
fn a_provider_that_times_out_keeps_the_cursor_and_the_wait_grows() {
    assert_backs_off_and_keeps_the_cursor(Mode::Hold, "timeout = \"300ms\"", "did not finish");
}

#[test]
fn the_poll_route_polls_now_and_says_why_it_cannot() {
    let feed = Feed::start(&[1]);
    let host = HostSpec::default()
        .plugin("ticker", test_plugin("ticker-v1"))
        .plugin("quiet", test_plugin("versioned-v1"))
        .example_plugin("feed")
        .config(&feed.config("1h", ""))
        .start();
    // The timer's first poll comes within seconds of the start, the next in an
    // hour; after it, two manual polls give the next two ticks, each stored as new.
    eventually("the first tick", WAIT, || {
        stored_ids(&host, "ticker") == ["1"]
    });
    let (status, first) = poll_now(&host, "ticker");
    assert_eq!(status, 200, "{first}");
    let (status, second) = poll_now(&host, "ticker");
    assert_eq!(status, 200, "{second}");
    let tick = |report: &Value| -> u64 { report["cursor"].as_str().unwrap().parse().unwrap() };
    assert_eq!((tick(&first), tick(&second)), (2, 3));
    assert_eq!(second["events"][0]["event_id"], second["cursor"]);
    assert_eq!(second["events"][0]["duplicate"], false);
    assert!(second["events"][0]["id"].as_i64().unwrap() > 0);
    assert_eq!(second["version"], "1.0.0");
    assert!(second["next_poll_at"].is_string(), "{second}");
    let status = poll_status(&host, "ticker").unwrap();
    assert_eq!(status["interval_seconds"], 3600.0, "{status}");

    // A failing poll answers with its error and a non-2xx status.
    feed.set_mode(Mode::Fail);
    let (status, failed) = poll_now(&host, "feed");
    assert_eq!(status, 503, "{failed}");
    assert_eq!(failed["error"], "plugin_error");
    assert!(
        failed["message"].as_str().unwrap().contains("500"),
        "{failed}"
    );

    let (status, reply) = poll_now(&host, "nope");
    assert_eq!(status, 404, "{reply}");
    let (status, reply) = poll_now(&host, "quiet");
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error"], "not_polling");
    assert!(poll_status(&host, "quiet").is_none());
}

#[test]
fn the_etag_is_kept_in_state_across_restarts_and_a_304_changes_nothing() {
    let feed = Feed::start(&[1, 2]);
    let mut host = feed.host_spec("1h").start();
    // The timer's first poll comes within seconds of the start.
    eventually("the first poll", WAIT, || {
        stored_ids(&host, "feed").len() == 2
    });

    let (status, report) = poll_now(&host, "feed");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["events"], json!([]), "{report}");
    assert_eq!(report["cursor"], "2");
    let last = |feed: &Feed| {
        let state = feed.state.lock().unwrap();
        state.requests.last().unwrap().if_none_match.clone()
    };
    assert_eq!(last(&feed).as_deref(), Some("\"v1\""));

    feed.publish(&[3]);
    let (_, report) = poll_now(&host, "feed");
    assert_eq!(report["events"][0]["event_id"], "3", "{report}");
    assert_eq!(last(&feed).as_deref(), Some("\"v1\""));

    // After a restart the next timer poll is an hour away (the last save was just
    // now); a manual poll sends the ETag the last poll saved.
    host.kill_and_restart();
    let (_, report) = poll_now(&host, "feed");
    assert_eq!(report["events"], json!([]), "{report}");
    assert_eq!(last(&feed).as_deref(), Some("\"v2\""));
    assert_eq!(stored_ids(&host, "feed"), ["1", "2", "3"]);
}

#[test]
fn timers_follow_hot_reloads_and_a_replaced_plugin_keeps_its_cursor() {
    let host = HostSpec::default().start();
    let path = host.plugins_dir().join("app.wasm");
    // New: an hourly ticker gets a timer, whose first poll comes at once.
    std::fs::copy(test_plugin("ticker-v1"), &path).unwrap();
    eventually("a timer for the new plugin", WAIT, || {
        poll_status(&host, "app").is_some()
    });
    eventually("its first tick", WAIT, || stored_ids(&host, "app") == ["1"]);
    assert_eq!(
        poll_status(&host, "app").unwrap()["interval_seconds"],
        3600.0
    );

    // Replaced: version 2 polls every second and continues from the cursor.
    std::fs::copy(test_plugin("ticker-v2"), &path).unwrap();
    eventually("ticks from version 2", WAIT, || {
        stored_ids(&host, "app").len() >= 3
    });
    let status = poll_status(&host, "app").unwrap();
    assert_eq!(status["interval_seconds"], 1.0, "{status}");
    let events = host.get_json("/api/events?plugin=app&limit=100");
    let by_version: Vec<(String, String)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap().to_string(),
                e["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(by_version[0], ("1".to_string(), "1.0.0".to_string()));
    assert_eq!(
        by_version[1],
        ("2".to_string(), "2.0.0".to_string()),
        "{by_version:?}"
    );

    // Removed: the timer goes and the ticks stop.
    std::fs::remove_file(&path).unwrap();
    eventually("the timer to go", WAIT, || {
        host.get_json("/api/plugins")["plugins"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    let count = stored_ids(&host, "app").len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        stored_ids(&host, "app").len(),
        count,
        "polled after removal"
    );
}

fn hook(host: &Host, id: &str, body: &str) -> String {
    client()
        .post(host.url(&format!("/hooks/{id}")))
        .body(body.to_string())
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn state_is_per_plugin_durable_and_limited() {
    let mut host = HostSpec::default()
        .plugin("a", test_plugin("ticker-v1"))
        .plugin("b", test_plugin("ticker-v1"))
        .start();
    assert_eq!(hook(&host, "a", "color=blue"), "ok");
    assert_eq!(hook(&host, "a", "color"), "blue");
    assert_eq!(hook(&host, "b", "color"), "none", "state is per plugin");
    host.kill_and_restart();
    assert_eq!(
        hook(&host, "a", "color"),
        "blue",
        "state survives a restart"
    );

    let long_key = "k".repeat(257);
    let refused = hook(&host, "a", &format!("{long_key}=x"));
    assert!(refused.starts_with("StateError::InvalidKey"), "{refused}");
    let big = hook(&host, "a", &format!("big={}", "x".repeat(64 * 1024 + 1)));
    assert!(big.starts_with("StateError::ValueTooLarge"), "{big}");
    for n in 1..1000 {
        assert_eq!(hook(&host, "a", &format!("k{n}=v")), "ok", "key {n}");
    }
    let full = hook(&host, "a", "one-more=v");
    assert!(full.starts_with("StateError::TooManyKeys"), "{full}");
    assert_eq!(
        hook(&host, "a", "color=red"),
        "ok",
        "replacing a key is fine"
    );
}

/// `(holder, expires_at)` of `plugin`'s poll lease, read from a stopped host's store.
fn stored_lease(host: &Host, plugin: &str) -> (String, i64) {
    let store = rusqlite::Connection::open(host.data_dir().join("events.sqlite3")).unwrap();
    store
        .query_row(
            "SELECT holder, expires_at FROM poll_leases WHERE plugin = ?1",
            [plugin],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

fn healthz(host: &Host) -> Value {
    host.get_ok("/healthz").json().unwrap()
}

#[test]
fn a_single_node_holds_the_poll_lease_and_releases_it_at_sigterm_not_at_a_kill() {
    let feed = Feed::start(&[1, 2]);
    let mut host = feed.host_spec("1s").start();
    let health = healthz(&host);
    assert_eq!(health["status"], "ok", "{health}");
    let node = health["node"].as_str().unwrap().to_string();
    assert!(node.contains(&format!("-{}-", host.pid())), "{node}");

    // Alone on its store, the node takes the lease at once and polls as ever.
    eventually("the first items", WAIT, || {
        stored_ids(&host, "feed").len() == 2
    });
    let status = poll_status(&host, "feed").unwrap();
    assert_eq!(status["lease_held"], true, "{status}");
    assert!(host.log().contains(&node), "the node id is logged at start");

    // A graceful stop gives the lease up: expired, still naming its last holder.
    host.signal("TERM");
    assert!(host.wait_for_exit(WAIT).success());
    assert_eq!(
        stored_lease(&host, "feed"),
        (node.clone(), 0),
        "{}",
        host.log()
    );

    // A new process is a new node; it takes the lease and polls on.
    feed.publish(&[3]);
    host.restart();
    let restarted = healthz(&host)["node"].as_str().unwrap().to_string();
    assert_ne!(restarted, node);
    eventually("item 3 after the restart", WAIT, || {
        stored_ids(&host, "feed").len() == 3
    });
    assert_eq!(poll_status(&host, "feed").unwrap()["lease_held"], true);

    // Killed, a node releases nothing: its lease runs out in the store (SQLite
    // releases it when the next process opens the file).
    host.kill();
    let (holder, expires_at) = stored_lease(&host, "feed");
    assert_eq!(holder, restarted);
    assert!(expires_at > 0);
    host.restart();
    eventually("the lease taken after the kill", WAIT, || {
        poll_status(&host, "feed").unwrap()["lease_held"] == true
    });
    let ids = stored_ids(&host, "feed");
    assert_eq!(numbers(&ids), [1, 2, 3], "{ids:?}");
}
