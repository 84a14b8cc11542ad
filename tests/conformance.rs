//! The Standard Webhooks conformance suite: identical cases against the receiver
//! written in each of the five plugin languages (`plugins/STANDARD-WEBHOOKS.md`),
//! demanding the same status and body from every one. A language whose plugin was
//! not built fails the suite (`example_plugin` asserts the file exists).
//!
//! One host serves all five plugins, because compiling the Python and JS components
//! takes seconds; every case runs against every plugin and all mismatches are
//! reported together.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use common::client;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const LANGUAGES: [&str; 5] = common::STANDARD_LANGUAGES;
/// A secret as Standard Webhooks senders show it: `whsec_` + base64 of the key.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

/// One delivery and the answer every language must give.
struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    /// The exact response body, for cases whose body the plugin writes.
    body_is: Option<String>,
    /// Text the (host-written) error body must contain.
    body_contains: Option<&'static str>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
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
    let ts = now().to_string();
    let body = br#"{"type":"invoice.paid","data":{"amount":1200}}"#.to_vec();
    let valid = sign(ID, &ts, &body);
    let mut cases = Vec::new();
    let mut case = |name, headers, body: &[u8], status, body_is, body_contains| {
        cases.push(Case {
            name,
            headers,
            body: body.to_vec(),
            status,
            body_is,
            body_contains,
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
    let other_ts = (now() - 1).to_string();
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

    let expired = (now() - 301 - 60).to_string();
    case(
        "expired timestamp",
        headers(ID, &expired, &sign(ID, &expired, &body)),
        &body,
        401,
        None,
        Some("outside the 300 s tolerance"),
    );
    let future = (now() + 301 + 60).to_string();
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
            headers: h,
            body: body.clone(),
            status: 401,
            body_is: None,
            body_contains: Some(name),
        });
    }
    let mut case = |name, headers, body: Vec<u8>, status, body_is, body_contains| {
        cases.push(Case {
            name,
            headers,
            body,
            status,
            body_is,
            body_contains,
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
    let odd_id = "msg\"<odd>";
    case(
        "signed but unusable webhook-id",
        headers(odd_id, &ts, &sign(odd_id, &ts, &body)),
        body.clone(),
        400,
        None,
        Some("webhook-id must be 1-255 characters"),
    );
    cases
}

#[test]
fn every_language_answers_every_case_identically() {
    let host = common::standard_receivers_host(SECRET, "max_body_bytes = 2097152\n");

    let plugins: serde_json::Value = host.get_json("/api/plugins");
    for lang in LANGUAGES {
        let listed = plugins.to_string();
        assert!(
            listed.contains(&format!("standard-{lang}")),
            "standard-{lang} is not loaded: {listed}\n{}",
            host.log()
        );
    }

    let mut failures = Vec::new();
    for case in cases() {
        let mut answers = Vec::new();
        for lang in LANGUAGES {
            let mut request = client()
                .post(host.url(&format!("/hooks/standard-{lang}")))
                .body(case.body.clone());
            for (name, value) in &case.headers {
                request = request.header(*name, value);
            }
            let response = request.send().unwrap();
            let status = response.status().as_u16();
            let body = response.text().unwrap();
            if status != case.status {
                failures.push(format!(
                    "{}: standard-{lang} answered {status} {body}, expected {}",
                    case.name, case.status
                ));
            }
            if let Some(expected) = &case.body_is {
                if &body != expected {
                    failures.push(format!(
                        "{}: standard-{lang} answered body {body}, expected {expected}",
                        case.name
                    ));
                }
            }
            if let Some(fragment) = case.body_contains {
                if !body.contains(fragment) {
                    failures.push(format!(
                        "{}: standard-{lang} answered body {body}, expected it to contain {fragment:?}",
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
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}\n\nhost log:\n{}",
        failures.len(),
        failures.join("\n"),
        host.log()
    );
}
