//! The admin token: what it guards (`/api/*`, the dashboard, anything unknown),
//! what stays open (`/hooks/*`, `/healthz`, `/metrics`), the dashboard's session
//! cookie, and the refusal to serve an open admin API on a public address.

mod common;

use common::{post_login, HostSpec};
use reqwest::blocking::Response;
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::Value;

const TOKEN: &str = "a-long-random-admin-token-for-tests";

// Does not follow redirects, so that the login's 303 and cookie can be seen.
use common::client_without_redirects as client;

fn assert_unauthorized(response: Response, code: &str, what: &str) {
    assert_eq!(response.status(), 401, "{what}");
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(body["message"].is_string(), "{what}: {body}");
}

fn guarded_host() -> common::Host {
    HostSpec::default()
        .test_plugin("faulty")
        .admin_token(TOKEN)
        .start()
}

#[test]
fn every_admin_route_needs_the_token_and_providers_and_probes_do_not() {
    let host = guarded_host();
    let client = client();
    let admin_routes = [
        ("GET", "/api/plugins"),
        ("GET", "/api/events"),
        ("GET", "/api/events/1"),
        ("POST", "/api/events/1/replay"),
        ("GET", "/api/deliveries?state=dead"),
        ("POST", "/api/deliveries/1/retry"),
        ("GET", "/api/stream"),
        ("GET", "/api/no-such-route"),
        ("GET", "/no-such-page"),
    ];
    for (method, path) in admin_routes {
        let request = |token: Option<&str>| {
            let request = client.request(method.parse().unwrap(), host.url(path));
            match token {
                Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
                None => request,
            }
            .send()
            .unwrap()
        };
        assert_unauthorized(request(None), "unauthorized", &format!("{method} {path}"));
        assert_unauthorized(
            request(Some("not-the-token")),
            "invalid_token",
            &format!("{method} {path} with a wrong token"),
        );
        assert_unauthorized(
            request(Some(&TOKEN[..TOKEN.len() - 1])),
            "invalid_token",
            &format!("{method} {path} with a prefix of the token"),
        );
    }

    let with_token = |path: &str| {
        client
            .get(host.url(path))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
    };
    let plugins: Value = with_token("/api/plugins").json().unwrap();
    assert_eq!(plugins["plugins"][0]["id"], "faulty", "{plugins}");
    assert_eq!(with_token("/api/events").status(), 200);
    assert_eq!(with_token("/api/deliveries").status(), 200);
    assert_eq!(with_token("/api/events/999999").status(), 404, "past auth");
    let scheme_in_lower_case = client
        .get(host.url("/api/events"))
        .header(AUTHORIZATION, format!("bearer {TOKEN}"))
        .send()
        .unwrap();
    assert_eq!(scheme_in_lower_case.status(), 200);
    let basic = client
        .get(host.url("/api/events"))
        .basic_auth("admin", Some(TOKEN))
        .send()
        .unwrap();
    assert_eq!(basic.status(), 401);

    let webhook = client
        .post(host.url("/hooks/faulty/ok"))
        .header("x-id", "open-1")
        .send()
        .unwrap();
    assert_eq!(webhook.status(), 200, "providers need no admin token");
    assert_eq!(
        client.get(host.url("/healthz")).send().unwrap().status(),
        200
    );
    assert_ne!(
        client.get(host.url("/metrics")).send().unwrap().status(),
        401,
        "scrapers need no admin token"
    );
    let events: Value = with_token("/api/events").json().unwrap();
    assert_eq!(events["events"][0]["event_id"], "open-1", "{events}");
}

#[test]
fn the_dashboard_logs_in_with_the_token_into_a_session_cookie() {
    let host = guarded_host();
    let client = client();

    let page = client.get(host.url("/")).send().unwrap();
    assert_eq!(page.status(), 401);
    assert!(page.headers().contains_key(WWW_AUTHENTICATE));
    let html = page.text().unwrap();
    assert!(
        html.contains(r#"action="/login""#),
        "the login form: {html}"
    );
    let dashboard = client.get(host.url("/")).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(dashboard.status(), 200);
    assert!(dashboard.text().unwrap().contains(r#"id="events""#));

    let wrong = post_login(&host, &client, "guess");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().unwrap().contains("not the admin token"));

    let login = post_login(&host, &client, TOKEN);
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()[LOCATION], "/");
    let set_cookie = login.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie does not hold the token"
    );
    let session = set_cookie.split(';').next().unwrap().to_string();
    assert!(session.starts_with("hookhost_session="), "{session}");

    let with_cookie = |path: &str| {
        client
            .get(host.url(path))
            .header(COOKIE, &session)
            .send()
            .unwrap()
    };
    assert_eq!(with_cookie("/").status(), 200);
    assert_eq!(with_cookie("/api/plugins").status(), 200);
    let forged = session.replace("hookhost_session=v1.", "hookhost_session=v1.9");
    let forged = client
        .get(host.url("/api/plugins"))
        .header(COOKIE, forged)
        .send()
        .unwrap();
    assert_eq!(forged.status(), 401);

    // A session may change things only from the dashboard's own pages.
    let retry = |site: &str| {
        client
            .post(host.url("/api/deliveries/999999/retry"))
            .header(COOKIE, &session)
            .header("sec-fetch-site", site)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(retry("same-origin"), 404, "past auth");
    assert_eq!(retry("cross-site"), 403);
    assert_eq!(retry("same-site"), 403);

    let logout = client.post(host.url("/logout")).send().unwrap();
    assert_eq!(logout.status(), 303);
    let cleared = logout.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // A restart draws a new session key: every session ends.
    let mut host = host;
    host.kill_and_restart();
    let after_restart = client
        .get(host.url("/api/plugins"))
        .header(COOKIE, &session)
        .send()
        .unwrap();
    assert_eq!(after_restart.status(), 401);
}

#[test]
fn a_public_address_without_a_token_is_refused_with_the_way_out() {
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let (status, stderr) = common::serve_expecting_exit(&["--listen", listen]);
        assert!(!status.success(), "{listen}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "refusing to listen on {listen} without an admin token"
            )),
            "{stderr}"
        );
        assert!(stderr.contains("HOOKHOST_ADMIN_TOKEN"), "{stderr}");
        assert!(stderr.contains("--allow-unauthenticated-admin"), "{stderr}");
    }
}

#[test]
fn a_public_address_serves_with_a_token_from_the_environment_or_when_told_to() {
    let with_env_token = HostSpec::default()
        .listen("0.0.0.0:0")
        .env("HOOKHOST_ADMIN_TOKEN", TOKEN)
        .start();
    let client = client();
    let status = |host: &common::Host, token: Option<&str>| {
        let request = client.get(host.url("/api/plugins"));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
        .unwrap()
        .status()
    };
    assert_eq!(status(&with_env_token, None), 401);
    assert_eq!(status(&with_env_token, Some(TOKEN)), 200);

    let by_flag = HostSpec::default()
        .listen("0.0.0.0:0")
        .arg("--allow-unauthenticated-admin")
        .start();
    assert_eq!(status(&by_flag, None), 200);
    assert!(
        by_flag.log().contains("open to everyone"),
        "{}",
        by_flag.log()
    );

    let by_config = HostSpec::default()
        .listen("0.0.0.0:0")
        .config("allow_unauthenticated_admin = true\n")
        .start();
    assert_eq!(status(&by_config, None), 200);

    // On loopback the admin API stays open without a token, with one warning.
    let loopback = HostSpec::default().start();
    assert_eq!(status(&loopback, None), 200);
    assert_eq!(
        loopback.log().matches("no admin_token is set").count(),
        1,
        "{}",
        loopback.log()
    );
}
