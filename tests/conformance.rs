//! The Standard Webhooks conformance suite: identical cases against the receiver
//! written in each of the five plugin languages (`plugins/STANDARD-WEBHOOKS.md`),
//! demanding the same status and body from every one. A language whose plugin was
//! not built fails the suite (`example_plugin` asserts the file exists).
//!
//! One host serves all five plugins, because compiling the Python and JS components
//! takes seconds; every case runs against every plugin and all mismatches are
//! reported together. Each language is loaded once per configuration (`CONFIGS`:
//! `secret` only, `public_key` only, both, neither, malformed keys), under the id
//! `standard-<lang><suffix>`.
//!
//! The `v1a` (Ed25519) cases are signed with libsodium (PyNaCl) and the `v1` ones
//! made here are checked against the official `standardwebhooks` library
//! (`tests/signers/standard.py`), so the receivers are held to the spec, not to
//! this file's reading of it.

mod common;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use common::{client, now_secs, signers};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const LANGUAGES: [&str; 5] = common::STANDARD_LANGUAGES;
/// A secret as Standard Webhooks senders show it: `whsec_` + base64 of the key.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
/// The sender's Ed25519 key (RFC 8032 test 1's seed) and an impostor's (test 2's).
const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const OTHER_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";

/// Plugin id suffix and its `config` table: each language is loaded once per entry.
/// `public_key` stands for the sender's `whpk_` key (made from `SEED`).
const CONFIGS: [(&str, &str); 6] = [
    ("", "secret = \"{secret}\""),
    ("-ed25519", "public_key = \"{public_key}\""),
    (
        "-both",
        "secret = \"{secret}\", public_key = \"{public_key}\"",
    ),
    ("-unset", ""),
    ("-not-base64", "public_key = \"whpk_not*base64\""),
    // 31 bytes: one short of a key.
    (
        "-short-key",
        "public_key = \"whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"",
    ),
];

/// One delivery and the answer every language must give.
struct Case {
    name: &'static str,
    /// Which configuration of each language it is sent to (a `CONFIGS` suffix).
    plugin: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// The exact response body, for cases whose body the plugin writes.
    body_is: Option<String>,
    /// Text the (host-written) error body must contain.
    body_contains: Option<&'static str>,
    /// Text the host's log must show beside the plugin's id (an internal error's
    /// message, which the response does not carry).
    log_contains: Option<&'static str>,
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under `SECRET`'s key.
fn sign(id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = BASE64
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn accepted(id: &str) -> Option<String> {
    Some(format!(
        r#"{{"ok":true,"event":{{"id":"{id}","kind":"standard.webhook"}}}}"#
    ))
}

fn headers(id: &str, timestamp: &str, signature: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature.to_string()),
    ]
}

fn cases() -> Vec<Case> {
    let ts = now_secs().to_string();
    let body = br#"{"type":"invoice.paid","data":{"amount":1200}}"#.to_vec();
    let valid = sign(ID, &ts, &body);
    let mut cases = Vec::new();
    let mut case = |name, headers, body: &[u8], status, body_is, body_contains| {
        cases.push(Case {
            name,
            plugin: "",
            headers,
            body: body.to_vec(),
            status,
            body_is,
            body_contains,
            log_contains: None,
        })
    };

    case(
        "valid signature",
        headers(ID, &ts, &valid),
        &body,
        200,
        accepted(ID),
        None,
    );

    let mut tampered_body = body.clone();
    tampered_body[10] ^= 1;
    case(
        "tampered body",
        headers(ID, &ts, &valid),
        &tampered_body,
        401,
        None,
        Some("no matching signature"),
    );
    case(
        "tampered id",
        headers("msg_other", &ts, &valid),
        &body,
        401,
        None,
        Some("no matching signature"),
    );
    // One second before the signed one, never equal to it (`now_secs() - 1` was, when
    // the clock ticked between signing and here).
    let other_ts = (ts.parse::<u64>().unwrap() - 1).to_string();
    case(
        "tampered timestamp",
        headers(ID, &other_ts, &valid),
        &body,
        401,
        None,
        Some("no matching signature"),
    );
    let mut tampered_sig = valid.clone().into_bytes();
    tampered_sig[5] = if tampered_sig[5] == b'A' { b'B' } else { b'A' };
    let tampered_sig = String::from_utf8(tampered_sig).unwrap();
    case(
        "tampered signature",
        headers(ID, &ts, &tampered_sig),
        &body,
        401,
        None,
        Some("no matching signature"),
    );

    let expired = (now_secs() - 301 - 60).to_string();
    case(
        "expired timestamp",
        headers(ID, &expired, &sign(ID, &expired, &body)),
        &body,
        401,
        None,
        Some("outside the 300 s tolerance"),
    );
    let future = (now_secs() + 301 + 60).to_string();
    case(
        "future timestamp",
        headers(ID, &future, &sign(ID, &future, &body)),
        &body,
        401,
        None,
        Some("outside the 300 s tolerance"),
    );
    case(
        "malformed timestamp",
        headers(ID, "17e8", &valid),
        &body,
        401,
        None,
        Some("malformed webhook-timestamp header"),
    );

    let several = format!(
        "v1,Zm9vYmFy v2,{} v1a,{}  {valid} v1,AAAA",
        &valid[3..],
        &valid[3..]
    );
    case(
        "several signatures, one valid",
        headers(ID, &ts, &several),
        &body,
        200,
        accepted(ID),
        None,
    );
    let none_valid = format!("v1,Zm9vYmFy v2,{}", &valid[3..]);
    case(
        "several signatures, none valid",
        headers(ID, &ts, &none_valid),
        &body,
        401,
        None,
        Some("no matching signature"),
    );
    case(
        "bad base64",
        headers(ID, &ts, "v1,!!not*base64!!"),
        &body,
        401,
        None,
        Some("no matching signature"),
    );
    case(
        "signature without version",
        headers(ID, &ts, &valid[3..]),
        &body,
        401,
        None,
        Some("no matching signature"),
    );

    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut h = headers(ID, &ts, &valid);
        h.retain(|(name, _)| *name != missing);
        let name: &'static str = match missing {
            "webhook-id" => "missing webhook-id",
            "webhook-timestamp" => "missing webhook-timestamp",
            _ => "missing webhook-signature",
        };
        cases.push(Case {
            name,
            plugin: "",
            headers: h,
            body: body.clone(),
            status: 401,
            body_is: None,
            body_contains: Some(name),
            log_contains: None,
        });
    }
    let mut case = |name, headers, body: Vec<u8>, status, body_is, body_contains| {
        cases.push(Case {
            name,
            plugin: "",
            headers,
            body,
            status,
            body_is,
            body_contains,
            log_contains: None,
        })
    };

    case(
        "empty body",
        headers(ID, &ts, &sign(ID, &ts, b"")),
        Vec::new(),
        200,
        accepted(ID),
        None,
    );
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    case(
        "1 MiB body",
        headers(ID, &ts, &sign(ID, &ts, &big)),
        big,
        200,
        accepted(ID),
        None,
    );
    let binary = vec![0xff, 0xfe, 0x00, 0xc3, 0x28, b'{', 0x80];
    case(
        "non-UTF-8 body",
        headers(ID, &ts, &sign(ID, &ts, &binary)),
        binary,
        200,
        accepted(ID),
        None,
    );
    // Ids the rule refuses or, at its edge, accepts; each usable kind of character
    // is in the edge cases: 255 is usable, 256 is not (the Go receiver checks by hand
    // rather than by regexp).
    let ids: [(&'static str, String, bool); 3] = [
        ("signed but unusable webhook-id", "msg\"<odd>".into(), false),
        (
            "longest usable webhook-id",
            "edge-Az09_.:".chars().cycle().take(255).collect(),
            true,
        ),
        (
            "webhook-id one character too long",
            "long-Az09_.:".chars().cycle().take(256).collect(),
            false,
        ),
    ];
    for (name, id, usable) in ids {
        let (status, body_is, body_contains) = if usable {
            (200, accepted(&id), None)
        } else {
            (400, None, Some("webhook-id must be 1-255 characters"))
        };
        let signed = headers(&id, &ts, &sign(&id, &ts, &body));
        case(name, signed, body.clone(), status, body_is, body_contains);
    }
    cases
}

/// `v1,...` of `{id}.{timestamp}.{body}` under `SECRET`, by the official
/// `standardwebhooks` library.
fn sign_v1_official(id: &str, timestamp: &str, body: &[u8]) -> String {
    signers::sign("standard", &["v1", SECRET, id, timestamp], body)
}

/// `v1a,<base64 Ed25519 signature>` of `{id}.{timestamp}.{body}` under `seed`, by
/// libsodium (PyNaCl).
fn sign_v1a(seed: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    signers::sign("standard", &["v1a", seed, id, timestamp], body)
}

/// The cases of asymmetric (`v1a`) signatures, mixed signature lists and each
/// configuration; each accepted one has an id of its own, so that the events
/// stored show which deliveries got through.
fn key_cases() -> Vec<Case> {
    let ts = now_secs().to_string();
    let body = br#"{"type":"invoice.paid","data":{"amount":1200}}"#.to_vec();
    let refused = Some("no matching signature");
    // Sent to configuration `plugin` with `signature` at `ts` over `body`: accepted
    // (200, the plugin's answer naming `id`) or refused for want of a matching
    // signature.
    let signed = |plugin, name, id: &str, signature: &str, status| Case {
        name,
        plugin,
        headers: headers(id, &ts, signature),
        body: body.clone(),
        status,
        body_is: if status == 200 { accepted(id) } else { None },
        body_contains: if status == 200 { None } else { refused },
        log_contains: None,
    };
    let mut cases = Vec::new();

    // The library and this file's `sign` agree, so the v1 cases above are the spec's.
    let id = "msg_official_v1";
    let official = sign_v1_official(id, &ts, &body);
    assert_eq!(official, sign(id, &ts, &body));
    let name = "v1 signed by the standardwebhooks library";
    cases.push(signed("", name, id, &official, 200));
    let id = "msg_v1a_to_secret_only";
    let v1a = sign_v1a(SEED, id, &ts, &body);
    cases.push(signed("", "v1a without public_key", id, &v1a, 401));

    let id = "msg_v1a_valid";
    let valid = sign_v1a(SEED, id, &ts, &body);
    cases.push(signed("-ed25519", "v1a valid", id, &valid, 200));
    let id = "msg_v1a_forged";
    let forged = sign_v1a(OTHER_SEED, id, &ts, &body);
    cases.push(signed(
        "-ed25519",
        "v1a forged (another key)",
        id,
        &forged,
        401,
    ));
    let id = "msg_v1a_tampered_body";
    let mut tampered_body = body.clone();
    tampered_body[10] ^= 1;
    let valid = sign_v1a(SEED, id, &ts, &body);
    cases.push(Case {
        body: tampered_body,
        ..signed("-ed25519", "v1a tampered body", id, &valid, 401)
    });
    let id = "msg_v1a_tampered_timestamp";
    // Relative to `ts`, not to now: signing takes long enough for now - 1 to be `ts`.
    let earlier = (ts.parse::<u64>().unwrap() - 1).to_string();
    let valid = sign_v1a(SEED, id, &ts, &body);
    cases.push(Case {
        headers: headers(id, &earlier, &valid),
        ..signed("-ed25519", "v1a tampered timestamp", id, &valid, 401)
    });
    let id = "msg_v1a_stale";
    let stale = (now_secs() - 301 - 60).to_string();
    let signature = sign_v1a(SEED, id, &stale, &body);
    cases.push(Case {
        headers: headers(id, &stale, &signature),
        body_contains: Some("outside the 300 s tolerance"),
        ..signed("-ed25519", "v1a stale timestamp", id, &signature, 401)
    });
    // 64 bytes are `...Xy==` in base64: `y` carries 2 bits of the last byte and 4
    // zero bits; setting one of those gives another text for the same bytes.
    let id = "msg_v1a_not_canonical";
    let mut text = sign_v1a(SEED, id, &ts, &body).into_bytes();
    let at = text.len() - 3;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digit = ALPHABET.iter().position(|&c| c == text[at]).unwrap();
    assert_eq!(digit & 15, 0, "{}", String::from_utf8_lossy(&text));
    text[at] = ALPHABET[digit | 1];
    let not_canonical = String::from_utf8(text).unwrap();
    let name = "v1a signature in non-canonical base64";
    cases.push(signed("-ed25519", name, id, &not_canonical, 401));
    let id = "msg_v1a_short";
    cases.push(signed(
        "-ed25519",
        "v1a signature of 3 bytes",
        id,
        "v1a,AAAA",
        401,
    ));
    let id = "msg_v1_to_public_key_only";
    let v1 = sign_v1_official(id, &ts, &body);
    cases.push(signed("-ed25519", "v1 without secret", id, &v1, 401));

    let id = "msg_v1_bad_v1a_good";
    let list = format!(
        "{} {}",
        sign("msg_other", &ts, &body),
        sign_v1a(SEED, id, &ts, &body)
    );
    cases.push(signed(
        "-both",
        "v1 invalid, then v1a valid",
        id,
        &list,
        200,
    ));
    let id = "msg_v1a_bad_v1_good";
    let list = format!(
        "{} {}",
        sign_v1a(OTHER_SEED, id, &ts, &body),
        sign_v1_official(id, &ts, &body)
    );
    cases.push(signed(
        "-both",
        "v1a invalid, then v1 valid",
        id,
        &list,
        200,
    ));
    let id = "msg_unknown_versions";
    let list = format!(
        "v2,{} v1b,AAAA nocomma  {}",
        &sign_v1a(SEED, id, &ts, &body)[4..],
        sign_v1a(SEED, id, &ts, &body)
    );
    cases.push(signed("-both", "unknown versions skipped", id, &list, 200));
    let id = "msg_all_invalid";
    let list = format!(
        "{} {} v2,{}",
        sign("msg_other", &ts, &body),
        sign_v1a(OTHER_SEED, id, &ts, &body),
        &sign_v1a(SEED, id, &ts, &body)[4..]
    );
    cases.push(signed("-both", "v1 and v1a, all invalid", id, &list, 401));

    let list = format!(
        "{} {}",
        sign_v1_official("msg_unset", &ts, &body),
        sign_v1a(SEED, "msg_unset", &ts, &body)
    );
    for (plugin, name, message) in [
        (
            "-unset",
            "neither secret nor public_key",
            "config `secret` or `public_key` must be set",
        ),
        (
            "-not-base64",
            "public_key not base64",
            "config `public_key` is not the base64 of a 32-byte Ed25519 key",
        ),
        (
            "-short-key",
            "public_key of 31 bytes",
            "config `public_key` is not the base64 of a 32-byte Ed25519 key",
        ),
    ] {
        cases.push(Case {
            body_contains: Some("internal error"),
            log_contains: Some(message),
            ..signed(plugin, name, "msg_unset", &list, 500)
        });
    }
    cases
}

fn webhook_id(case: &Case) -> Option<&str> {
    case.headers
        .iter()
        .find(|(name, _)| *name == "webhook-id")
        .map(|(_, value)| value.as_str())
}

/// A host serving every language once per entry of `CONFIGS`; `public_key` is the
/// sender's `whpk_` key.
fn receivers_host(public_key: &str) -> common::Host {
    let mut spec = common::HostSpec::default();
    let mut config = String::from("max_body_bytes = 2097152\n");
    for lang in LANGUAGES {
        for (suffix, table) in CONFIGS {
            let id = format!("standard-{lang}{suffix}");
            spec = spec.plugin(&id, common::example_plugin(&format!("standard-{lang}")));
            let table = table
                .replace("{secret}", SECRET)
                .replace("{public_key}", public_key);
            config.push_str(&format!("[plugins.{id}]\nconfig = {{ {table} }}\n"));
        }
    }
    spec.config(&config).start()
}

#[test]
fn every_language_answers_every_case_identically() {
    let public_key = signers::sign("standard", &["whpk", SEED], b"");
    let host = receivers_host(&public_key);

    let plugins: serde_json::Value = host.get_json("/api/plugins");
    for lang in LANGUAGES {
        for (suffix, _) in CONFIGS {
            let id = format!("standard-{lang}{suffix}");
            let listing = common::plugin_in(&plugins, &id)
                .unwrap_or_else(|| panic!("{id} is not loaded: {plugins}\n{}", host.log()));
            // `auto` restores Python's snapshotted heap (it fills its memory),
            // copies JavaScript's (a third of it) and maps compiled programs' data
            // (plugins::memory_init); the answers below must not depend on it.
            let expected = match lang {
                "python" => "resident",
                "js" => "copy",
                _ => "cow",
            };
            assert_eq!(listing["memory_init"], expected, "{id}");
        }
    }

    let cases: Vec<Case> = cases().into_iter().chain(key_cases()).collect();
    let mut failures = Vec::new();
    for case in &cases {
        let mut answers = Vec::new();
        for lang in LANGUAGES {
            let plugin = format!("standard-{lang}{}", case.plugin);
            let mut request = client()
                .post(host.url(&format!("/hooks/{plugin}")))
                .body(case.body.clone());
            for (name, value) in &case.headers {
                request = request.header(*name, value);
            }
            let response = request.send().unwrap();
            let status = response.status().as_u16();
            let body = response.text().unwrap();
            if status != case.status {
                failures.push(format!(
                    "{}: {plugin} answered {status} {body}, expected {}",
                    case.name, case.status
                ));
            }
            if let Some(expected) = &case.body_is {
                if &body != expected {
                    failures.push(format!(
                        "{}: {plugin} answered body {body}, expected {expected}",
                        case.name
                    ));
                }
            }
            if let Some(fragment) = case.body_contains {
                if !body.contains(fragment) {
                    failures.push(format!(
                        "{}: {plugin} answered body {body}, expected it to contain {fragment:?}",
                        case.name
                    ));
                }
            }
            answers.push((lang, status, body));
        }
        if answers
            .iter()
            .any(|a| (a.1, &a.2) != (answers[0].1, &answers[0].2))
        {
            failures.push(format!(
                "{}: the languages disagree: {answers:?}",
                case.name
            ));
        }
    }

    let log = host.log();
    for case in &cases {
        let Some(message) = case.log_contains else {
            continue;
        };
        for lang in LANGUAGES {
            let plugin = format!("standard-{lang}{}", case.plugin);
            let logged = log
                .lines()
                .any(|line| line.contains(&format!("plugin {plugin} ")) && line.contains(message));
            if !logged {
                failures.push(format!(
                    "{}: the host's log shows no {message:?} from {plugin}",
                    case.name
                ));
            }
        }
    }

    // Every accepted delivery is stored as the spec says, and no refused one is
    // (unless another case delivered the same id and was accepted).
    for (suffix, _) in CONFIGS {
        let on_plugin: Vec<&Case> = cases.iter().filter(|c| c.plugin == suffix).collect();
        let accepted_ids: Vec<&str> = on_plugin
            .iter()
            .filter(|c| c.status == 200)
            .filter_map(|c| webhook_id(c))
            .collect();
        for lang in LANGUAGES {
            let plugin = format!("standard-{lang}{suffix}");
            let listing = host.get_json(&format!("/api/events?plugin={plugin}&limit=500"));
            let stored = common::event_ids(&listing);
            for case in &on_plugin {
                let Some(id) = webhook_id(case) else {
                    continue;
                };
                if case.status != 200 {
                    if stored.contains(&id) && !accepted_ids.contains(&id) {
                        failures.push(format!("{}: {plugin} stored event {id}", case.name));
                    }
                    continue;
                }
                let Some(event) = common::event_in(&listing, id) else {
                    failures.push(format!("{}: {plugin} stored no event {id}", case.name));
                    continue;
                };
                // One delivery per id on these plugins, so the payload is this one's.
                let once = accepted_ids.iter().filter(|a| **a == id).count() == 1;
                let payload = serde_json::json!({ "body_base64": BASE64.encode(&case.body) });
                if event["kind"] != "standard.webhook" || (once && event["payload"] != payload) {
                    failures.push(format!(
                        "{}: {plugin} stored {event}, expected kind standard.webhook and payload {payload}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}\n\nhost log:\n{}",
        failures.len(),
        failures.join("\n"),
        host.log()
    );
}
