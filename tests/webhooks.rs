//! The webhook path end to end: the real binary, real compiled plugins, real HTTP.

mod common;

use common::{client, github_signature, HostSpec};
use reqwest::blocking::RequestBuilder;
use serde_json::Value;

const SECRET: &str = "It's a Secret to Everybody";

fn github_host() -> common::Host {
    HostSpec::default()
        .example_plugin("github")
        .config("[plugins.github]\nconfig = { secret = \"${GH_SECRET}\" }\n")
        .env("GH_SECRET", SECRET)
        .start()
}

fn push_body() -> Vec<u8> {
    br#"{"ref":"refs/heads/main","repository":{"full_name":"acme/widgets"},"commits":[]}"#.to_vec()
}

fn github_delivery(host: &common::Host, event: &str, body: &[u8]) -> RequestBuilder {
    client()
        .post(host.url("/hooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .body(body.to_vec())
}

#[test]
fn signed_github_delivery_is_accepted_and_names_its_event() {
    let host = github_host();
    let body = push_body();
    let response = github_delivery(&host, "push", &body)
        .header("x-hub-signature-256", github_signature(SECRET, &body))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().unwrap();
    assert_eq!(reply["event"]["id"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(reply["event"]["kind"], "github.push");
    let log = host.log();
    assert!(log.contains("event received"), "{log}");
    assert!(log.contains("acme/widgets"), "{log}");
}

#[test]
fn an_action_in_the_body_extends_the_kind() {
    let host = github_host();
    let body = br#"{"action":"opened","repository":{"full_name":"acme/widgets"}}"#;
    let response = github_delivery(&host, "pull_request", body)
        .header("x-hub-signature-256", github_signature(SECRET, body))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().unwrap();
    assert_eq!(reply["event"]["kind"], "github.pull_request.opened");
}

#[test]
fn the_event_payload_is_the_body_byte_for_byte() {
    // Indented, keys out of order, a number no float holds exactly and an escape:
    // parsing and re-serialising would change each of them.
    let body = b"{\n  \"zen\": \"Keep it logically awesome.\",\n  \"hook_id\": 123456789012345678901234567890,\n  \"repository\": { \"full_name\": \"acme/w\\u00e9dgets\" },\n  \"ref\": \"refs/heads/main\"\n}";
    let host = github_host();
    let response = github_delivery(&host, "push", body)
        .header("x-hub-signature-256", github_signature(SECRET, body))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
    let store = rusqlite::Connection::open(host.data_dir().join("events.sqlite3")).unwrap();
    let (payload, subject): (String, String) = store
        .query_row(
            "SELECT payload, subject FROM events WHERE plugin = 'github'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(payload.as_bytes(), body);
    assert_eq!(subject, "acme/w\u{e9}dgets");
}

#[test]
fn a_body_that_is_not_a_github_delivery_is_a_400_that_says_why() {
    let host = github_host();
    for (body, why) in [
        (&b"<push/>"[..], "expected value at line 1 column 1"),
        (
            br#"{"action":5}"#,
            "invalid type: integer `5`, expected a string",
        ),
        (br#"{"repository":"acme/widgets"}"#, "invalid type: string"),
    ] {
        let response = github_delivery(&host, "push", body)
            .header("x-hub-signature-256", github_signature(SECRET, body))
            .send()
            .unwrap();
        assert_eq!(response.status(), 400);
        let text = response.text().unwrap();
        assert!(text.contains("body is not the expected JSON"), "{text}");
        assert!(text.contains(why), "{text}");
    }
}

#[test]
fn the_example_from_githubs_documentation_verifies() {
    // GitHub's documented test vector: secret, payload and signature.
    let host = github_host();
    let response = client()
        .post(host.url("/hooks/github"))
        .header("x-github-event", "ping")
        .header("x-github-delivery", "1")
        .header(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )
        .body("Hello, World!")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
}

#[test]
fn wrong_missing_and_malformed_signatures_are_unauthorized() {
    let host = github_host();
    let body = push_body();
    let good = github_signature(SECRET, &body);
    let cases: Vec<(&str, Option<String>)> = vec![
        (
            "wrong secret",
            Some(github_signature("not the secret", &body)),
        ),
        ("missing", None),
        (
            "no prefix",
            Some(good.trim_start_matches("sha256=").to_string()),
        ),
        ("sha1 prefix", Some(good.replace("sha256=", "sha1="))),
        ("not hex", Some(format!("sha256={}", "zz".repeat(32)))),
        ("odd length", Some(good[..good.len() - 1].to_string())),
        ("truncated", Some(good[..good.len() - 2].to_string())),
        ("empty", Some(String::new())),
        (
            "signature of another body",
            Some(github_signature(SECRET, b"{}")),
        ),
    ];
    for (case, signature) in cases {
        let mut request = github_delivery(&host, "push", &body);
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), 401, "case {case}");
        let reply: Value = response.json().unwrap();
        assert_eq!(reply["error"], "unauthorized", "case {case}");
    }
}

#[test]
fn unknown_and_invalid_plugin_ids_are_not_found() {
    let host = github_host();
    for path in [
        "/hooks/stripe",
        "/hooks/stripe/x",
        "/hooks/GitHub",
        "/hooks/..%2Fgithub",
    ] {
        let response = client().post(host.url(path)).body("{}").send().unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[test]
fn bodies_over_the_limit_get_413_and_at_the_limit_are_accepted() {
    let host = github_host();
    let limit = 1024 * 1024;
    // A JSON body of exactly the default limit, then one byte more.
    let prefix = br#"{"pad":""#;
    let mut body = prefix.to_vec();
    body.resize(limit - 2, b'a');
    body.extend_from_slice(b"\"}");
    assert_eq!(body.len(), limit);
    let response = github_delivery(&host, "push", &body)
        .header("x-hub-signature-256", github_signature(SECRET, &body))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);

    let mut oversize = body.clone();
    oversize.insert(1, b' ');
    let response = github_delivery(&host, "push", &oversize)
        .header("x-hub-signature-256", github_signature(SECRET, &oversize))
        .send()
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[test]
fn the_body_limit_is_configurable() {
    let host = HostSpec::default()
        .test_plugin("faulty")
        .config("max_body_bytes = 16\n")
        .start();
    let ok = host.post_body("/hooks/faulty/ok", vec![b'x'; 16]);
    assert_eq!(ok.status(), 200);
    let too_big = host.post_body("/hooks/faulty/ok", vec![b'x'; 17]);
    assert_eq!(too_big.status(), 413);
}

#[test]
fn a_trap_is_a_500_that_reveals_nothing_and_the_next_call_succeeds() {
    let host = HostSpec::default().test_plugin("faulty").start();
    let response = host.post("/hooks/faulty/trap");
    assert_eq!(response.status(), 500);
    let body = response.text().unwrap();
    assert!(
        !body.contains("asked to trap") && !body.contains("wasm"),
        "{body}"
    );

    for _ in 0..3 {
        let response = host.post("/hooks/faulty/ok");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().unwrap(), "ok");
    }
    let log = host.log();
    assert!(log.contains("plugin faulty 1 trapped"), "{log}");
    assert!(log.contains("asked to trap"), "{log}");
}

#[test]
fn plugin_errors_map_to_http_statuses() {
    let host = HostSpec::default().test_plugin("faulty").start();
    let cases = [
        ("unauthorized", 401, Some("said unauthorized")),
        ("bad-request", 400, Some("said bad-request")),
        ("unavailable", 503, None),
        ("internal", 500, None),
    ];
    for (case, status, shown) in cases {
        let response = host.post(&format!("/hooks/faulty/error/{case}"));
        assert_eq!(response.status(), status, "{case}");
        if status == 503 {
            assert!(response.headers().contains_key("retry-after"));
        }
        let body = response.text().unwrap();
        match shown {
            Some(message) => assert!(body.contains(message), "{case}: {body}"),
            None => assert!(!body.contains("said"), "{case} leaked its message: {body}"),
        }
    }
}

#[test]
fn malformed_outcomes_are_500s() {
    let host = HostSpec::default().test_plugin("faulty").start();
    for path in ["/hooks/faulty/bad-payload", "/hooks/faulty/bad-status"] {
        let response = host.post(path);
        assert_eq!(response.status(), 500, "{path}");
    }
    let log = host.log();
    assert!(log.contains("payload that is not JSON"), "{log}");
    assert!(log.contains("invalid HTTP status 1000"), "{log}");
}

#[test]
fn a_plugin_that_runs_past_its_timeout_is_stopped_and_the_host_keeps_serving() {
    let host = HostSpec::default()
        .test_plugin("faulty")
        .config("[plugins.faulty]\ntimeout = \"300ms\"\n")
        .start();
    let response = host.post("/hooks/faulty/spin");
    assert_eq!(response.status(), 504);
    let response = host.post("/hooks/faulty/ok");
    assert_eq!(response.status(), 200);
}

#[test]
fn guest_stdout_and_stderr_go_to_the_log_tagged_with_the_plugin() {
    let host = HostSpec::default().test_plugin("faulty").start();
    let response = host.post("/hooks/faulty/print");
    assert_eq!(response.status(), 200);
    let line = host.log_line("to stdout");
    assert!(line.contains("plugin=faulty"), "{line}");
    let log = host.log();
    assert!(
        log.lines()
            .any(|l| l.contains("to stderr") && l.contains("WARN")),
        "{log}"
    );
}

#[test]
fn the_path_below_the_mount_reaches_the_plugin() {
    let host = HostSpec::default().test_plugin("faulty").start();
    let response = host.post("/hooks/faulty/nowhere/deeper?x=1");
    assert_eq!(response.status(), 400);
    assert!(response
        .text()
        .unwrap()
        .contains("unknown path /nowhere/deeper"));
}

#[test]
fn healthz_answers() {
    let host = HostSpec::default().start();
    let response = host.get("/healthz");
    assert_eq!(response.status(), 200);
}
