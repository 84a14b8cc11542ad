//! Fuzzes the webhook path: arbitrary method, path, query, headers and body through
//! hookhost's real router into a real loaded plugin (`faulty`, from
//! target/test-plugins) with a real event store in a temporary directory.
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
use hookhost::config::{Config, Overrides};
use hookhost::Host;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a [u8],
    target: Target<'a>,
    headers: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
}

/// Most inputs should reach the plugin, so the path is usually under its mount.
#[derive(Arbitrary, Debug)]
enum Target<'a> {
    /// `/hooks/faulty` followed by this.
    Plugin(&'a str),
    /// Any path and query at all.
    Anywhere(&'a str),
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    dir: tempfile::TempDir,
    _host: Host,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let plugin = std::env::var_os("HOOKHOST_FUZZ_PLUGIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-plugins/faulty.wasm")
            });
        assert!(
            plugin.is_file(),
            "{} is missing: run scripts/build-plugins first",
            plugin.display()
        );
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let plugins_dir = dir.path().join("plugins");
        std::fs::create_dir(&plugins_dir).unwrap();
        std::fs::copy(&plugin, plugins_dir.join("faulty.wasm")).unwrap();
        // A short deadline, in case the fuzzer finds faulty's endless loop.
        let config_file = dir.path().join("hookhost.toml");
        std::fs::write(&config_file, "[plugins.faulty]\ntimeout = \"250ms\"\n").unwrap();
        let config = Config::load(
            Some(&config_file),
            Overrides {
                listen: None,
                admin_listen: None,
                plugins_dir: Some(plugins_dir),
                data_dir: Some(dir.path().join("data")),
                allow_unauthenticated_admin: false,
                database: None,
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
        let probe = Request::post("/hooks/faulty/ok")
            .body(Body::empty())
            .unwrap();
        let status = runtime
            .block_on(app.clone().oneshot(probe))
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "faulty did not load");
        Harness {
            runtime,
            app,
            dir,
            _host: host,
        }
    })
}

fuzz_target!(|input: Input| {
    let harness = harness();
    let target = match input.target {
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
