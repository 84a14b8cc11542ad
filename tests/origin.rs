//! Plugins never act in the admin's origin, the admin's credentials never reach
//! plugins, and the open (no-token) admin serves the developer on this machine
//! alone: each attack below, made against the real binary, fails.
//!
//! - A plugin answers HTML with a script, a `hookhost_session` cookie and headers
//!   with origin-wide effects (`hostile` `/html-cookie`).
//! - A plugin reads the dashboard's session cookie and the admin bearer from the
//!   request it is handed, or from the stored request (`hostile` `/echo-request`).
//! - Another site's page POSTs to the open admin; a DNS-rebound name reads it; a
//!   proxy on the machine forwards to it.
//! - With `admin_listen`, the dashboard and API live on their own listener, and
//!   the public one serves webhooks alone.

mod common;

use std::time::Duration;

use common::{post_login, test_plugin, HostSpec};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{AUTHORIZATION, COOKIE, HOST, SET_COOKIE};
use reqwest::Version;
use serde_json::Value;

const TOKEN: &str = "a-long-random-admin-token-for-origin-tests";

// Does not follow redirects, so that the login's 303 and cookie can be seen.
use common::client_without_redirects as client;

fn hostile_host() -> common::Host {
    HostSpec::default().test_plugin("hostile").start()
}

fn guarded_hostile_host() -> common::Host {
    HostSpec::default()
        .test_plugin("hostile")
        .admin_token(TOKEN)
        .start()
}

/// `hookhost_session=<value>` from a login with the token.
fn log_in(host: &common::Host, client: &Client) -> String {
    let login = post_login(host, client, TOKEN);
    assert_eq!(login.status(), 303);
    let set_cookie = login.headers()[SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_string()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn status(request: RequestBuilder) -> u16 {
    request.send().unwrap().status().as_u16()
}

#[test]
fn a_plugins_html_and_cookie_come_out_stripped_and_sandboxed() {
    let host = hostile_host();
    let client = client();
    let response = client
        .post(host.url("/hooks/hostile/html-cookie"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    for withheld in [
        "set-cookie",
        "clear-site-data",
        "strict-transport-security",
        "alt-svc",
        "nel",
        "report-to",
        "www-authenticate",
    ] {
        assert!(!headers.contains_key(withheld), "{withheld}: {headers:?}");
    }
    let all = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(all("content-security-policy"), ["sandbox"], "{headers:?}");
    assert_eq!(all("x-content-type-options"), ["nosniff"], "{headers:?}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-plugin"], "kept", "a plugin's own headers pass");
    // The plugin's `Content-Length: 1` would have cut the body after one byte and
    // left the rest on the connection to pass for the next response.
    let body = response.text().unwrap();
    assert!(
        body.starts_with("<!doctype html>") && body.ends_with("</script>"),
        "{body}"
    );
    let health = client.get(host.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().unwrap()["status"], "ok");

    // The host's own answers under /hooks/ are contained alike.
    for path in ["/hooks/hostile/no-such-path", "/hooks/no-such-plugin"] {
        let response = client.post(host.url(path)).send().unwrap();
        assert!(response.status().is_client_error(), "{path}");
        assert_eq!(response.headers()["content-security-policy"], "sandbox");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

#[test]
fn the_session_cookie_and_the_admin_bearer_reach_neither_a_plugin_nor_the_store() {
    let host = guarded_hostile_host();
    let client = client();
    let session = log_in(&host, &client);
    let session_value = session.split_once('=').unwrap().1.to_string();
    let leaks = |text: &str| text.contains(TOKEN) || text.contains(&session_value);

    let echo = client
        .post(host.url("/hooks/hostile/echo-request?q=1"))
        .header(COOKIE, format!("theme=dark; {session}; lang=en"))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header("x-id", "with-admin-credentials")
        .send()
        .unwrap();
    assert_eq!(echo.status(), 200);
    let seen = echo.text().unwrap();
    assert!(
        !leaks(&seen),
        "the plugin saw the admin's credentials: {seen}"
    );
    let seen: Value = serde_json::from_str(&seen).unwrap();
    let header = |request: &Value, name: &str| -> Vec<String> {
        request["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(header(&seen, "cookie"), ["theme=dark; lang=en"], "{seen}");
    assert!(header(&seen, "authorization").is_empty(), "{seen}");

    // A provider's own credentials are its plugin's business.
    let provider = client
        .post(host.url("/hooks/hostile/echo-request"))
        .header(AUTHORIZATION, "Bearer the-providers-own-secret")
        .header("x-id", "with-provider-credentials")
        .send()
        .unwrap();
    let provider: Value = provider.json().unwrap();
    assert_eq!(
        header(&provider, "authorization"),
        ["Bearer the-providers-own-secret"]
    );

    // Nor are they stored, so replay cannot hand them over either.
    let events: Value = client
        .get(host.url("/api/events?plugin=hostile"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["event_id"] == "with-admin-credentials")
        .unwrap_or_else(|| panic!("the echo was not stored: {events}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = client
        .get(host.url(&format!("/api/events/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !leaks(&stored),
        "stored with the admin's credentials: {stored}"
    );
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(
        header(&stored["request"], "cookie"),
        ["theme=dark; lang=en"],
        "{stored}"
    );
    let replay = client
        .post(host.url(&format!("/api/events/{id}/replay")))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(replay.status(), 200);
    let replay = replay.text().unwrap();
    assert!(replay.contains("theme=dark; lang=en"), "{replay}");
    assert!(
        !leaks(&replay),
        "replayed with the admin's credentials: {replay}"
    );
}

#[test]
fn the_open_admin_refuses_other_sites_pages() {
    let host = hostile_host();
    let client = client();
    let own = host.base_url.clone();
    let retry = |headers: &[(&str, &str)]| {
        let mut request = client.post(host.url("/api/deliveries/999999/retry"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        status(request)
    };
    // 404: past every check, to a delivery that does not exist.
    assert_eq!(retry(&[]), 404, "a program that is not a browser");
    assert_eq!(retry(&[("sec-fetch-site", "same-origin")]), 404);
    assert_eq!(retry(&[("origin", &own)]), 404);
    assert_eq!(retry(&[("sec-fetch-site", "cross-site")]), 403);
    assert_eq!(retry(&[("sec-fetch-site", "same-site")]), 403);
    assert_eq!(retry(&[("origin", "http://attacker.example")]), 403);
    assert_eq!(retry(&[("origin", "null")]), 403, "a sandboxed page");
    let refused = client
        .post(host.url("/api/deliveries/999999/retry"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .unwrap();
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"], "cross_origin", "{body}");

    // Nor may another site deploy a component over a plugin.
    let deploy = client
        .put(host.url("/api/plugins/hostile"))
        .header("sec-fetch-site", "cross-site")
        .body(std::fs::read(test_plugin("faulty")).unwrap());
    assert_eq!(status(deploy), 403);
    let plugins: Value = client
        .get(host.url("/api/plugins"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(plugins["plugins"][0]["name"], "Hostile", "{plugins}");

    // Reading is allowed cross-site: the browser does not show the answer to the page.
    let read = client
        .get(host.url("/api/events"))
        .header("sec-fetch-site", "cross-site");
    assert_eq!(status(read), 200);
}

#[test]
fn the_open_admin_answers_only_to_loopback_names_and_not_through_a_proxy() {
    let host = hostile_host();
    let client = client();
    let port = port_of(&host.base_url);
    let other_port = if port == u16::MAX { port - 1 } else { port + 1 };
    let with_host = |method: &str, path: &str, name: &str| {
        status(
            client
                .request(method.parse().unwrap(), host.url(path))
                .header(HOST, name),
        )
    };
    let rebound = format!("attacker.example:{port}");
    assert_eq!(with_host("GET", "/api/events", &rebound), 421);
    assert_eq!(with_host("GET", "/", &rebound), 421);
    assert_eq!(with_host("GET", "/api/plugins", &rebound), 421);
    assert_eq!(with_host("POST", "/api/events/1/replay", &rebound), 421);
    assert_eq!(
        with_host("GET", "/api/events", &format!("0.0.0.0:{port}")),
        421
    );
    assert_eq!(
        with_host("GET", "/api/events", &format!("127.0.0.1:{other_port}")),
        421
    );
    assert_eq!(
        with_host("GET", "/api/events", &format!("localhost:{port}")),
        200
    );
    assert_eq!(
        with_host("GET", "/api/events", &format!("[::1]:{port}")),
        200
    );
    let misdirected: Value = client
        .get(host.url("/api/events"))
        .header(HOST, &rebound)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(misdirected["error"], "misdirected", "{misdirected}");

    // Providers and probes reach hookhost under whatever name they know it by.
    assert_eq!(with_host("POST", "/hooks/hostile/ok", &rebound), 200);
    assert_eq!(with_host("GET", "/healthz", &rebound), 200);

    for (name, value) in [
        ("x-forwarded-for", "203.0.113.7"),
        ("forwarded", "for=203.0.113.7;proto=https"),
        ("x-real-ip", "203.0.113.7"),
        ("x-forwarded-host", "hooks.example.com"),
    ] {
        let response = client
            .get(host.url("/api/events"))
            .header(name, value)
            .send()
            .unwrap();
        assert_eq!(response.status(), 403, "{name}");
        let body: Value = response.json().unwrap();
        assert_eq!(body["error"], "proxied", "{name}: {body}");
    }
    // nginx speaks HTTP/1.0 to an upstream by default, and adds no header.
    let http_1_0 = client
        .get(host.url("/api/events"))
        .version(Version::HTTP_10);
    assert_eq!(status(http_1_0), 403);
    assert!(
        host.log().contains("set an admin token"),
        "the log tells the operator the way out: {}",
        host.log()
    );
    let proxied_webhook = client
        .post(host.url("/hooks/hostile/ok"))
        .header("x-forwarded-for", "203.0.113.7");
    assert_eq!(status(proxied_webhook), 200);
}

#[test]
fn with_a_token_a_session_is_refused_from_another_origin_and_the_token_decides_the_rest() {
    let host = guarded_hostile_host();
    let client = client();
    let session = log_in(&host, &client);
    let retry = |origin: &str| {
        status(
            client
                .post(host.url("/api/deliveries/999999/retry"))
                .header(COOKIE, &session)
                .header("origin", origin),
        )
    };
    assert_eq!(retry("http://attacker.example"), 403);
    assert_eq!(retry("null"), 403);
    assert_eq!(retry(&host.base_url), 404, "past auth");

    // With a token, neither the name nor a proxy is held against a request.
    let port = port_of(&host.base_url);
    let remote = client
        .get(host.url("/api/events"))
        .bearer_auth(TOKEN)
        .header(HOST, format!("hooks.example.com:{port}"))
        .header("x-forwarded-for", "203.0.113.7");
    assert_eq!(status(remote), 200);
}

#[test]
fn the_admin_listener_serves_the_admin_surface_and_the_public_one_only_webhooks() {
    // A public `listen` needs no token when the admin surface is on loopback.
    let mut host = HostSpec::default()
        .test_plugin("hostile")
        .listen("0.0.0.0:0")
        .arg("--admin-listen")
        .arg("127.0.0.1:0")
        .start();
    let client = client();
    assert_ne!(host.admin_url(""), host.url(""));

    assert_eq!(status(client.post(host.url("/hooks/hostile/ok"))), 200);
    assert_eq!(status(client.get(host.url("/healthz"))), 200);
    for path in [
        "/",
        "/api/events",
        "/api/plugins",
        "/api/stream",
        "/metrics",
        "/login",
        "/assets/dashboard.js",
        "/no-such-page",
    ] {
        assert_eq!(status(client.get(host.url(path))), 404, "{path} on listen");
    }
    let retry = client.post(host.url("/api/deliveries/1/retry"));
    assert_eq!(status(retry), 404);
    let login = client.post(host.url("/login")).form(&[("token", "x")]);
    assert_eq!(status(login), 404);

    let dashboard = client.get(host.admin_url("/")).send().unwrap();
    assert_eq!(dashboard.status(), 200);
    assert!(dashboard.text().unwrap().contains(r#"id="events""#));
    for path in [
        "/api/events",
        "/metrics",
        "/healthz",
        "/assets/dashboard.js",
    ] {
        assert_eq!(
            status(client.get(host.admin_url(path))),
            200,
            "{path} on admin_listen"
        );
    }
    let plugins: Value = client
        .get(host.admin_url("/api/plugins"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(plugins["plugins"][0]["id"], "hostile", "{plugins}");
    // No plugin's answer is ever served from the admin's origin.
    let hook_on_admin = client.post(host.admin_url("/hooks/hostile/html-cookie"));
    assert_eq!(status(hook_on_admin), 404);
    // The open admin's name check is for the admin listener's port.
    let main_port = port_of(&host.base_url);
    let wrong_port = client
        .get(host.admin_url("/api/events"))
        .header(HOST, format!("127.0.0.1:{main_port}"));
    assert_eq!(status(wrong_port), 421);

    // One signal drains both listeners, an open event stream on the admin one too.
    let stream = client.get(host.admin_url("/api/stream")).send().unwrap();
    assert_eq!(stream.status(), 200);
    host.signal("TERM");
    let exit = host.wait_for_exit(Duration::from_secs(60));
    assert!(exit.success(), "{exit:?}\n{}", host.log());
    assert!(!host.log().contains("abandoned"), "{}", host.log());
    drop(stream);

    // The config key does what the flag does.
    let by_config = HostSpec::default()
        .config("admin_listen = \"127.0.0.1:0\"\n")
        .start();
    assert_eq!(status(client.get(by_config.admin_url("/api/events"))), 200);
    assert_eq!(status(client.get(by_config.url("/api/events"))), 404);
}

#[test]
fn a_public_admin_listener_without_a_token_is_refused() {
    let (exit, stderr) =
        common::serve_expecting_exit(&["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"]);
    assert!(!exit.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without an admin token"),
        "{stderr}"
    );
    assert!(stderr.contains("admin_listen"), "{stderr}");
}
