//! `zoom` (Rust): `x-zm-signature: v0=<hex HMAC-SHA256 of "v0:{ts}:{body}">`
//! under the app's Secret Token, and the `endpoint.url_validation` challenge.
//! Zoom publishes no signing library, so the test signs by its documented
//! algorithm with the RustCrypto `hmac` crate, using the example challenge of
//! Zoom's documentation.

use hmac::{Hmac, Mac};
use reqwest::blocking::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::delivery;
use crate::common::{now_secs, Host};

const SECRET_TOKEN: &str = "Wf0-1RpZRk2v6QMDGsREsg";

fn hmac_hex(key: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// `v0=<hex>` for `body` sent at `timestamp`, under `secret`.
fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut message = format!("v0:{timestamp}:").into_bytes();
    message.extend_from_slice(body);
    format!("v0={}", hmac_hex(secret, &message))
}

fn host(extra_config: &str) -> Host {
    delivery::provider_host(
        "zoom",
        &format!("secret_token = \"{SECRET_TOKEN}\"{extra_config}"),
    )
}

fn send(host: &Host, signature: Option<&str>, timestamp: Option<&str>, body: &[u8]) -> Response {
    let headers = [
        ("x-zm-signature", signature),
        ("x-zm-request-timestamp", timestamp),
    ];
    delivery::post(host, "zoom", &headers, body)
}

fn send_signed(host: &Host, secret: &str, timestamp: u64, body: &[u8]) -> Response {
    let timestamp = timestamp.to_string();
    send(
        host,
        Some(&signature(secret, &timestamp, body)),
        Some(&timestamp),
        body,
    )
}

fn stored(host: &Host) -> Vec<Value> {
    delivery::stored(host, "zoom")
}

/// The challenge as Zoom's documentation shows it.
const VALIDATION: &[u8] = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;

const STARTED: &[u8] = br#"{"event":"meeting.started","event_ts":1626230691572,"payload":{"account_id":"AAAAAABBBB","object":{"id":"1234567890","uuid":"4444AAAiAAAAAiAiAiiAii==","host_id":"x1yCzABCDEfg23HiJKl4mN","topic":"My Meeting","type":8,"start_time":"2021-07-13T21:44:51Z","timezone":"America/Los_Angeles","duration":60}}}"#;

#[test]
fn zoom_answers_the_url_validation_and_stores_signed_events() {
    let host = host("");
    let ts = now_secs();

    let expected = json!({
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": hmac_hex(SECRET_TOKEN, b"qgg8vlvZRS6UYooatFL8Aw"),
    });
    delivery::assert_json(
        send_signed(&host, SECRET_TOKEN, ts, VALIDATION),
        &expected,
        &host,
    );
    assert!(stored(&host).is_empty(), "the challenge is no event");

    let id = hex::encode(Sha256::digest(STARTED));
    let response = send_signed(&host, SECRET_TOKEN, ts, STARTED);
    delivery::assert_json(
        response,
        &json!({"ok": true, "event": {"id": id, "kind": "zoom.meeting.started"}}),
        &host,
    );
    // A retried delivery has the same body, whatever its timestamp: stored once.
    assert_eq!(
        send_signed(&host, SECRET_TOKEN, ts + 1, STARTED).status(),
        200
    );
    let events = stored(&host);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = events
        .iter()
        .find(|e| e["event_id"] == id.as_str())
        .unwrap();
    assert_eq!(event["kind"], "zoom.meeting.started");
    assert_eq!(event["subject"], "1234567890");
    assert_eq!(
        event["payload"],
        serde_json::from_slice::<Value>(STARTED).unwrap()
    );
}

#[test]
fn zoom_refuses_forged_tampered_stale_and_unsigned_requests() {
    let host = host("");
    let ts = now_secs();
    let stamp = ts.to_string();
    let valid = signature(SECRET_TOKEN, &stamp, STARTED);

    assert_eq!(
        send_signed(&host, "another-secret-token", ts, STARTED).status(),
        401,
        "signed with another secret"
    );
    let mut tampered = STARTED.to_vec();
    tampered[20] ^= 1;
    assert_eq!(
        send(&host, Some(&valid), Some(&stamp), &tampered).status(),
        401,
        "body changed after signing"
    );
    assert_eq!(
        send(&host, Some(&valid), Some(&(ts + 1).to_string()), STARTED).status(),
        401,
        "timestamp changed after signing"
    );
    let stale = send_signed(&host, SECRET_TOKEN, ts - 301, STARTED);
    assert_eq!(stale.status(), 401, "a timestamp 301 s old");
    assert!(stale.text().unwrap().contains("tolerance"));
    assert_eq!(send(&host, None, Some(&stamp), STARTED).status(), 401);
    assert_eq!(send(&host, Some(&valid), None, STARTED).status(), 401);
    assert_eq!(
        send(
            &host,
            Some(valid.trim_start_matches("v0=")),
            Some(&stamp),
            STARTED
        )
        .status(),
        401,
        "the signature without its v0= version"
    );

    // The challenge is signed too: answering an unsigned or forged one would give
    // anyone the HMAC of a text they chose, a valid signature for any body.
    assert_eq!(send(&host, None, None, VALIDATION).status(), 401);
    assert_eq!(
        send_signed(&host, "another-secret-token", ts, VALIDATION).status(),
        401
    );
    assert_eq!(
        send_signed(&host, SECRET_TOKEN, ts - 301, VALIDATION).status(),
        401
    );
    assert!(stored(&host).is_empty(), "{:?}", stored(&host));

    assert_eq!(
        send(&host, Some(&valid), Some(&stamp), STARTED).status(),
        200,
        "the untouched delivery still passes: {}",
        host.log()
    );
}

#[test]
fn zoom_tolerance_is_configurable() {
    let host = host(", tolerance = \"900\"");
    assert_eq!(
        send_signed(&host, SECRET_TOKEN, now_secs() - 600, STARTED).status(),
        200,
        "{}",
        host.log()
    );
    assert_eq!(
        send_signed(&host, SECRET_TOKEN, now_secs() - 901, STARTED).status(),
        401
    );
}
