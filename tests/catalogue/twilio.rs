//! Twilio (`plugins/twilio`, Python): every signature is made by Twilio's own
//! `RequestValidator` (`tests/signers/twilio.py`) over the URL Twilio would have
//! requested, with a port and a query string, and form parameters whose order
//! matters (`From` before `FromZip`, upper case before lower case, a repeated
//! name, an empty value).

use reqwest::blocking::Response;
use serde_json::{json, Value};

use super::delivery;
use crate::common::{client, sha256_hex, signers::sign, Host, HostSpec};

const AUTH_TOKEN: &str = "9f3c1be0a8d24c6e85b7f01d2e4a6c88";
const SHARED_KEY_SECRET: &str = "whsk_4b1d7e9a0c2f4e6a8b0d2f4a6c8e0b2d";
const PUBLIC_URL: &str = "https://hooks.example.com:8443";
const PATH: &str = "/hooks/twilio/sms?campaign=spring&ref=a%20b";
const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;
const MESSAGE_SID: &str = "SM5f2a9c0d7e1b43a6b8c4d2e0f1a3b5c7";

/// An inbound SMS as Twilio posts it, in the order a framework would not sort it.
const INBOUND_SMS: [(&str, &str); 10] = [
    ("MessageSid", MESSAGE_SID),
    ("To", "+14155550199"),
    ("From", "+14155550100"),
    ("FromZip", ""),
    ("Body", "Hi & welcome: 50% off + free caf\u{e9}=yes"),
    ("AccountSid", "AC0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
    ("NumMedia", "0"),
    ("a_lowercase", "sorts after every upper-case name"),
    ("Tag", "beta"),
    ("Tag", "alpha"),
];

fn twilio_host(public_url: Option<&str>) -> Host {
    let top = public_url.map_or(String::new(), |url| format!("public_url = \"{url}\"\n"));
    HostSpec::default()
        .example_plugin("twilio")
        .config(&format!(
            "{top}[plugins.twilio]\nconfig = {{ auth_token = \"{AUTH_TOKEN}\", \
             shared_key_secret = \"{SHARED_KEY_SECRET}\" }}\n"
        ))
        .start()
}

/// `RequestValidator(token).compute_signature(url, params, algorithm)`.
fn form_signature(token: &str, url: &str, params: &[(&str, &str)], algorithm: &str) -> String {
    let pairs = serde_json::to_string(params).unwrap();
    sign("twilio", &["form", token, url, algorithm], pairs.as_bytes())
}

fn post_form(
    host: &Host,
    path: &str,
    headers: &[(&str, &str)],
    params: &[(&str, &str)],
) -> Response {
    let mut request = client().post(host.url(path)).form(params);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().unwrap()
}

fn stored(host: &Host) -> Vec<Value> {
    delivery::stored(host, "twilio")
}

fn assert_twiml(response: Response, host: &Host) {
    assert_eq!(response.status(), 200, "{}", host.log());
    assert_eq!(response.headers()["content-type"], "text/xml");
    assert_eq!(response.text().unwrap(), EMPTY_TWIML);
}

#[test]
fn twilio_accepts_what_twilios_request_validator_signs_and_refuses_the_rest() {
    let host = twilio_host(Some(PUBLIC_URL));
    let url = format!("{PUBLIC_URL}{PATH}");
    let signature = form_signature(AUTH_TOKEN, &url, &INBOUND_SMS, "HMAC_SHA1");
    let signed = [("x-twilio-signature", signature.as_str())];

    assert_twiml(post_form(&host, PATH, &signed, &INBOUND_SMS), &host);
    let events = stored(&host);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["kind"], "twilio.message");
    assert_eq!(event["subject"], MESSAGE_SID);
    let id = event["event_id"].as_str().unwrap();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(
        event["payload"],
        json!({
            "MessageSid": MESSAGE_SID, "To": "+14155550199", "From": "+14155550100",
            "FromZip": "", "Body": "Hi & welcome: 50% off + free caf\u{e9}=yes",
            "AccountSid": "AC0f1e2d3c4b5a69788796a5b4c3d2e1f0", "NumMedia": "0",
            "a_lowercase": "sorts after every upper-case name", "Tag": ["beta", "alpha"],
        })
    );

    // Twilio's retry: the parameters in another order and a new idempotency
    // token, which is not signed, still make one event.
    let mut reordered = INBOUND_SMS;
    reordered.reverse();
    let retry = [
        ("x-twilio-signature", signature.as_str()),
        ("i-twilio-idempotency-token", "retry-2"),
    ];
    assert_twiml(post_form(&host, PATH, &retry, &reordered), &host);
    assert_eq!(stored(&host).len(), 1);

    let refused = |path: &str, headers: &[(&str, &str)], params: &[(&str, &str)], what: &str| {
        let response = post_form(&host, path, headers, params);
        assert_eq!(response.status(), 401, "{what}: {}", host.log());
    };
    let forged = form_signature("0".repeat(32).as_str(), &url, &INBOUND_SMS, "HMAC_SHA1");
    refused(
        PATH,
        &[("x-twilio-signature", &forged)],
        &INBOUND_SMS,
        "forged",
    );
    refused(PATH, &[], &INBOUND_SMS, "unsigned");
    refused(
        PATH,
        &[("x-twilio-signature", "")],
        &INBOUND_SMS,
        "empty signature",
    );
    let mut tampered = INBOUND_SMS;
    tampered[4].1 = "Hi & welcome: 60% off";
    refused(PATH, &signed, &tampered, "body changed");
    refused(PATH, &signed, &INBOUND_SMS[..9], "a repeated value dropped");
    let without_empty: Vec<_> = INBOUND_SMS
        .iter()
        .copied()
        .filter(|p| p.0 != "FromZip")
        .collect();
    refused(PATH, &signed, &without_empty, "an empty parameter dropped");
    let mut added = INBOUND_SMS.to_vec();
    added.push(("Extra", "1"));
    refused(PATH, &signed, &added, "a parameter added");
    refused(
        "/hooks/twilio/sms?campaign=spring&ref=a%20c",
        &signed,
        &INBOUND_SMS,
        "query changed",
    );
    refused(
        "/hooks/twilio/mms?campaign=spring&ref=a%20b",
        &signed,
        &INBOUND_SMS,
        "path changed",
    );
    assert_eq!(stored(&host).len(), 1, "refused requests stored nothing");

    // A JSON body: its SHA-256 in the signed URL's `bodySHA256`.
    let body = br#"{"AccountSid":"AC0f1e2d3c4b5a69788796a5b4c3d2e1f0","EventType":"com.twilio.messaging.message.delivered","Sid":"SM1"}"#;
    let line = sign("twilio", &["json", AUTH_TOKEN, &url, "HMAC_SHA1"], body);
    let (signed_url, json_signature) = line.split_once(' ').unwrap();
    let json_path = signed_url.strip_prefix(PUBLIC_URL).unwrap();
    let post_json = |path: &str, signature: &str, body: &[u8]| {
        client()
            .post(host.url(path))
            .header("content-type", "application/json")
            .header("x-twilio-signature", signature)
            .body(body.to_vec())
            .send()
            .unwrap()
    };
    assert_twiml(post_json(json_path, json_signature, body), &host);
    let events = stored(&host);
    let json_event = events
        .iter()
        .find(|e| e["kind"] == "twilio.webhook")
        .unwrap();
    assert_eq!(
        json_event["payload"],
        serde_json::from_slice::<Value>(body).unwrap()
    );
    let mut tampered_body = body.to_vec();
    tampered_body[body.len() - 3] = b'2';
    let response = post_json(json_path, json_signature, &tampered_body);
    assert_eq!(response.status(), 401, "JSON body changed after signing");
    let unsigned_hash = format!("{PATH}&bodySHA256={}", sha256_hex(&tampered_body));
    let response = post_json(&unsigned_hash, json_signature, &tampered_body);
    assert_eq!(response.status(), 401, "bodySHA256 replaced");

    // A Webhook Setting's SharedKey, with the algorithm its header names.
    let mut shared = INBOUND_SMS;
    shared[0].1 = "SM00000000000000000000000000000002";
    let settings = "key=webhooks_sharedkey_01hx,algorithm=HMAC_SHA256";
    let sha256 = form_signature(SHARED_KEY_SECRET, &url, &shared, "HMAC_SHA256");
    let with_settings = |signature: &str, settings: &str| {
        post_form(
            &host,
            PATH,
            &[
                ("x-twilio-signature", signature),
                ("x-twilio-webhooks-signature-settings", settings),
            ],
            &shared,
        )
    };
    assert_twiml(with_settings(&sha256, settings), &host);
    let under_auth_token = form_signature(AUTH_TOKEN, &url, &shared, "HMAC_SHA256");
    assert_eq!(
        with_settings(&under_auth_token, settings).status(),
        401,
        "not the SharedKey"
    );
    let md5 = "key=webhooks_sharedkey_01hx,algorithm=HMAC_MD5";
    assert_eq!(
        with_settings(&sha256, md5).status(),
        401,
        "an unsupported algorithm"
    );
    let response = post_form(&host, PATH, &[("x-twilio-signature", &sha256)], &shared);
    assert_eq!(
        response.status(),
        401,
        "without the settings header: the Auth Token"
    );

    let kinds: Vec<_> = stored(&host).iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

#[test]
fn twilio_without_public_url_signs_over_the_host_header_with_or_without_its_port() {
    let host = twilio_host(None);
    let params = [
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("CallStatus", "ringing"),
    ];
    let url = host.url("/hooks/twilio/voice");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let signature = form_signature(AUTH_TOKEN, &url, &params, "HMAC_SHA1");
    let signed = [("x-twilio-signature", signature.as_str())];
    assert_twiml(
        post_form(&host, "/hooks/twilio/voice", &signed, &params),
        &host,
    );
    let events = stored(&host);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "twilio.call");
    assert_eq!(events[0]["subject"], "CA0123456789abcdef0123456789abcdef");

    // Twilio's validators also accept the URL without its port.
    let port = host.base_url.rsplit(':').next().unwrap();
    let portless = url.replacen(&format!(":{port}"), "", 1);
    assert_eq!(portless, "http://127.0.0.1/hooks/twilio/voice");
    let answered = [
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("CallStatus", "in-progress"),
    ];
    let signature = form_signature(AUTH_TOKEN, &portless, &answered, "HMAC_SHA1");
    let signed = [("x-twilio-signature", signature.as_str())];
    assert_twiml(
        post_form(&host, "/hooks/twilio/voice", &signed, &answered),
        &host,
    );
    assert_eq!(
        stored(&host).len(),
        2,
        "each status callback is its own event"
    );

    // A webhook configured for GET: the parameters are in the signed URL alone.
    let get_path =
        "/hooks/twilio/voice?CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=completed";
    let signature = form_signature(AUTH_TOKEN, &host.url(get_path), &[], "HMAC_SHA1");
    let get = |path: &str| {
        client()
            .get(host.url(path))
            .header("x-twilio-signature", &signature)
            .send()
            .unwrap()
    };
    assert_twiml(get(get_path), &host);
    let events = stored(&host);
    let completed = events
        .iter()
        .find(|e| e["payload"]["CallStatus"] == "completed")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(completed["kind"], "twilio.call");
    let tampered = get_path.replace("completed", "canceled");
    assert_eq!(get(&tampered).status(), 401, "a GET's query changed");

    let elsewhere = form_signature(
        AUTH_TOKEN,
        "http://evil.example/hooks/twilio/voice",
        &params,
        "HMAC_SHA1",
    );
    let response = post_form(
        &host,
        "/hooks/twilio/voice",
        &[("x-twilio-signature", &elsewhere)],
        &params,
    );
    assert_eq!(response.status(), 401, "signed for another host");
    assert_eq!(stored(&host).len(), 3);
}
