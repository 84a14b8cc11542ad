//! The flagship example providers end to end: `stripe` (Python) and `slack`
//! (JavaScript), each signed the way the provider signs, against the real binary.

mod common;

use common::{client, now_secs, HostSpec};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const STRIPE_SECRET: &str = "whsec_test_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

fn stripe_signature(t: u64, body: &[u8]) -> String {
    hmac_hex(STRIPE_SECRET, &[format!("{t}.").as_bytes(), body])
}

fn slack_signature(ts: u64, body: &[u8]) -> String {
    format!(
        "v0={}",
        hmac_hex(SLACK_SECRET, &[format!("v0:{ts}:").as_bytes(), body])
    )
}

#[test]
fn stripe_verifies_stripe_signature() {
    let host = HostSpec::default()
        .example_plugin("stripe")
        .config(&format!(
            "[plugins.stripe]\nconfig = {{ secret = \"{STRIPE_SECRET}\" }}\n"
        ))
        .start();
    let body = br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","customer":"cus_9s6XKzkNRiz8i3"}}}"#;
    let send = |header: String, body: &[u8]| {
        client()
            .post(host.url("/hooks/stripe"))
            .header("stripe-signature", header)
            .body(body.to_vec())
            .send()
            .unwrap()
    };
    let t = now_secs();
    let valid = stripe_signature(t, body);

    let response = send(format!("t={t},v1={valid}"), body);
    assert_eq!(response.status(), 200, "{}", host.log());
    let reply: Value = response.json().unwrap();
    assert_eq!(reply["event"]["id"], "evt_1NG8Du2eZvKYlo2CUI79vXWy");
    assert_eq!(reply["event"]["kind"], "stripe.invoice.paid");

    // Stripe sends one v1 per active secret while a secret is being rolled.
    let several = format!("t={t},v1={},v1={valid},v0=abc", "0".repeat(64));
    assert_eq!(send(several, body).status(), 200);

    let mut tampered = body.to_vec();
    tampered[20] ^= 1;
    assert_eq!(send(format!("t={t},v1={valid}"), &tampered).status(), 401);
    assert_eq!(
        send(format!("t={},v1={valid}", t + 1), body).status(),
        401,
        "a signature is bound to its timestamp"
    );
    let stale = t - 301;
    let response = send(
        format!("t={stale},v1={}", stripe_signature(stale, body)),
        body,
    );
    assert_eq!(response.status(), 401);
    assert!(response.text().unwrap().contains("tolerance"));
    assert_eq!(send(String::new(), body).status(), 401);
}

#[test]
fn stripe_tolerance_is_configurable() {
    let host = HostSpec::default()
        .example_plugin("stripe")
        .config(&format!(
            "[plugins.stripe]\nconfig = {{ secret = \"{STRIPE_SECRET}\", tolerance = \"900\" }}\n"
        ))
        .start();
    let body = br#"{"id":"evt_2","type":"customer.created","data":{"object":{}}}"#;
    let t = now_secs() - 600;
    let response = client()
        .post(host.url("/hooks/stripe"))
        .header(
            "stripe-signature",
            format!("t={t},v1={}", stripe_signature(t, body)),
        )
        .body(body.to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", host.log());
}

#[test]
fn slack_verifies_and_answers_the_url_challenge() {
    let host = HostSpec::default()
        .example_plugin("slack")
        .config(&format!(
            "[plugins.slack]\nconfig = {{ signing_secret = \"{SLACK_SECRET}\" }}\n"
        ))
        .start();
    let send = |ts: u64, signature: String, body: &[u8]| {
        client()
            .post(host.url("/hooks/slack"))
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", signature)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .unwrap()
    };
    let ts = now_secs();

    let challenge = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let response = send(ts, slack_signature(ts, challenge), challenge);
    assert_eq!(response.status(), 200, "{}", host.log());
    let reply: Value = response.json().unwrap();
    assert_eq!(
        reply["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let event = br#"{"type":"event_callback","team_id":"T123ABC456","event_id":"Ev08MFMKH6","event":{"type":"app_mention","text":"hi"}}"#;
    let response = send(ts, slack_signature(ts, event), event);
    assert_eq!(response.status(), 200, "{}", host.log());
    let reply: Value = response.json().unwrap();
    assert_eq!(reply["event"]["id"], "Ev08MFMKH6");
    assert_eq!(reply["event"]["kind"], "slack.app_mention");

    let mut tampered = event.to_vec();
    tampered[3] ^= 1;
    assert_eq!(
        send(ts, slack_signature(ts, event), &tampered).status(),
        401
    );
    assert_eq!(
        send(ts + 1, slack_signature(ts, event), event).status(),
        401,
        "a signature is bound to its timestamp"
    );
    let stale = ts - 301;
    let response = send(stale, slack_signature(stale, event), event);
    assert_eq!(response.status(), 401);
    assert!(response.text().unwrap().contains("tolerance"));
}
