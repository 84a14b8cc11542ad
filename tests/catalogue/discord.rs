//! `discord` (Rust): Ed25519 over `X-Signature-Timestamp` + body, signed by
//! libsodium through PyNaCl (`tests/signers/ed25519.py`), the library Discord's
//! own Python example verifies with.

use reqwest::blocking::Response;
use serde_json::{json, Value};

use super::delivery;
use crate::common::{now_secs, signers, Host};

/// The application's key pair: the seed stays here, the public key goes in the
/// config, as in the Developer Portal.
const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// Someone else's key: what a forger signs with.
const OTHER_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

/// `(public key hex, signature hex)` of `timestamp` + `body` under `seed`.
fn sign(seed: &str, timestamp: &str, body: &[u8]) -> (String, String) {
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    let out = signers::sign("ed25519", &[seed], &message);
    let (key, signature) = out.split_once(' ').unwrap();
    (key.to_owned(), signature.to_owned())
}

fn public_key(seed: &str) -> String {
    sign(seed, "", b"").0
}

fn host(extra_config: &str) -> Host {
    delivery::provider_host(
        "discord",
        &format!("public_key = \"{}\"{extra_config}", public_key(SEED)),
    )
}

/// Posts `body` with the given signature headers (`None` leaves one out).
fn send(host: &Host, signature: Option<&str>, timestamp: Option<&str>, body: &[u8]) -> Response {
    let headers = [
        ("X-Signature-Ed25519", signature),
        ("X-Signature-Timestamp", timestamp),
    ];
    delivery::post(host, "discord", &headers, body)
}

/// Posts `body` signed with `seed` at `timestamp`.
fn send_signed(host: &Host, seed: &str, timestamp: u64, body: &[u8]) -> Response {
    let timestamp = timestamp.to_string();
    let (_, signature) = sign(seed, &timestamp, body);
    send(host, Some(&signature), Some(&timestamp), body)
}

fn stored(host: &Host) -> Vec<Value> {
    delivery::stored(host, "discord")
}

/// Asserts a 200 `application/json` answer whose body is exactly `expected`.
fn assert_answer(response: Response, expected: Value, host: &Host) {
    delivery::assert_json(response, &expected, host);
}

fn assert_refused(response: Response, why: &str) {
    assert_eq!(response.status(), 401, "{why}");
}

const COMMAND: &[u8] = br#"{"app_permissions":"442368","application_id":"1179085452146176021","channel_id":"1179085543556829194","data":{"id":"1179087364669497364","name":"blep","options":[{"name":"animal","type":3,"value":"animal_dog"}],"type":1},"guild_id":"1179085543556829190","id":"1179095532372369488","locale":"en-US","token":"aW50ZXJhY3Rpb246MTE3OTA5NTUzMjM3MjM2OTQ4ODpXcG1xZ0E","type":2,"version":1}"#;

#[test]
fn discord_answers_ping_and_defers_interactions_signed_with_ed25519() {
    let host = host("");
    let ts = now_secs();

    // PING, sent when the URL is saved: PONG, exactly, and nothing stored.
    let ping = br#"{"application_id":"1179085452146176021","id":"1179095532372369400","token":"aW50ZXJhY3Rpb24","type":1,"user":{"id":"53908232506183680"},"version":1}"#;
    assert_answer(
        send_signed(&host, SEED, ts, ping),
        json!({"type": 1}),
        &host,
    );
    assert!(stored(&host).is_empty(), "a PING is no event");

    // A slash command: deferred, and stored as sent.
    assert_answer(
        send_signed(&host, SEED, ts, COMMAND),
        json!({"type": 5}),
        &host,
    );
    // A button press: deferred too.
    let component = br#"{"application_id":"1179085452146176021","data":{"component_type":2,"custom_id":"approve"},"id":"1179095532372369501","message":{"id":"1"},"token":"dG9rZW4","type":3,"version":1}"#;
    assert_answer(
        send_signed(&host, SEED, ts, component),
        json!({"type": 5}),
        &host,
    );
    // Autocomplete cannot be deferred: no suggestions.
    let autocomplete = br#"{"application_id":"1179085452146176021","data":{"name":"blep","options":[{"focused":true,"name":"animal","type":3,"value":"d"}]},"id":"1179095532372369502","token":"dG9rZW4","type":4,"version":1}"#;
    assert_answer(
        send_signed(&host, SEED, ts, autocomplete),
        json!({"type": 8, "data": {"choices": []}}),
        &host,
    );

    let events = stored(&host);
    let event = |id: &str| delivery::event(&events, id);
    let command = event("1179095532372369488");
    assert_eq!(command["kind"], "discord.application_command");
    assert_eq!(command["subject"], "blep");
    assert_eq!(
        command["payload"],
        serde_json::from_slice::<Value>(COMMAND).unwrap()
    );
    let pressed = event("1179095532372369501");
    assert_eq!(pressed["kind"], "discord.message_component");
    assert_eq!(pressed["subject"], "approve");
    assert_eq!(
        event("1179095532372369502")["kind"],
        "discord.application_command_autocomplete"
    );
    assert_eq!(events.len(), 3, "{events:?}");
}

#[test]
fn discord_refuses_forged_tampered_stale_and_unsigned_interactions() {
    let host = host("");
    let ts = now_secs();
    let stamp = ts.to_string();
    let (_, valid) = sign(SEED, &stamp, COMMAND);

    assert_refused(
        send_signed(&host, OTHER_SEED, ts, COMMAND),
        "signed with another key",
    );
    let ping = br#"{"id":"1","type":1}"#;
    assert_refused(
        send_signed(&host, OTHER_SEED, ts, ping),
        "a forged PING (the portal sends these to check the endpoint)",
    );
    let mut tampered = COMMAND.to_vec();
    let at = tampered.len() - 2;
    tampered[at] = b'2'; // "version":2
    assert_refused(
        send(&host, Some(&valid), Some(&stamp), &tampered),
        "body changed after signing",
    );
    assert_refused(
        send(&host, Some(&valid), Some(&(ts + 1).to_string()), COMMAND),
        "timestamp changed after signing",
    );
    let stale = send_signed(&host, SEED, ts - 301, COMMAND);
    assert_eq!(stale.status(), 401, "a timestamp 301 s old");
    assert!(stale.text().unwrap().contains("tolerance"));
    // Well past the tolerance: signing takes a while, and the clock runs on.
    assert_refused(
        send_signed(&host, SEED, now_secs() + 400, COMMAND),
        "a timestamp 400 s ahead",
    );
    assert_refused(send(&host, None, Some(&stamp), COMMAND), "no signature");
    assert_refused(send(&host, Some(&valid), None, COMMAND), "no timestamp");
    assert_refused(
        send(&host, Some(&valid[..126]), Some(&stamp), COMMAND),
        "a truncated signature",
    );
    assert!(stored(&host).is_empty(), "{:?}", stored(&host));

    // The untouched delivery still passes, so the refusals above were for cause.
    assert_answer(
        send(&host, Some(&valid), Some(&stamp), COMMAND),
        json!({"type": 5}),
        &host,
    );
}

#[test]
fn discord_tolerance_is_configurable() {
    let host = host(", tolerance = \"900\"");
    let response = send_signed(&host, SEED, now_secs() - 600, COMMAND);
    assert_answer(response, json!({"type": 5}), &host);
    assert_refused(
        send_signed(&host, SEED, now_secs() - 901, COMMAND),
        "older than the configured tolerance",
    );
}
