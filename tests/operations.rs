//! What an operator relies on, against the real binary: `/metrics` after real
//! traffic, graceful shutdown on SIGTERM with a slow call in flight, JSON logs,
//! `/healthz` keeping the database's secrets to the log, and the shipped config's
//! development secrets refused off loopback.

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use common::postgres::Postgres;
use common::{client, event_ids, eventually, output_text, repo_root, HostSpec};
use serde_json::Value;

/// One scrape, parsed: every sample keyed by its name and its labels (sorted), so
/// that label order does not matter.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// Parses the OpenMetrics text format, failing the test on any line that is not
    /// a comment (`# HELP`, `# TYPE`, `# UNIT`), a sample, or the final `# EOF`.
    fn parse(text: &str) -> Scrape {
        assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line == "# EOF" {
                continue;
            }
            if let Some(comment) = line.strip_prefix("# ") {
                let kind = comment.split(' ').next().unwrap();
                assert!(
                    ["HELP", "TYPE", "UNIT"].contains(&kind),
                    "unexpected comment {line:?}"
                );
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("a sample without a value: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("a sample whose value is not a number: {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                    (name, parse_labels(labels, line))
                }
                None => (series, Vec::new()),
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line:?}"
            );
            samples.insert(key(name, &labels), value);
        }
        Scrape(samples)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0.get(&key(name, &labels)).copied()
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {:#?}", self.0))
    }
}

fn parse_labels(text: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label in {line:?}"));
        let end = after
            .find('"')
            .unwrap_or_else(|| panic!("unclosed label value in {line:?}"));
        labels.push((name.to_string(), after[..end].to_string()));
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    labels
}

fn key(name: &str, labels: &[(String, String)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

fn scrape(host: &common::Host) -> Scrape {
    let response = host.get("/metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    Scrape::parse(&response.text().unwrap())
}

/// Waits until one call into `faulty` is running, as the host itself reports it.
fn wait_for_a_call_in_flight(host: &common::Host) {
    eventually(
        "the slow call to be in flight",
        Duration::from_secs(10),
        || {
            let scrape = scrape(host);
            scrape.value("hookhost_plugin_instances_in_use", &[("plugin", "faulty")]) == Some(1.0)
        },
    );
}

fn post(host: &common::Host, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    let mut request = client().post(host.url(path)).body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().unwrap().status().as_u16()
}

#[test]
fn metrics_count_requests_failures_deliveries_and_reloads() {
    let host = HostSpec::default()
        .test_plugin("faulty")
        .test_plugin("handler")
        .config(
            "[plugins.faulty]\ntimeout = \"300ms\"\n\
             [plugins.handler]\nconfig = { subscriptions = \"faulty.flaky.*\" }\n\
             max_attempts = 2\nretry_base = \"50ms\"\n",
        )
        .start();
    let before = scrape(&host);
    assert_eq!(
        before.value(
            "hookhost_webhook_requests_total",
            &[("plugin", "faulty"), ("status", "200")]
        ),
        None
    );
    assert_eq!(
        before.get(
            "hookhost_reloads_total",
            &[("plugin", "faulty"), ("outcome", "loaded")]
        ),
        1.0
    );

    for id in ["a", "b", "c"] {
        assert_eq!(post(&host, "/hooks/faulty/ok", &[("x-id", id)], ""), 200);
    }
    assert_eq!(post(&host, "/hooks/faulty/trap", &[], ""), 500);
    assert_eq!(post(&host, "/hooks/faulty/spin", &[], ""), 504);
    assert_eq!(
        post(&host, "/hooks/faulty/error/unauthorized", &[], ""),
        401
    );
    let flaky = |id: &str, body: &str| {
        let headers = [("x-id", id), ("x-kind", "faulty.flaky.test")];
        assert_eq!(post(&host, "/hooks/faulty/event", &headers, body), 200);
    };
    flaky("delivered", "{}");
    flaky("dead", r#"{"always_fail": true}"#);
    // A file that does not load counts as a failed reload of its plugin id.
    std::fs::write(host.plugins_dir().join("broken.wasm"), b"not wasm").unwrap();

    let deliveries = |m: &Scrape, outcome: &str| {
        m.value(
            "hookhost_deliveries_total",
            &[("plugin", "handler"), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    let mut after = scrape(&host);
    eventually(
        "the dead letter and the failed reload",
        Duration::from_secs(30),
        || {
            after = scrape(&host);
            deliveries(&after, "dead") == 1.0
                && after
                    .value(
                        "hookhost_reloads_total",
                        &[("plugin", "broken"), ("outcome", "failed")],
                    )
                    .is_some()
        },
    );

    let requests = |status: &str| {
        after.get(
            "hookhost_webhook_requests_total",
            &[("plugin", "faulty"), ("status", status)],
        )
    };
    assert_eq!(requests("200"), 5.0);
    assert_eq!(requests("500"), 1.0);
    assert_eq!(requests("504"), 1.0);
    assert_eq!(requests("401"), 1.0);
    assert_eq!(
        after.get(
            "hookhost_webhook_request_duration_seconds_count",
            &[("plugin", "faulty")]
        ),
        8.0
    );
    assert_eq!(
        after.get(
            "hookhost_webhook_request_duration_seconds_bucket",
            &[("plugin", "faulty"), ("le", "+Inf")]
        ),
        8.0
    );
    // The spin ran into its 300 ms deadline, so it is above the 0.25 s bucket.
    assert!(
        after.get(
            "hookhost_webhook_request_duration_seconds_bucket",
            &[("plugin", "faulty"), ("le", "0.25")]
        ) <= 7.0
    );
    let failures = |reason: &str| {
        after.get(
            "hookhost_plugin_call_failures_total",
            &[
                ("plugin", "faulty"),
                ("call", "handle_webhook"),
                ("reason", reason),
            ],
        )
    };
    assert_eq!(failures("trap"), 1.0);
    assert_eq!(failures("timeout"), 1.0);
    assert_eq!(
        after.get("hookhost_plugin_instances_in_use", &[("plugin", "faulty")]),
        0.0
    );
    assert_eq!(deliveries(&after, "delivered"), 1.0);
    assert_eq!(deliveries(&after, "failed"), 1.0);
    assert_eq!(deliveries(&after, "dead"), 1.0);
    assert_eq!(
        after.get(
            "hookhost_plugin_call_duration_seconds_count",
            &[("plugin", "handler"), ("call", "on_event")]
        ),
        3.0
    );
    // A request for a plugin that is not loaded is not a series of its own.
    assert_eq!(post(&host, "/hooks/nobody", &[], ""), 404);
    assert!(!scrape(&host).0.keys().any(|k| k.contains("nobody")));
}

#[test]
fn sigterm_lets_the_call_in_flight_finish_refuses_new_connections_and_exits_0() {
    let mut host = HostSpec::default()
        .test_plugin("faulty")
        .config("shutdown_timeout = \"20s\"\n")
        .start();
    let address = host.base_url.strip_prefix("http://").unwrap().to_string();
    let url = host.url("/hooks/faulty/sleep/3000");
    let slow = std::thread::spawn(move || {
        let response = client().post(url).header("x-id", "slow").send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    });
    wait_for_a_call_in_flight(&host);

    host.signal("TERM");
    eventually(
        "new connections to be refused",
        Duration::from_secs(5),
        || TcpStream::connect(&address).is_err(),
    );
    assert!(
        !slow.is_finished(),
        "the slow call ended before the listener closed"
    );
    let (status, body) = slow.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "ok"));
    let exit = host.wait_for_exit(Duration::from_secs(30));
    assert_eq!(exit.code(), Some(0), "{}", host.log());
    // The store was checkpointed and closed: nothing is left in the write-ahead log.
    let wal = host.data_dir().join("events.sqlite3-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL was left with content"
    );

    // The store opens cleanly and holds the event that was acknowledged.
    host.restart();
    let events: Value = host.get_json("/api/events?plugin=faulty");
    let ids = event_ids(&events);
    assert_eq!(ids, ["slow"], "{events}");
}

#[test]
fn a_call_that_outlasts_shutdown_timeout_is_abandoned_and_the_host_still_exits_0() {
    let mut host = HostSpec::default()
        .test_plugin("faulty")
        .config("shutdown_timeout = \"500ms\"\n[plugins.faulty]\ntimeout = \"60s\"\n")
        .start();
    let url = host.url("/hooks/faulty/sleep/30000");
    let slow = std::thread::spawn(move || client().post(url).send());
    wait_for_a_call_in_flight(&host);
    let signalled = std::time::Instant::now();
    host.signal("INT");
    let exit = host.wait_for_exit(Duration::from_secs(20));
    assert_eq!(exit.code(), Some(0), "{}", host.log());
    // Far below the call's own 30 s: the bound is what ended it.
    assert!(signalled.elapsed() < Duration::from_secs(15));
    assert!(
        slow.join().unwrap().is_err(),
        "the abandoned call was answered"
    );
    assert!(host.log().contains("abandoned"), "{}", host.log());
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let host = HostSpec::default()
        .test_plugin("faulty")
        .env("HOOKHOST_LOG_FORMAT", "json")
        .start();
    assert_eq!(
        post(&host, "/hooks/faulty/ok", &[("x-id", "logged")], ""),
        200
    );
    eventually("the event to be logged", Duration::from_secs(10), || {
        host.log().contains("event received")
    });
    let log = host.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    let received = lines
        .iter()
        .find(|line| line["fields"]["message"] == "event received")
        .unwrap_or_else(|| panic!("no `event received` record in {log}"));
    assert_eq!(received["level"], "INFO");
    assert_eq!(received["fields"]["plugin"], "faulty");
    assert_eq!(received["fields"]["event_id"], "logged");
    assert!(received["timestamp"].is_string(), "{received}");
}

/// The database being down is all `/healthz` tells anyone; the reason, which names
/// the database, goes to the log once per outage, and no password reaches either,
/// wherever the URL carried it.
#[test]
fn healthz_while_the_database_is_down_says_only_that_and_the_log_masks_the_password() {
    const PASSWORD: &str = "hunter2-in-the-query";
    let mut database = Postgres::start();
    let url = format!("{}?password={PASSWORD}&connect_timeout=2", database.url());
    let host = HostSpec::default()
        .config(&format!("database = \"{url}\"\n"))
        .start();
    let healthz = || {
        let response = host.get("/healthz");
        let status = response.status().as_u16();
        (status, response.text().unwrap())
    };
    assert_eq!(healthz().0, 200);

    database.stop();
    for _ in 0..3 {
        let (status, body) = healthz();
        assert_eq!(status, 503, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], "degraded", "{body}");
        assert_eq!(body["database"], "down", "{body}");
        assert!(body["node"].is_string(), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 3, "nothing else: {body}");
    }
    let failed = "the /healthz database check failed";
    eventually("the outage to be logged", Duration::from_secs(10), || {
        host.log().contains(failed)
    });
    let log = host.log();
    assert_eq!(log.matches(failed).count(), 1, "once per outage:\n{log}");
    let line = log.lines().find(|line| line.contains(failed)).unwrap();
    assert!(
        line.contains("password=***"),
        "the reason names the database: {line}"
    );

    database.start_again();
    eventually(
        "/healthz to answer 200 again",
        Duration::from_secs(30),
        || healthz().0 == 200,
    );
    eventually(
        "the end of the outage to be logged",
        Duration::from_secs(10),
        || {
            host.log()
                .contains("the /healthz database check works again")
        },
    );
    let log = host.log();
    assert!(log.contains("password=***"), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the password is in the log:\n{log}"
    );
}

/// `hookhost serve --listen 0.0.0.0:PORT` with the repository's hookhost.toml and
/// none of its variables set: the published development secrets would sign any
/// webhook, so it exits at once naming each key and the variable to set.
#[test]
fn the_shipped_config_refuses_development_secrets_off_loopback_and_warns_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .arg("serve")
        .arg("--config")
        .arg(repo_root().join("hookhost.toml"))
        .args(["--listen", "0.0.0.0:0", "--plugins"])
        .arg(dir.path().join("plugins"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually("hookhost to exit", Duration::from_secs(60), || {
        child.try_wait().unwrap().is_some()
    });
    let output = child.wait_with_output().unwrap();
    let text = output_text(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("refusing to listen on 0.0.0.0:0"), "{text}");
    for (key, variable) in [
        ("[plugins.github] config.secret", "GITHUB_WEBHOOK_SECRET"),
        ("[plugins.stripe] config.secret", "STRIPE_WEBHOOK_SECRET"),
        (
            "[plugins.slack] config.signing_secret",
            "SLACK_SIGNING_SECRET",
        ),
        (
            "[plugins.standard-rust] config.secret",
            "STANDARD_WEBHOOK_SECRET",
        ),
    ] {
        assert!(
            text.contains(&format!(
                "`{key}` is a published development secret; set {variable}"
            )),
            "{key}: {text}"
        );
    }
    assert!(!text.contains("listening on"), "{text}");

    // On loopback the same config serves, with a warning per secret.
    let shipped = std::fs::read_to_string(repo_root().join("hookhost.toml")).unwrap();
    let host = HostSpec::default().config(&shipped).start();
    let log = host.log();
    assert!(
        log.contains("`[plugins.github] config.secret` is a published development secret; set GITHUB_WEBHOOK_SECRET"),
        "{log}"
    );
    assert_eq!(
        log.matches("is a published development secret").count(),
        // github, stripe, slack, five standard-*, twilio, msgraph, zoom, linear,
        // shopify, meta's app secret and verify token.
        15,
        "{log}"
    );
}
