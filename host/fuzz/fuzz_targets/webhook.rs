//! Fuzzes the webhook path: arbitrary method, path, query, headers and body through
//! hookhost's real router into real loaded plugins with a real event store in a
//! temporary directory.
//!
//! Coverage guides libFuzzer through the host only: a plugin runs as compiled
//! WebAssembly, whose comparisons the fuzzer cannot see, so it would hardly ever
//! guess a path the plugin acts on or a valid signature. The input therefore picks
//! what reaches the plugin structurally:
//! - one of `faulty`'s behaviours (target/test-plugins/faulty.wasm), so that the
//!   host's handling of whatever a plugin returns (events with arbitrary ids, kinds
//!   and payloads, traps, errors, bad statuses) is what gets fuzzed;
//! - a GitHub delivery signed here with the configured secret, so that `github`
//!   (plugins/github.wasm) gets past its signature check to parse the body and
//!   emit an event the host validates and stores;
//! - or any path at all, under `/hooks/faulty` or anywhere.
//!
//! Besides "does not panic", server errors must keep internals out of their body:
//! a 500 is the generic JSON error, and no 5xx names the plugin's trap, wasm or
//! the host's files. (The first run's only finding was this oracle being too
//! strict: a 404 echoing a requested path that contained "wasm".)

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use hmac::{Hmac, Mac};
use hookhost::config::{Config, Overrides};
use hookhost::Host;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use tower::ServiceExt;

/// `[plugins.github] config.secret` in the fuzz config.
const GITHUB_SECRET: &str = "fuzz-secret";

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a [u8],
    target: Target<'a>,
    headers: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
}

#[derive(Arbitrary, Debug)]
enum Target<'a> {
    /// `/hooks/faulty/<behaviour>`, then `query` as the query string.
    Faulty {
        behaviour: Behaviour<'a>,
        query: &'a str,
    },
    /// `/hooks/github` with the GitHub headers and a valid signature of the body.
    SignedGithub { event: &'a str, delivery: &'a str },
    /// `/hooks/faulty` followed by this.
    Plugin(&'a str),
    /// Any path and query at all.
    Anywhere(&'a str),
}

/// What `faulty` does, by the path it is sent to (see tests/plugins/faulty).
/// `/spin` is left out: it only waits for the call deadline, slowing every run.
#[derive(Arbitrary, Debug)]
enum Behaviour<'a> {
    /// One `faulty.ok` event with this id.
    Ok {
        id: &'a str,
    },
    /// One event with this id and kind, the body as its payload.
    Event {
        id: &'a str,
        kind: &'a str,
    },
    Trap,
    Error(ErrorCase),
    /// Sleeps this many milliseconds, then as `Ok`.
    Sleep(u8),
    BadPayload,
    BadStatus,
    Print,
}

#[derive(Arbitrary, Debug)]
enum ErrorCase {
    Unauthorized,
    BadRequest,
    Unavailable,
    Internal,
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    dir: tempfile::TempDir,
    _host: Host,
}

/// A built plugin: `$env_var` when set, else `default` under the repository root.
fn plugin_file(env_var: &str, default: &str) -> PathBuf {
    let file = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(default)
        });
    assert!(
        file.is_file(),
        "{} is missing: run scripts/build-plugins first",
        file.display()
    );
    file
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let plugins_dir = dir.path().join("plugins");
        std::fs::create_dir(&plugins_dir).unwrap();
        for (id, file) in [
            (
                "faulty",
                plugin_file("HOOKHOST_FUZZ_PLUGIN", "target/test-plugins/faulty.wasm"),
            ),
            (
                "github",
                plugin_file("HOOKHOST_FUZZ_GITHUB_PLUGIN", "plugins/github.wasm"),
            ),
        ] {
            std::fs::copy(&file, plugins_dir.join(format!("{id}.wasm"))).unwrap();
        }
        // A short deadline, in case the fuzzer finds faulty's endless loop.
        let config_file = dir.path().join("hookhost.toml");
        std::fs::write(
            &config_file,
            format!(
                "[plugins.faulty]\ntimeout = \"250ms\"\n\
                 [plugins.github]\nconfig = {{ secret = \"{GITHUB_SECRET}\" }}\n"
            ),
        )
        .unwrap();
        let config = Config::load(
            Some(&config_file),
            // Only what the fuzz run needs, so that new fields keep their defaults.
            Overrides {
                plugins_dir: Some(plugins_dir),
                data_dir: Some(dir.path().join("data")),
                ..Overrides::default()
            },
            |name| std::env::var(name).ok(),
        )
        .expect("loading the fuzz config");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let host = runtime
            .block_on(Host::start(&config))
            .expect("starting the host");
        let app = host.app();
        for (path, headers) in [
            ("/hooks/faulty/ok", vec![]),
            ("/hooks/github", github_headers("ping", "probe", b"{}")),
        ] {
            let mut probe = Request::post(path).body(Body::from("{}")).unwrap();
            for (name, value) in headers {
                probe.headers_mut().insert(name, value);
            }
            let status = runtime
                .block_on(app.clone().oneshot(probe))
                .unwrap()
                .status();
            assert_eq!(
                status,
                StatusCode::OK,
                "{path} did not answer: is it loaded?"
            );
        }
        Harness {
            runtime,
            app,
            dir,
            _host: host,
        }
    })
}

/// The headers GitHub sends with a delivery, signed as it signs them. Values the
/// fuzzer made that are not valid header values are left out.
fn github_headers(event: &str, delivery: &str, body: &[u8]) -> Vec<(HeaderName, HeaderValue)> {
    let mut mac = Hmac::<Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    [
        ("x-github-event", event.to_string()),
        ("x-github-delivery", delivery.to_string()),
        ("x-hub-signature-256", signature),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        Some((
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).ok()?,
        ))
    })
    .collect()
}

fuzz_target!(|input: Input| {
    let harness = harness();
    // Set after the fuzzer's own headers, so that they are the ones a plugin reads.
    let mut extra_headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let mut header = |name: &'static str, value: &str| {
        // A value the fuzzer made that no client could send is left out.
        if let Ok(value) = HeaderValue::from_str(value) {
            extra_headers.push((HeaderName::from_static(name), value));
        }
    };
    let target = match input.target {
        Target::Faulty { behaviour, query } => {
            let path = match behaviour {
                Behaviour::Ok { id } => {
                    header("x-id", id);
                    "ok".to_string()
                }
                Behaviour::Event { id, kind } => {
                    header("x-id", id);
                    header("x-kind", kind);
                    "event".to_string()
                }
                Behaviour::Trap => "trap".to_string(),
                Behaviour::Error(case) => format!(
                    "error/{}",
                    match case {
                        ErrorCase::Unauthorized => "unauthorized",
                        ErrorCase::BadRequest => "bad-request",
                        ErrorCase::Unavailable => "unavailable",
                        ErrorCase::Internal => "internal",
                    }
                ),
                Behaviour::Sleep(ms) => format!("sleep/{ms}"),
                Behaviour::BadPayload => "bad-payload".to_string(),
                Behaviour::BadStatus => "bad-status".to_string(),
                Behaviour::Print => "print".to_string(),
            };
            format!("/hooks/faulty/{path}?{query}")
        }
        Target::SignedGithub { event, delivery } => {
            extra_headers.extend(github_headers(event, delivery, input.body));
            "/hooks/github".to_string()
        }
        Target::Plugin(rest) => format!("/hooks/faulty{rest}"),
        Target::Anywhere(path) => path.to_string(),
    };
    let method = Method::from_bytes(input.method).unwrap_or(Method::POST);
    let Ok(mut request) = Request::builder()
        .method(method)
        .uri(&target)
        .body(Body::from(input.body.to_vec()))
    else {
        return; // not a request hyper would ever hand to the router
    };
    for (name, value) in input.headers {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            request.headers_mut().append(name, value);
        }
    }
    for (name, value) in extra_headers {
        request.headers_mut().insert(name, value);
    }

    let (status, body) = harness.runtime.block_on(async {
        let response = harness.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    });

    let text = String::from_utf8_lossy(&body);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        let reply: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or_else(|_| panic!("500 without JSON: {text}"));
        assert_eq!(reply["error"], "internal", "{text}");
    }
    // 4xx messages may echo the request's own path or the plugin's bad-request
    // text, so only server errors, whose bodies are wholly the host's, are checked.
    if !status.is_server_error() {
        return;
    }
    for secret in ["trapped", "wasm", "panicked", "asked to trap"] {
        assert!(!text.contains(secret), "{status} leaks {secret:?}: {text}");
    }
    let dir = harness.dir.path().to_string_lossy();
    assert!(
        !text.contains(dir.as_ref()),
        "{status} leaks a host path: {text}"
    );
});
