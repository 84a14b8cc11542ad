//! The dashboard end to end in a real browser: Debian's headless Chromium driven
//! through its chromedriver (both installed by `scripts/toolchains/chromium`, which
//! `scripts/test` runs). A missing browser fails the test: CI must not pass by
//! skipping it.
//!
//! One story, as an operator would live it: log in with the admin token, see what
//! each plugin emits and whose events a handler takes, see a signed webhook sent
//! meanwhile appear without reloading, open its payload (which carries markup that
//! must stay text), watch a handler's delivery dead-letter while the handler is
//! missing, redeploy the handler, click Retry and see the delivery go through.

mod common;

use std::net::TcpStream;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{github_signature, HostSpec};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TOKEN: &str = "dashboard-test-admin-token-0123456789";
const GITHUB_SECRET: &str = "dashboard-github-secret";
/// How long any one thing may take to show before the test gives up: generous, as
/// the machine is shared; this bounds a hang, it measures nothing.
const PATIENCE: Duration = Duration::from_secs(90);

/// A chromedriver on a free loopback port, killed on drop.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).is_file(),
                "{path} is missing: run scripts/toolchains/chromium (scripts/test does) to \
                 install Debian's chromium and chromium-driver"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A headless Chromium session. As root (CI), Chromium runs only without its
    /// sandbox; the network flags keep it from reaching for the internet, which
    /// is closed here.
    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,1200",
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("starting headless Chromium through chromedriver")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the test needs at hand: the browser, the host and an HTTP client.
struct Scene<'a> {
    browser: &'a Client,
    host: &'a common::Host,
    http: reqwest::Client,
}

impl Scene<'_> {
    /// Runs `script` (with `args` as `arguments`) in the page until it returns
    /// something other than null or false, and returns that.
    async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            // A page that is navigating has no document to ask; that is a "not yet".
            if let Ok(value) = self.browser.execute(script, args.clone()).await {
                if !value.is_null() && value != Value::Bool(false) {
                    return value;
                }
            }
            if Instant::now() > deadline {
                let page = self
                    .browser
                    .execute(
                        "return document.body ? document.body.innerText : ''",
                        vec![],
                    )
                    .await
                    .unwrap_or_default();
                panic!(
                    "gave up waiting for {what}\n--- page ---\n{}\n--- host log ---\n{}",
                    page.as_str().unwrap_or_default(),
                    self.host.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        self.browser
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("finding {css}: {error}"))
            .click()
            .await
            .unwrap_or_else(|error| panic!("clicking {css}: {error}"));
    }

    async fn log_in(&self, token: &str) {
        self.until(
            "the login form",
            "return !!document.querySelector('input#token')",
            vec![],
        )
        .await;
        self.browser
            .find(Locator::Css("input#token"))
            .await
            .unwrap()
            .send_keys(token)
            .await
            .unwrap();
        self.click("button#login").await;
    }

    async fn api(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.host.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// The state of delivery `id` as the dashboard shows it.
    async fn delivery_state(&self, id: &str, wanted: &[&str]) -> String {
        let state = self
            .until(
                &format!("delivery {id} to show as one of {wanted:?}"),
                "const row = document.querySelector(`#deliveries tr[data-id=\"${arguments[0]}\"]`);
                 return row && arguments[1].includes(row.dataset.state) ? row.dataset.state : null;",
                vec![json!(id), json!(wanted)],
            )
            .await;
        state.as_str().unwrap().to_string()
    }

    async fn plugins_shown(&self, wanted: &str) {
        self.until(
            &format!("the plugins table to read {wanted}"),
            "const rows = [...document.querySelectorAll('#plugins tr')];
             const shown = rows.map(r => r.dataset.id + ':' + r.querySelector('.badge').textContent).join(' ');
             return shown === arguments[0];",
            vec![json!(wanted)],
        )
        .await;
    }

    async fn still_the_same_page(&self) {
        let same = self
            .browser
            .execute("return window.sameDocument === true", vec![])
            .await
            .unwrap();
        assert_eq!(same, json!(true), "the page was reloaded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_watches_a_webhook_arrive_and_retries_a_dead_letter() {
    let driver = ChromeDriver::start();
    let host = HostSpec::default()
        .example_plugin("github")
        .test_plugin("faulty")
        .test_plugin("handler")
        .config(&format!(
            "admin_token = \"{TOKEN}\"\n\
             [plugins.github]\nconfig = {{ secret = \"{GITHUB_SECRET}\" }}\n\
             [plugins.handler]\nconfig = {{ subscriptions = \"faulty.flaky.*\" }}\n\
             sources = [\"faulty\"]\nmax_attempts = 1\n"
        ))
        .start();
    let browser = driver.browser().await;
    let scene = Scene {
        browser: &browser,
        host: &host,
        http: reqwest::Client::new(),
    };
    let outcome = AssertUnwindSafe(story(&scene)).catch_unwind().await;
    if outcome.is_err() {
        // Kept for whoever looks into the failure.
        if let Ok(png) = browser.screenshot().await {
            let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-failure.png");
            let _ = std::fs::write(&shot, png);
            eprintln!("screenshot: {}", shot.display());
        }
    }
    let _ = browser.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn story(scene: &Scene<'_>) {
    let browser = scene.browser;
    let host = scene.host;

    // The page at / is the login form until the token is given.
    browser.goto(&host.url("/")).await.unwrap();
    scene.log_in("not-the-token").await;
    scene
        .until(
            "the wrong token to be refused",
            "const error = document.querySelector('.login-error');
             return error && error.textContent.includes('not the admin token');",
            vec![],
        )
        .await;
    scene.log_in(TOKEN).await;
    scene
        .until(
            "the dashboard after logging in",
            "return !!document.querySelector('#plugins') && !document.querySelector('#logout').hidden",
            vec![],
        )
        .await;
    scene
        .until(
            "the live stream",
            "return document.querySelector('#connection').dataset.state === 'live'",
            vec![],
        )
        .await;
    scene.plugins_shown("faulty:ok github:ok handler:ok").await;
    // Whose events go where: what each plugin may emit, what a handler subscribes
    // to and from which plugins it takes them.
    let roles = browser
        .execute(
            "const roles = {};
             for (const row of document.querySelectorAll('#plugins tr')) {
                 roles[row.dataset.id] = [...row.querySelectorAll('.emits, .subscribes, .sources')]
                     .map(line => line.textContent);
             }
             return roles;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        roles,
        json!({
            "faulty": ["emits faulty.*"],
            "github": ["emits github.*"],
            "handler": ["subscribes faulty.flaky.*", "from faulty"],
        })
    );
    browser
        .execute("window.sameDocument = true", vec![])
        .await
        .unwrap();

    // A signed webhook appears on its own, its attacker-chosen markup as text.
    let markup = "<img src=x onerror=window.injected=1>";
    let body = json!({
        "ref": "refs/heads/main",
        "repository": { "full_name": markup },
        "note": markup,
    })
    .to_string();
    let response = scene
        .http
        .post(host.url("/hooks/github"))
        .header("x-github-event", "push")
        .header("x-github-delivery", "dashboard-delivery-1")
        .header(
            "x-hub-signature-256",
            github_signature(GITHUB_SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let event = scene
        .until(
            "the webhook's event to appear",
            "const row = [...document.querySelectorAll('#events details')]
                 .find(d => d.querySelector('.event-id').textContent === arguments[0]);
             return row ? row.dataset.id : null;",
            vec![json!("dashboard-delivery-1")],
        )
        .await;
    let event = event.as_str().unwrap();
    scene
        .click(&format!("#events details[data-id=\"{event}\"] > summary"))
        .await;
    let payload = scene
        .until(
            "the payload to open",
            "const row = document.querySelector(`#events details[data-id=\"${arguments[0]}\"]`);
             return row.open ? row.querySelector('.payload').textContent : null;",
            vec![json!(event)],
        )
        .await;
    assert!(
        payload.as_str().unwrap().contains(markup),
        "the payload shows the markup as text: {payload}"
    );
    let injected = browser
        .execute(
            "return document.querySelectorAll('main img').length > 0 || window.injected === 1",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!(false), "markup from a payload became HTML");
    scene.still_the_same_page().await;

    // A delivery whose handler is down for a few seconds dies at its one attempt...
    let back_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_000;
    let response = scene
        .http
        .post(host.url("/hooks/faulty/event"))
        .header("x-id", "flaky-1")
        .header("x-kind", "faulty.flaky.retry")
        .body(format!(r#"{{"fail_until_ms":{back_at}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = scene.api("/api/events?plugin=faulty").await;
    let flaky = events["events"][0]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + PATIENCE;
    let delivery = loop {
        let event = scene.api(&format!("/api/events/{flaky}")).await;
        let delivery = event["deliveries"][0].clone();
        if delivery["state"] == "dead" {
            break delivery;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for the one attempt to fail: {event}\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(delivery["attempts"], 1, "{delivery}");
    let delivery_id = delivery["id"].as_str().unwrap().to_string();
    assert_eq!(scene.delivery_state(&delivery_id, &["dead"]).await, "dead");
    let error = browser
        .execute(
            "return document.querySelector(`#deliveries tr[data-id=\"${arguments[0]}\"] td.error`).textContent",
            vec![json!(delivery_id)],
        )
        .await
        .unwrap();
    assert!(
        error
            .as_str()
            .unwrap()
            .contains("unavailable: down for another"),
        "{error}"
    );
    scene
        .until(
            "the dead-letter count",
            "return document.querySelector('#dead-count').textContent === '1 dead'",
            vec![],
        )
        .await;

    // ... and goes through once the handler is back up and Retry is clicked.
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    while now_ms() <= back_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scene
        .click(&format!(
            "#deliveries tr[data-id=\"{delivery_id}\"] button.retry"
        ))
        .await;
    let after_click = scene
        .delivery_state(&delivery_id, &["pending", "delivered"])
        .await;
    assert_ne!(after_click, "dead");
    assert_eq!(
        scene.delivery_state(&delivery_id, &["delivered"]).await,
        "delivered"
    );
    assert!(host.log().contains("handled faulty/flaky-1 attempt 1"));
    scene.still_the_same_page().await;

    if let Ok(png) = browser.screenshot().await {
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
        let _ = std::fs::write(&shot, png);
        eprintln!("screenshot: {}", shot.display());
    }

    // Logging out ends the session.
    scene.click("#logout button").await;
    scene
        .until(
            "the login form after logging out",
            "return !!document.querySelector('input#token')",
            vec![],
        )
        .await;
}

#[test]
fn an_open_live_stream_does_not_hold_up_shutdown() {
    let host = HostSpec::default().start();
    let mut stream = host.get("/api/stream");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        // Returns at the end of the stream, or fails at the client's timeout.
        let read = std::io::Read::read_to_string(&mut stream, &mut text);
        (read.is_ok(), text)
    });
    let terminated = Command::new("kill")
        .args(["-TERM", &host.pid().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    common::eventually("the host to stop", PATIENCE, || {
        host.log().contains("hookhost stopped")
    });
    let (ended_cleanly, text) = reader.join().unwrap();
    assert!(ended_cleanly, "the stream ended: {text}");
    assert!(text.starts_with("event: ready"), "{text}");
}
