//! The two contract versions side by side on the real binary: a component built
//! against `hookhost:plugin@0.2.0` (the `v2-probe` test plugin) gets the new
//! crypto and the request's public `url`, a `0.1.0` one beside it keeps working,
//! and `/api/plugins` and `hookhost check` name each one's version.

mod common;

use std::process::Command;
use std::time::Duration;

use common::traffic::SteadyTraffic;
use common::{client, event_ids, eventually, output_text, test_plugin, versioned_plugin, HostSpec};
use serde_json::{json, Value};

// RFC 8032, section 7.1, TEST 1: the empty message.
const ED25519_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const ED25519_SIG: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                           5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

/// POSTs `body` to `path` and returns the probe's JSON answer, which must be 200.
fn probe(host: &common::Host, path: &str, body: &Value) -> Value {
    let response = client().post(host.url(path)).json(body).send().unwrap();
    assert_eq!(response.status(), 200, "POST {path}");
    response.json().unwrap()
}

#[test]
fn a_0_2_0_plugin_verifies_ed25519_and_hmacs_with_the_rfc_vectors() {
    let host = HostSpec::default().test_plugin("v2-probe").start();
    let mut tampered_sig = hex::decode(ED25519_SIG).unwrap();
    tampered_sig[10] ^= 0x40;
    let case = |key: &str, message: &str, signature: &str| json!({ "key": key, "message": message, "signature": signature });
    let answer = probe(
        &host,
        "/hooks/v2-probe",
        &json!({
            "ed25519": [
                case(ED25519_KEY, "", ED25519_SIG),
                // Another message, a changed signature, then lengths that are wrong.
                case(ED25519_KEY, "00", ED25519_SIG),
                case(ED25519_KEY, "", &hex::encode(&tampered_sig)),
                case(&ED25519_KEY[..62], "", ED25519_SIG),
                case(ED25519_KEY, "", &ED25519_SIG[..126]),
                case("", "", ""),
            ],
            "hmac": [
                // RFC 2202 test case 2 (HMAC-SHA1).
                { "alg": "sha1", "key": hex::encode("Jefe"),
                  "data": hex::encode("what do ya want for nothing?") },
                // RFC 4231 test case 2 (HMAC-SHA512, and SHA256 as in 0.1.0).
                { "alg": "sha512", "key": hex::encode("Jefe"),
                  "data": hex::encode("what do ya want for nothing?") },
                { "alg": "sha256", "key": hex::encode("Jefe"),
                  "data": hex::encode("what do ya want for nothing?") },
                // RFC 2202 test case 6: a key longer than a block is hashed first.
                { "alg": "sha1", "key": "aa".repeat(80),
                  "data": hex::encode("Test Using Larger Than Block-Size Key - Hash Key First") },
            ],
        }),
    );
    assert_eq!(
        answer["ed25519"],
        json!([true, false, false, false, false, false])
    );
    assert_eq!(
        answer["hmac"],
        json!([
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "aa4ae5e15272d00e95705637ce8a3b55ed402112",
        ])
    );
}

#[test]
fn url_is_public_url_followed_by_the_request_path_and_query() {
    let host = HostSpec::default()
        .config("public_url = \"https://hooks.example.com/\"\n")
        .test_plugin("v2-probe")
        .start();
    let answer = probe(
        &host,
        "/hooks/v2-probe/sms/in%20bound?b=2&a=x%20y&a=1",
        &json!({}),
    );
    assert_eq!(
        answer["url"],
        "https://hooks.example.com/hooks/v2-probe/sms/in%20bound?b=2&a=x%20y&a=1"
    );
    assert_eq!(answer["path"], "/sms/in bound");
    assert_eq!(answer["query"], "b=2&a=x%20y&a=1");
    // The mount itself, without a query: no `?`.
    let answer = probe(&host, "/hooks/v2-probe", &json!({}));
    assert_eq!(answer["url"], "https://hooks.example.com/hooks/v2-probe");
}

#[test]
fn without_public_url_the_url_comes_from_the_host_header() {
    let host = HostSpec::default().test_plugin("v2-probe").start();
    // As the client addressed it: reqwest sends `Host: 127.0.0.1:<port>`.
    let answer = probe(&host, "/hooks/v2-probe/x?q=1", &json!({}));
    assert_eq!(answer["url"], host.url("/hooks/v2-probe/x?q=1"));

    let named = |host_header: &str| -> Value {
        let response = client()
            .post(host.url("/hooks/v2-probe?q=1"))
            .header("host", host_header)
            .json(&json!({}))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().unwrap()
    };
    assert_eq!(
        named("hooks.example.org:8443")["url"],
        "http://hooks.example.org:8443/hooks/v2-probe?q=1"
    );
    // A Host that would reshape the URL is left out, not spliced in.
    assert_eq!(
        named("evil.example@hooks.example.org")["url"],
        "http:///hooks/v2-probe?q=1"
    );
}

#[test]
fn a_0_1_0_and_a_0_2_0_plugin_are_served_side_by_side_and_listed_with_their_version() {
    let host = HostSpec::default()
        .config("public_url = \"https://hooks.example.com\"\n")
        .plugin("old", test_plugin("versioned-v1"))
        .test_plugin("v2-probe")
        .start();
    assert_eq!(host.hook_answer("old").as_deref(), Some("v1"));
    let answer = probe(&host, "/hooks/v2-probe", &json!({ "emit": "evt-1" }));
    assert_eq!(answer["url"], "https://hooks.example.com/hooks/v2-probe");
    // Again after the other, so that neither call disturbed the other's bindings.
    assert_eq!(host.hook_answer("old").as_deref(), Some("v1"));

    let events = host.get_json("/api/events");
    assert_eq!(event_ids(&events), ["evt-1"]);
    // Replay rebuilds the url from public_url and the stored path and query.
    let id = events["events"][0]["id"].as_str().unwrap();
    let replay: Value = client()
        .post(host.url(&format!("/api/events/{id}/replay")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let replayed: Value = serde_json::from_str(replay["replay"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(replayed["url"], "https://hooks.example.com/hooks/v2-probe");

    let old = host.plugin_listing("old").unwrap();
    assert_eq!(old["wit"], "hookhost:plugin@0.1.0");
    assert_eq!(old["version"], "1.0.0");
    let new = host.plugin_listing("v2-probe").unwrap();
    assert_eq!(new["wit"], "hookhost:plugin@0.2.0");
    assert_eq!(new["version"], "0.2.0");
}

#[test]
fn hookhost_check_prints_each_plugins_contract_version() {
    for (plugin, wit) in [
        ("versioned-v1", "hookhost:plugin@0.1.0"),
        ("v2-probe", "hookhost:plugin@0.2.0"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_hookhost"))
            .arg("check")
            .arg(test_plugin(plugin))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{plugin}: {}",
            output_text(&output)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let guest = wit.replace("plugin@", "plugin/guest@");
        assert!(stdout.contains(&format!("implements {guest}")), "{stdout}");
        assert!(
            stdout
                .lines()
                .any(|line| line.split_whitespace().eq(["wit:", wit])),
            "{stdout}"
        );
    }
}

#[test]
fn a_plugin_hot_reloaded_between_0_1_0_and_0_2_0_builds_fails_no_request() {
    let old = versioned_plugin("v1");
    let new = std::fs::read(test_plugin("v2-probe")).unwrap();
    let host = HostSpec::default().versioned_app().start();
    let traffic = SteadyTraffic::start(vec![host.url("/hooks/app")]);
    for round in 0..6 {
        let (bytes, wit) = if round % 2 == 0 {
            (&new, "hookhost:plugin@0.2.0")
        } else {
            (&old, "hookhost:plugin@0.1.0")
        };
        host.replace_plugin_file("app", bytes);
        eventually(
            &format!("round {round} to serve {wit}"),
            Duration::from_secs(60),
            || {
                host.plugin_listing("app")
                    .is_some_and(|entry| entry["wit"] == wit)
            },
        );
        let answer = host.hook_answer("app").unwrap();
        let answered_by_new = answer.contains("\"url\":\"http://");
        assert_eq!(
            answered_by_new,
            wit.ends_with("0.2.0"),
            "round {round}: {answer}"
        );
    }
    let seen = traffic.stop_all_succeeded();
    assert!(seen.iter().any(|(_, body)| body == "v1"));
    assert!(seen.iter().any(|(_, body)| body.contains("\"url\"")));
}
