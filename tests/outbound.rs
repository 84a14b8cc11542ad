//! Outbound HTTP from plugins end to end, against real servers on 127.0.0.1: the
//! allowlist refuses before any connection is made, an allowlisted name that
//! resolves to a loopback address is refused unless that address is listed itself,
//! a bare name allows https only, the response-size cap and the
//! timeouts apply, the stripe plugin's invoice follow-up lands in the stored event
//! (or the webhook gets 503 and nothing is stored), and the notify handler posts
//! its messages with the host's retries and dead letters.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;

use common::stub_server::{Reply, StubServer};
use common::{client, event_in, example_plugin, github_signature, now_secs, Host, HostSpec};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const STRIPE_SECRET: &str = "whsec_outbound_6f3Jd0rTq4NbLw8ZpK2x";
const API_KEY: &str = "sk_test_outbound_4eC39HqLyjWDarjtT1zdp7dc";
const GITHUB_SECRET: &str = "outbound-github-secret";
const INVOICE_ID: &str = "in_1MtHbELkdIwHu7ixl4OzzPMv";

fn get(host: &Host, path: &str) -> Value {
    let response = host.get(path);
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().unwrap()
}

/// A TOML array of strings (JSON's is the same).
fn toml_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap()
}

// ---- the allowlist, caps and timeouts, through the `fetcher` test plugin ----

fn fetcher_host(allowed_hosts: &[String], timeout: &str) -> Host {
    HostSpec::default()
        .test_plugin("fetcher")
        .config(&format!(
            "[plugins.fetcher]\nallowed_hosts = {}\ntimeout = \"{timeout}\"\n",
            toml_list(allowed_hosts)
        ))
        .start()
}

/// Asks the fetcher plugin to make `ask` and returns its report.
fn fetch(host: &Host, ask: Value) -> Value {
    let response = client()
        .post(host.url("/hooks/fetcher"))
        .body(ask.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{ask}: {}", host.log());
    response.json().unwrap()
}

#[test]
fn a_request_to_a_host_not_on_the_allowlist_fails_in_the_plugin_and_never_connects() {
    let allowed = StubServer::start(|_, _| Reply::Body(200, b"ok".to_vec()));
    let forbidden = TcpListener::bind("127.0.0.1:0").unwrap();
    forbidden.set_nonblocking(true).unwrap();
    let forbidden_port = forbidden.local_addr().unwrap().port();
    let host = fetcher_host(&[allowed.addr.to_string()], "10s");

    for url in [
        // The allowlisted host on another port.
        format!("http://127.0.0.1:{forbidden_port}/"),
        // A host that is not listed at all (the allowlist matches names, so a name
        // that resolves to a listed address is still refused).
        format!("http://localhost:{forbidden_port}/"),
        format!("http://localhost:{}/", allowed.addr.port()),
        // The listed host without a port means the scheme's default port.
        "http://127.0.0.1/".to_string(),
    ] {
        let reply = fetch(&host, json!({ "url": url }));
        assert_eq!(reply["error_code"], "HttpRequestDenied", "{url}: {reply}");
        assert!(reply.get("status").is_none(), "{url}: {reply}");
    }
    match forbidden.accept() {
        Err(error) if error.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the listener that is not allowlisted was connected to: {other:?}"),
    }
    assert_eq!(
        allowed.connections(),
        0,
        "a refused request reached the network"
    );
    let log = host.log();
    assert_eq!(
        log.matches("outbound request refused: host is not in [plugins.fetcher] allowed_hosts")
            .count(),
        4,
        "{log}"
    );

    let reply = fetch(&host, json!({ "url": allowed.url("/ok") }));
    assert_eq!(reply, json!({ "status": 200, "body_bytes": 2 }));
    assert_eq!(allowed.connections(), 1);
}

#[test]
fn an_allowlisted_request_succeeds_within_the_size_cap_and_the_timeouts() {
    // The host's cap is 16 MiB; these go past it by 1 MiB.
    const OVER_CAP: usize = 17 << 20;
    let server = StubServer::start(|_, request| match request.target.as_str() {
        "/small" => Reply::Body(200, vec![b'a'; 1234]),
        "/created" => Reply::Body(201, Vec::new()),
        "/streamed" => Reply::Chunked(1 << 20),
        "/huge" => Reply::Body(200, vec![b'x'; OVER_CAP]),
        "/huge-streamed" => Reply::Chunked(OVER_CAP),
        "/stall" => Reply::Stall,
        _ => Reply::Body(404, Vec::new()),
    });
    let host = fetcher_host(&[server.addr.to_string()], "3s");

    let reply = fetch(&host, json!({ "url": server.url("/small") }));
    assert_eq!(reply, json!({ "status": 200, "body_bytes": 1234 }));
    let reply = fetch(
        &host,
        json!({ "url": server.url("/created"), "method": "POST", "body": "{\"hello\":1}" }),
    );
    assert_eq!(reply, json!({ "status": 201, "body_bytes": 0 }));
    let posted = server
        .requests()
        .into_iter()
        .find(|r| r.target == "/created")
        .unwrap();
    assert_eq!(posted.method, "POST");
    assert_eq!(posted.body, b"{\"hello\":1}");
    let reply = fetch(&host, json!({ "url": server.url("/streamed") }));
    assert_eq!(reply, json!({ "status": 200, "body_bytes": 1 << 20 }));

    // Announced by content-length: refused before the body is read.
    let reply = fetch(&host, json!({ "url": server.url("/huge") }));
    assert_eq!(reply["error_code"], "HttpResponseBodySize", "{reply}");
    // Only found out while streaming: the body stream fails. wasmtime-wasi-http 48
    // passes a body error to the guest as text only (its `http-error-code` finds
    // no code in it), so the text is what the plugin can see.
    let reply = fetch(&host, json!({ "url": server.url("/huge-streamed") }));
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("body size exceeds limit: 16777216 bytes"),
        "{reply}"
    );
    assert!(reply.get("status").is_none(), "{reply}");

    // A timeout the plugin asks for ends in an error inside the plugin.
    let reply = fetch(
        &host,
        json!({ "url": server.url("/stall"), "timeout_ms": 200 }),
    );
    assert_eq!(reply["error_code"], "ConnectionReadTimeout", "{reply}");
    // Without one, the call's own bound ([plugins.fetcher] timeout) ends it: 504.
    let response = client()
        .post(host.url("/hooks/fetcher"))
        .body(json!({ "url": server.url("/stall") }).to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 504, "{}", host.log());
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.target == "/stall")
            .count(),
        2,
        "both stalled requests reached the server"
    );
}

// ---- the address actually connected to ----

#[test]
fn an_allowlisted_name_that_resolves_to_loopback_is_refused_unless_the_address_is_listed() {
    let unlisted = StubServer::start(|_, _| Reply::Body(200, b"ok".to_vec()));
    let listed = StubServer::start(|_, _| Reply::Body(200, b"listed".to_vec()));
    let (unlisted_port, listed_port) = (unlisted.addr.port(), listed.addr.port());
    let host = fetcher_host(
        &[
            // The name is allowed, and resolves to 127.0.0.1: as a DNS-rebinding
            // or SSRF target would.
            format!("localhost:{unlisted_port}"),
            // The operator names the loopback address itself: it may be reached.
            format!("localhost:{listed_port}"),
            format!("127.0.0.1:{listed_port}"),
        ],
        "10s",
    );

    let reply = fetch(
        &host,
        json!({ "url": format!("http://localhost:{unlisted_port}/") }),
    );
    assert_eq!(reply["error_code"], "DestinationIpProhibited", "{reply}");
    assert!(reply.get("status").is_none(), "{reply}");
    assert_eq!(
        unlisted.connections(),
        0,
        "a name that resolves to loopback was connected to"
    );
    let log = host.log();
    assert!(
        log.contains("outbound request refused")
            && log.contains(&format!("127.0.0.1:{unlisted_port} (loopback)")),
        "the log says which address was refused and why: {log}"
    );
    assert!(
        host.metrics().contains(
            r#"hookhost_outbound_requests_refused_total{plugin="fetcher",reason="address_prohibited"} 1"#
        ),
        "{}",
        host.metrics()
    );

    for url in [
        format!("http://localhost:{listed_port}/"),
        format!("http://127.0.0.1:{listed_port}/"),
    ] {
        let reply = fetch(&host, json!({ "url": url }));
        assert_eq!(reply, json!({ "status": 200, "body_bytes": 6 }), "{url}");
    }
    assert_eq!(listed.connections(), 2);
    assert_eq!(unlisted.connections(), 0);
}

#[test]
fn a_bare_name_allows_https_only() {
    let host = fetcher_host(&["localhost".to_string()], "10s");

    // Plain http on port 80 is not what a bare entry allows: refused by the
    // allowlist before any lookup or connection (an attempt would have ended in
    // `ConnectionRefused`, or the loopback refusal below).
    let reply = fetch(&host, json!({ "url": "http://localhost/" }));
    assert_eq!(reply["error_code"], "HttpRequestDenied", "{reply}");
    let log = host.log();
    assert!(
        log.contains(
            "outbound request refused: host is not in [plugins.fetcher] allowed_hosts \
             (an entry without a port allows https only: add \"localhost:80\" for plain http)"
        ),
        "{log}"
    );

    // https on 443 is allowed by name, and then refused by the address check,
    // since localhost is 127.0.0.1.
    let reply = fetch(&host, json!({ "url": "https://localhost/" }));
    assert_eq!(reply["error_code"], "DestinationIpProhibited", "{reply}");

    let metrics = host.metrics();
    for line in [
        r#"hookhost_outbound_requests_refused_total{plugin="fetcher",reason="not_allowed"} 1"#,
        r#"hookhost_outbound_requests_refused_total{plugin="fetcher",reason="address_prohibited"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
}

// ---- the stripe plugin's invoice follow-up ----

fn stripe_signature(body: &[u8]) -> String {
    let t = now_secs();
    let mut mac = Hmac::<Sha256>::new_from_slice(STRIPE_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn send_stripe(host: &Host, plugin: &str, body: &str) -> reqwest::blocking::Response {
    client()
        .post(host.url(&format!("/hooks/{plugin}")))
        .header("stripe-signature", stripe_signature(body.as_bytes()))
        .body(body.to_string())
        .send()
        .unwrap()
}

/// An `invoice.paid` event as Stripe sends it; its object is the invoice as it was
/// when the event was created.
fn invoice_paid_event(event_id: &str) -> String {
    json!({
        "id": event_id,
        "object": "event",
        "type": "invoice.paid",
        "data": { "object": {
            "id": INVOICE_ID, "object": "invoice", "customer": "cus_NffrFeUfNV2Hib",
            "status": "open", "amount_paid": 0, "currency": "usd"
        } }
    })
    .to_string()
}

/// The invoice as the API returns it now.
fn invoice() -> Value {
    json!({
        "id": INVOICE_ID, "object": "invoice", "customer": "cus_NffrFeUfNV2Hib",
        "customer_email": "jenny.rosen@example.com", "status": "paid",
        "amount_paid": 2000, "currency": "usd",
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test_1"
    })
}

fn stripe_config(plugin: &str, api_base: &str, allowed_hosts: &[String]) -> String {
    format!(
        "[plugins.{plugin}]\n\
         config = {{ secret = \"{STRIPE_SECRET}\", api_key = \"{API_KEY}\", api_base = \"{api_base}\" }}\n\
         allowed_hosts = {}\n",
        toml_list(allowed_hosts)
    )
}

fn stored_events(host: &Host, plugin: &str) -> Vec<Value> {
    get(host, &format!("/api/events?plugin={plugin}"))["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn the_stripe_invoice_follow_up_reaches_the_api_lands_in_the_event_and_notify_posts_it() {
    let server = StubServer::start(|_, request| {
        if request.target.starts_with("/v1/invoices/") {
            Reply::json(200, &invoice())
        } else {
            Reply::Body(200, b"ok".to_vec())
        }
    });
    let local = [server.addr.to_string()];
    let host = HostSpec::default()
        .example_plugin("stripe")
        .example_plugin("notify")
        .config(&format!(
            "{}[plugins.notify]\nconfig = {{ url = \"{}\" }}\nallowed_hosts = {}\n",
            stripe_config("stripe", &server.url(""), &local),
            server.url("/chat"),
            toml_list(&local)
        ))
        .start();

    let response = send_stripe(&host, "stripe", &invoice_paid_event("evt_paid_1"));
    assert_eq!(response.status(), 200, "{}", host.log());
    // The invoice API's calls only: notify's post to /chat may already be in too,
    // if its delivery ran before this line.
    let api_calls: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.target != "/chat")
        .collect();
    assert_eq!(api_calls.len(), 1, "{api_calls:?}");
    assert_eq!(api_calls[0].method, "GET");
    assert_eq!(api_calls[0].target, format!("/v1/invoices/{INVOICE_ID}"));
    assert_eq!(
        api_calls[0].header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );

    let events = stored_events(&host, "stripe");
    assert_eq!(events.len(), 1, "{events:?}");
    let payload = &events[0]["payload"];
    assert_eq!(payload["invoice"], invoice(), "{payload}");
    // The event's own fields are kept as Stripe sent them.
    assert_eq!(payload["id"], "evt_paid_1");
    assert_eq!(payload["data"]["object"]["status"], "open");

    // The notify handler is subscribed to stripe.invoice.paid and uses the invoice.
    let message = host.wait_for("notify to post", || {
        server.requests().into_iter().find(|r| r.target == "/chat")
    });
    assert_eq!(message.method, "POST");
    let text: Value = serde_json::from_slice(&message.body).unwrap();
    assert_eq!(
        text,
        json!({ "text": format!(
            "Invoice {INVOICE_ID} paid: 20.00 USD by jenny.rosen@example.com \
             https://invoice.stripe.com/i/acct_1/test_1"
        ) })
    );

    // Events other than invoice.* make no API call and keep the body as the payload.
    let body =
        r#"{"id":"evt_customer_1","type":"customer.created","data":{"object":{"id":"cus_1"}}}"#;
    let response = send_stripe(&host, "stripe", body);
    assert_eq!(response.status(), 200, "{}", host.log());
    let api_calls = server
        .requests()
        .iter()
        .filter(|r| r.target.starts_with("/v1/"))
        .count();
    assert_eq!(api_calls, 1);
    let listing = get(&host, "/api/events?plugin=stripe");
    let customer = event_in(&listing, "evt_customer_1").unwrap();
    assert_eq!(
        customer["payload"],
        serde_json::from_str::<Value>(body).unwrap()
    );
}

#[test]
fn when_the_invoice_api_fails_stripe_gets_503_and_nothing_is_stored() {
    // The API fails once, then answers: Stripe's retry of the webhook then succeeds.
    let flaky = StubServer::start(|n, _| {
        if n == 0 {
            Reply::json(
                500,
                &json!({ "error": { "type": "api_error", "message": "try again" } }),
            )
        } else {
            Reply::json(200, &invoice())
        }
    });
    let down = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // The listener is dropped: connections to it are refused.
    let host = HostSpec::default()
        .example_plugin("stripe")
        .plugin("stripe-down", example_plugin("stripe"))
        .plugin("stripe-unlisted", example_plugin("stripe"))
        .config(&format!(
            "{}{}{}",
            stripe_config("stripe", &flaky.url(""), &[flaky.addr.to_string()]),
            stripe_config(
                "stripe-down",
                &format!("http://{down}"),
                &[down.to_string()]
            ),
            stripe_config("stripe-unlisted", "https://api.stripe.com", &[]),
        ))
        .start();

    let event = invoice_paid_event("evt_paid_retry");
    let response = send_stripe(&host, "stripe", &event);
    assert_eq!(response.status(), 503, "{}", host.log());
    assert!(stored_events(&host, "stripe").is_empty());
    assert!(
        host.log().contains("answered HTTP 500"),
        "the reason is logged: {}",
        host.log()
    );

    let response = send_stripe(&host, "stripe", &event);
    assert_eq!(response.status(), 200, "{}", host.log());
    let events = stored_events(&host, "stripe");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["payload"]["invoice"], invoice());
    assert_eq!(flaky.requests().len(), 2);

    for (plugin, reason) in [
        ("stripe-down", "connection-refused"),
        (
            "stripe-unlisted",
            "api.stripe.com must be in [plugins.stripe] allowed_hosts",
        ),
    ] {
        let response = send_stripe(&host, plugin, &invoice_paid_event("evt_paid_down"));
        assert_eq!(response.status(), 503, "{plugin}: {}", host.log());
        assert!(stored_events(&host, plugin).is_empty(), "{plugin}");
        assert!(
            host.log().contains(reason),
            "{plugin}: {reason}: {}",
            host.log()
        );
    }
}

// ---- the notify handler ----

fn send_push(host: &Host, delivery: &str) {
    let body = json!({
        "ref": "refs/heads/main",
        "compare": "https://github.com/acme/widgets/compare/1a2b3c4d...5e6f7a8b",
        "pusher": { "name": "octocat" },
        "repository": { "full_name": "acme/widgets" },
        "commits": [ { "id": "5e6f7a8b" }, { "id": "9c0d1e2f" } ]
    })
    .to_string();
    let response = client()
        .post(host.url("/hooks/github"))
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            github_signature(GITHUB_SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", host.log());
}

fn notify_host(url: &str, allowed_hosts: &[String], max_attempts: u32) -> Host {
    HostSpec::default()
        .example_plugin("github")
        .example_plugin("notify")
        .config(&format!(
            "[plugins.github]\nconfig = {{ secret = \"{GITHUB_SECRET}\" }}\n\
             [plugins.notify]\nconfig = {{ url = \"{url}\" }}\nallowed_hosts = {}\n\
             max_attempts = {max_attempts}\nretry_base = \"50ms\"\n",
            toml_list(allowed_hosts)
        ))
        .start()
}

/// The notify delivery of the only event, once it is no longer pending.
fn settled_delivery(host: &Host) -> Value {
    host.wait_for("the notify delivery to settle", || {
        let listed = get(host, "/api/deliveries?plugin=notify");
        let delivery = listed["deliveries"].as_array().unwrap().first()?.clone();
        (delivery["state"] != "pending").then_some(delivery)
    })
}

const PUSH_MESSAGE: &str = "octocat pushed 2 commits to acme/widgets main: \
                            https://github.com/acme/widgets/compare/1a2b3c4d...5e6f7a8b";

#[test]
fn notify_posts_a_message_for_a_signed_github_push() {
    let server = StubServer::start(|_, _| Reply::Body(200, b"ok".to_vec()));
    let host = notify_host(&server.url("/hooks/chat"), &[server.addr.to_string()], 3);
    send_push(&host, "push-1");
    let delivery = settled_delivery(&host);
    assert_eq!(delivery["state"], "delivered", "{delivery}");
    assert_eq!(delivery["attempts"], 1, "{delivery}");

    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].target, "/hooks/chat");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body, json!({ "text": PUSH_MESSAGE }));
}

#[test]
fn notify_retries_a_failing_receiver_until_it_accepts() {
    const FAILURES: usize = 2;
    let server = StubServer::start(|n, _| {
        if n < FAILURES {
            Reply::Body(500, b"busy".to_vec())
        } else {
            Reply::Body(200, b"ok".to_vec())
        }
    });
    let host = notify_host(&server.url("/chat"), &[server.addr.to_string()], 5);
    send_push(&host, "push-retried");
    let delivery = settled_delivery(&host);
    assert_eq!(delivery["state"], "delivered", "{delivery}");
    assert_eq!(delivery["attempts"], FAILURES as u64 + 1, "{delivery}");

    let requests = server.requests();
    assert_eq!(requests.len(), FAILURES + 1, "{requests:?}");
    for request in &requests {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, json!({ "text": PUSH_MESSAGE }));
    }
    let log = host.log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("delivery failed, will retry") && l.contains("answered HTTP 500"))
            .count(),
        FAILURES,
        "{log}"
    );
}

#[test]
fn notify_to_a_url_not_on_the_allowlist_ends_as_a_dead_letter_with_the_reason() {
    let server = StubServer::start(|_, _| Reply::Body(200, b"ok".to_vec()));
    // The same host on another port is not the allowlisted entry.
    let other_port = format!("127.0.0.1:{}", server.addr.port() ^ 1);
    let host = notify_host(&server.url("/chat"), &[other_port], 2);
    send_push(&host, "push-refused");
    let delivery = settled_delivery(&host);
    assert_eq!(delivery["state"], "dead", "{delivery}");
    assert_eq!(delivery["attempts"], 2, "{delivery}");
    let error = delivery["last_error"].as_str().unwrap();
    assert!(
        error.contains("http-request-denied")
            && error.contains("must be in [plugins.notify] allowed_hosts"),
        "{error}"
    );
    assert_eq!(
        server.connections(),
        0,
        "a refused post reached the network"
    );
}

#[test]
fn notify_without_a_url_subscribes_to_nothing() {
    let host = HostSpec::default()
        .example_plugin("github")
        .example_plugin("notify")
        .config(&format!(
            "[plugins.github]\nconfig = {{ secret = \"{GITHUB_SECRET}\" }}\n"
        ))
        .start();
    send_push(&host, "push-unconfigured");
    let events = stored_events(&host, "github");
    assert_eq!(events.len(), 1, "{events:?}");
    let event = get(
        &host,
        &format!("/api/events/{}", events[0]["id"].as_str().unwrap()),
    );
    assert_eq!(event["deliveries"], json!([]), "{event}");
    assert!(host
        .log()
        .contains("config `url` is not set: notify subscribes to nothing"));
}
