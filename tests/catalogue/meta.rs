//! `meta` (JavaScript): Meta's Webhooks for WhatsApp, Messenger and Instagram.
//! The `hub.challenge` handshake answered exactly, and notifications signed with
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body under the app
//! secret>`, computed here as Meta's documentation describes it (there is no
//! signing library for it on the registries). Meta signs no timestamp, so there
//! is no stale case: a notification sent again is stored once, by its event ids.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::delivery;
use crate::common::{client, Host};

const APP_SECRET: &str = "9f3c2b7e1d4a6f8e0b5c7d9e1f2a3b4c";
const VERIFY_TOKEN: &str = "meaty ham&hock";

/// A WhatsApp Cloud API text message, as in Meta's reference.
const WHATSAPP: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]},"field":"messages"}]}]}"#;

/// Two Page entries in one batch: Messenger's `messaging` (a message and a read)
/// and a `feed` change.
const PAGE: &str = r#"{"object":"page","entry":[{"id":"106540352242922","time":1458692752478,"messaging":[{"sender":{"id":"6801345129977654"},"recipient":{"id":"106540352242922"},"timestamp":1458692752478,"message":{"mid":"m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P","text":"hello, world!"}},{"sender":{"id":"6801345129977654"},"recipient":{"id":"106540352242922"},"timestamp":1458668856463,"read":{"watermark":1458668856253}}]},{"id":"106540352242922","time":1520383571,"changes":[{"field":"feed","value":{"item":"post","post_id":"106540352242922_44444444","verb":"add","published":1,"created_time":1520383571,"message":"Example post content.","from":{"name":"Test Page","id":"1067280970047460"}}}]}]}"#;

/// The same notifications batched otherwise: the entries and items reordered.
const PAGE_REBATCHED: &str = r#"{"object":"page","entry":[{"id":"106540352242922","time":1520383571,"changes":[{"field":"feed","value":{"item":"post","post_id":"106540352242922_44444444","verb":"add","published":1,"created_time":1520383571,"message":"Example post content.","from":{"name":"Test Page","id":"1067280970047460"}}}]},{"id":"106540352242922","time":1458692752478,"messaging":[{"sender":{"id":"6801345129977654"},"recipient":{"id":"106540352242922"},"timestamp":1458668856463,"read":{"watermark":1458668856253}},{"sender":{"id":"6801345129977654"},"recipient":{"id":"106540352242922"},"timestamp":1458692752478,"message":{"mid":"m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P","text":"hello, world!"}}]}]}"#;

/// Meta's `X-Hub-Signature-256` of `body` under `secret`.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn meta_host() -> Host {
    delivery::provider_host(
        "meta",
        &format!("app_secret = \"{APP_SECRET}\", verify_token = \"{VERIFY_TOKEN}\""),
    )
}

fn notify(host: &Host, signature: Option<&str>, body: &[u8]) -> reqwest::blocking::Response {
    delivery::post(host, "meta", &[("X-Hub-Signature-256", signature)], body)
}

fn stored(host: &Host) -> Vec<Value> {
    delivery::stored(host, "meta")
}

fn with_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn meta_answers_the_verification_request_exactly() {
    let host = meta_host();
    // As Meta sends it: the token form-encoded in the query.
    let response = host.get(
        "/hooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meaty+ham%26hock",
    );
    assert_eq!(response.status(), 200, "{}", host.log());
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.text().unwrap(), "1158201444");

    let refused = [
        "/hooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meaty+ham",
        "/hooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=",
        "/hooks/meta?hub.mode=subscribe&hub.challenge=1158201444",
        "/hooks/meta?hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=meaty+ham%26hock",
        "/hooks/meta?hub.challenge=1158201444&hub.verify_token=meaty+ham%26hock",
        "/hooks/meta",
    ];
    for path in refused {
        let response = host.get(path);
        assert_eq!(response.status(), 403, "GET {path}");
        assert!(
            !response.text().unwrap().contains("1158201444"),
            "GET {path} echoed the challenge"
        );
    }
    assert!(stored(&host).is_empty());
}

#[test]
fn meta_stores_one_event_per_change_and_messaging_item() {
    let host = meta_host();

    let response = notify(
        &host,
        Some(&sign(APP_SECRET, WHATSAPP.as_bytes())),
        WHATSAPP.as_bytes(),
    );
    assert_eq!(response.status(), 200, "{}", host.log());
    let response = notify(
        &host,
        Some(&sign(APP_SECRET, PAGE.as_bytes())),
        PAGE.as_bytes(),
    );
    assert_eq!(response.status(), 200, "{}", host.log());

    let events = stored(&host);
    assert_eq!(events.len(), 4, "{events:#?}");

    let whatsapp = with_kind(&events, "meta.whatsapp_business_account.messages");
    assert_eq!(whatsapp.len(), 1, "{events:#?}");
    assert_eq!(whatsapp[0]["subject"], "102290129340398");
    let sent: Value = serde_json::from_str(WHATSAPP).unwrap();
    assert_eq!(
        whatsapp[0]["payload"]["object"],
        "whatsapp_business_account"
    );
    assert_eq!(whatsapp[0]["payload"]["entry_id"], "102290129340398");
    assert_eq!(
        whatsapp[0]["payload"]["change"],
        sent["entry"][0]["changes"][0]
    );

    let message = with_kind(&events, "meta.page.messaging.message");
    assert_eq!(message.len(), 1, "{events:#?}");
    assert_eq!(
        message[0]["event_id"],
        "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P",
        "a message is stored under its own id"
    );
    assert_eq!(message[0]["subject"], "106540352242922");
    assert_eq!(message[0]["payload"]["time"], 1458692752478u64);
    assert_eq!(
        message[0]["payload"]["messaging"]["message"]["text"],
        "hello, world!"
    );

    let read = with_kind(&events, "meta.page.messaging.read");
    assert_eq!(read.len(), 1, "{events:#?}");
    assert_eq!(
        read[0]["payload"]["messaging"]["read"]["watermark"],
        1458668856253u64
    );
    let feed = with_kind(&events, "meta.page.feed");
    assert_eq!(feed.len(), 1, "{events:#?}");
    assert_eq!(
        feed[0]["payload"]["change"]["value"]["post_id"],
        "106540352242922_44444444"
    );

    // Meta's retries, batched alike or otherwise, store nothing new.
    for body in [PAGE, PAGE_REBATCHED, WHATSAPP] {
        let response = notify(
            &host,
            Some(&sign(APP_SECRET, body.as_bytes())),
            body.as_bytes(),
        );
        assert_eq!(response.status(), 200, "{}", host.log());
    }
    assert_eq!(stored(&host).len(), 4, "{:#?}", stored(&host));
}

#[test]
fn meta_refuses_forged_tampered_and_unsigned_notifications() {
    let host = meta_host();
    let body = WHATSAPP.as_bytes();
    let valid = sign(APP_SECRET, body);
    let mut tampered = body.to_vec();
    let at = WHATSAPP.find("another color").unwrap();
    tampered[at] = b'A';

    let forged = sign("not-the-app-secret", body);
    let mut refused = delivery::forgeries(body, &valid, forged, tampered);
    refused.extend([
        (
            "the digest without sha256=",
            Some(valid["sha256=".len()..].to_string()),
            body.to_vec(),
        ),
        (
            "sha1= and the right digest",
            Some(valid.replace("sha256=", "sha1=")),
            body.to_vec(),
        ),
        (
            "the digest cut short",
            Some(valid[..valid.len() - 2].to_string()),
            body.to_vec(),
        ),
    ]);
    for (case, signature, body) in refused {
        let response = notify(&host, signature.as_deref(), &body);
        assert_eq!(response.status(), 401, "{case}: {}", host.log());
    }
    // The legacy SHA-1 header alone is not enough.
    let mut sha1 = Hmac::<sha1::Sha1>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    sha1.update(body);
    let response = client()
        .post(host.url("/hooks/meta"))
        .header(
            "X-Hub-Signature",
            format!("sha1={}", hex::encode(sha1.finalize().into_bytes())),
        )
        .body(body.to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status(), 401);

    // Signed, but not a notification: 400.
    for bad in [
        &b"not json"[..],
        br#"{"entry":[]}"#,
        br#"{"object":"page","entry":{}}"#,
    ] {
        assert_eq!(
            notify(&host, Some(&sign(APP_SECRET, bad)), bad).status(),
            400
        );
    }

    assert!(stored(&host).is_empty(), "{:?}", stored(&host));
    let response = notify(&host, Some(&valid), body);
    assert_eq!(response.status(), 200, "{}", host.log());
    assert_eq!(stored(&host).len(), 1);
    // Hex is hex in either case: the same digest in upper case passes.
    let upper = format!("sha256={}", valid["sha256=".len()..].to_uppercase());
    assert_eq!(notify(&host, Some(&upper), body).status(), 200);
}
