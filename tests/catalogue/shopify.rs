//! `shopify` (JavaScript): `X-Shopify-Hmac-Sha256`, the standard base64 of the
//! HMAC-SHA256 of the raw body under the app's client secret, computed here as
//! Shopify's documentation computes it (there is no signing library for it on
//! the registries). Shopify signs no timestamp, so there is no stale case: a
//! delivery sent again is stored once, by its `X-Shopify-Webhook-Id`.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::delivery;
use crate::common::{client, Host};

const SECRET: &str = "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";
const SHOP: &str = "jsmith.myshopify.com";
/// An order as Shopify's `orders/create` sends it, abridged. Its ids are above
/// 2^53, so a payload re-encoded through a JavaScript number would differ.
const ORDER: &str = r#"{"id":820982911946154508,"admin_graphql_api_id":"gid:\/\/shopify\/Order\/820982911946154508","email":"jon@example.com","total_price":"403.00","currency":"USD","line_items":[{"id":866550311766439020,"title":"IPod Nano - 8GB","quantity":1,"price":"199.00"}],"note":"caf\u00e9 ✓"}"#;

/// Shopify's signature of `body` under `secret`.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn shopify_host() -> Host {
    delivery::provider_host("shopify", &format!("secret = \"{SECRET}\""))
}

/// POSTs `body` as Shopify does, with `signature` unless `None`, and `headers`.
fn deliver(
    host: &Host,
    signature: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> reqwest::blocking::Response {
    let mut request = client()
        .post(host.url("/hooks/shopify"))
        .header("content-type", "application/json")
        .header("x-shopify-shop-domain", SHOP)
        .header("x-shopify-api-version", "2025-07")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Shopify-Hmac-Sha256", signature);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().unwrap()
}

fn order_headers(webhook_id: &'static str) -> [(&'static str, &'static str); 2] {
    [
        ("X-Shopify-Topic", "orders/create"),
        ("X-Shopify-Webhook-Id", webhook_id),
    ]
}

fn stored(host: &Host) -> Vec<Value> {
    delivery::stored(host, "shopify")
}

#[test]
fn shopify_stores_signed_deliveries_once_by_webhook_id() {
    let host = shopify_host();
    let id = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043";
    let signature = sign(SECRET, ORDER.as_bytes());

    let response = deliver(
        &host,
        Some(&signature),
        &order_headers(id),
        ORDER.as_bytes(),
    );
    assert_eq!(response.status(), 200, "{}", host.log());
    let reply: Value = response.json().unwrap();
    assert_eq!(reply["event"]["id"], id);
    assert_eq!(reply["event"]["kind"], "shopify.orders.create");

    let events = stored(&host);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_id"], id);
    assert_eq!(events[0]["kind"], "shopify.orders.create");
    assert_eq!(events[0]["subject"], SHOP);
    let sent: Value = serde_json::from_str(ORDER).unwrap();
    assert_eq!(
        events[0]["payload"], sent,
        "the payload is the body as sent"
    );
    assert_eq!(
        events[0]["payload"]["id"].as_u64(),
        Some(820982911946154508),
        "large ids keep every digit"
    );

    // Shopify's retry of the same delivery (or an attacker's replay of it) is
    // answered alike and stored once.
    let again = deliver(
        &host,
        Some(&signature),
        &order_headers(id),
        ORDER.as_bytes(),
    );
    assert_eq!(again.status(), 200);
    assert_eq!(stored(&host).len(), 1);

    // Every topic, `/` as `.`, underscores kept.
    let redact = br#"{"shop_id":954889,"shop_domain":"jsmith.myshopify.com","customer":{"id":191167},"orders_requested":[299938]}"#;
    let response = deliver(
        &host,
        Some(&sign(SECRET, redact)),
        &[
            ("X-Shopify-Topic", "customers/data_request"),
            (
                "X-Shopify-Webhook-Id",
                "7f1f04b1-0e0d-4bd0-9c41-1a5d4c2f0a11",
            ),
        ],
        redact,
    );
    assert_eq!(response.status(), 200, "{}", host.log());
    let kinds: Vec<Value> = stored(&host).iter().map(|e| e["kind"].clone()).collect();
    assert!(
        kinds.contains(&Value::from("shopify.customers.data_request")),
        "{kinds:?}"
    );
}

#[test]
fn shopify_refuses_forged_tampered_and_unsigned_deliveries() {
    let host = shopify_host();
    let id = "0c3b0c6e-5d7a-4c1e-a1f4-2f3e8d9b7a60";
    let body = ORDER.as_bytes();
    let valid = sign(SECRET, body);
    let digest = base64::engine::general_purpose::STANDARD
        .decode(&valid)
        .unwrap();

    let mut tampered = body.to_vec();
    tampered[7] ^= 1;
    let forged = sign("not-the-secret", body);
    let mut refused = delivery::forgeries(body, &valid, forged, tampered);
    refused.extend([
        (
            "the digest in hex",
            Some(hex::encode(&digest)),
            body.to_vec(),
        ),
        (
            "the digest cut short",
            Some(base64::engine::general_purpose::STANDARD.encode(&digest[..31])),
            body.to_vec(),
        ),
        (
            "the digest without padding",
            Some(valid.trim_end_matches('=').to_string()),
            body.to_vec(),
        ),
        (
            "the signature of an empty body",
            Some(sign(SECRET, b"")),
            body.to_vec(),
        ),
    ]);
    for (case, signature, body) in refused {
        let response = deliver(&host, signature.as_deref(), &order_headers(id), &body);
        assert_eq!(response.status(), 401, "{case}: {}", host.log());
    }

    // Signed, but not something to store: the provider's mistake, 400.
    let xml = b"<?xml version=\"1.0\"?><order><id>1</id></order>";
    let response = deliver(&host, Some(&sign(SECRET, xml)), &order_headers(id), xml);
    assert_eq!(response.status(), 400);
    let no_topic = [("X-Shopify-Webhook-Id", id)];
    assert_eq!(deliver(&host, Some(&valid), &no_topic, body).status(), 400);
    let no_id = [("X-Shopify-Topic", "orders/create")];
    assert_eq!(deliver(&host, Some(&valid), &no_id, body).status(), 400);
    let odd_topic = [
        ("X-Shopify-Topic", "orders/\"create\""),
        ("X-Shopify-Webhook-Id", id),
    ];
    assert_eq!(deliver(&host, Some(&valid), &odd_topic, body).status(), 400);

    assert!(stored(&host).is_empty(), "{:?}", stored(&host));
    // The same delivery, signed right, still goes through: nothing above was
    // refused for a reason that would refuse it.
    let response = deliver(&host, Some(&valid), &order_headers(id), body);
    assert_eq!(response.status(), 200, "{}", host.log());
    assert_eq!(stored(&host).len(), 1);
}
