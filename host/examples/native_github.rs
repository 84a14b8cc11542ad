//! The baseline for the webhook benchmark: what the Rust `github` plugin does
//! (HMAC-SHA256 check of `X-Hub-Signature-256` in constant time, parse the JSON
//! for the two fields that name the event, derive kind and subject, keep the body
//! as the payload, answer `{"ok":true,...}`), written as a plain axum handler in
//! the host's process, with no WebAssembly in the way.
//!
//!     cargo run --release --example native_github -- [--listen 127.0.0.1:0]
//!         [--secret bench-secret] [--data DIR]
//!
//! With `--data`, every delivery is persisted into hookhost's own event store in that
//! directory (request + event, group commit, fsync) before the 200, as the host does;
//! without it nothing is stored. Prints `listening on http://ADDR` when ready.

#[path = "../../plugins/github/src/delivery.rs"]
mod delivery;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use delivery::Delivery;
use hmac::{Hmac, Mac};
use hookhost::store::sqlite::{Commit, SqliteStore};
use hookhost::store::{now_ms, EventStore, IngestRecord, NewEvent, RawRequest};
use sha2::Sha256;

// The same allocator as the hookhost binary (host/src/main.rs), so that the
// comparison measures the sandbox and not glibc's malloc against mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Native {
    secret: Vec<u8>,
    store: Option<Arc<dyn EventStore>>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_string();
    let mut secret = "bench-secret".to_string();
    let mut data = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--secret" => secret = value("--secret")?,
            "--data" => data = Some(std::path::PathBuf::from(value("--data")?)),
            other => bail!("unexpected argument {other:?}; see the module docs for usage"),
        }
    }
    let store = match data {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(
                &dir.join(hookhost::STORE_FILE),
                Commit::Grouped,
            )?);
            Some(store)
        }
        None => None,
    };
    let state = Arc::new(Native {
        secret: secret.into_bytes(),
        store,
    });
    let app = Router::new()
        .route("/hooks/github", post(github))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

fn reject(status: StatusCode, message: &str) -> Response {
    (status, message.to_string()).into_response()
}

async fn github(State(native): State<Arc<Native>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(claimed) = header("x-hub-signature-256")
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(|hex| hex::decode(hex).ok())
    else {
        return reject(StatusCode::UNAUTHORIZED, "missing or malformed signature");
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&native.secret).expect("any key length");
    mac.update(&body);
    if mac.verify_slice(&claimed).is_err() {
        return reject(StatusCode::UNAUTHORIZED, "signature does not match");
    }
    let Some(event) = header("x-github-event") else {
        return reject(StatusCode::BAD_REQUEST, "missing X-GitHub-Event");
    };
    let Some(delivery) = header("x-github-delivery").filter(|d| !d.is_empty()) else {
        return reject(StatusCode::BAD_REQUEST, "missing X-GitHub-Delivery");
    };
    let Ok(fields) = serde_json::from_slice::<Delivery>(&body) else {
        return reject(StatusCode::BAD_REQUEST, "body is not a GitHub delivery");
    };
    let kind = fields.kind(event);
    let subject = fields.subject();
    let Ok(payload) = std::str::from_utf8(&body) else {
        return reject(StatusCode::BAD_REQUEST, "body is not UTF-8");
    };
    let reply = serde_json::json!({ "ok": true, "event": { "id": delivery, "kind": kind } });
    if let Some(store) = &native.store {
        let record = IngestRecord {
            plugin: "github".into(),
            received_at: now_ms(),
            request: Some(RawRequest {
                method: "POST".into(),
                path: "/".into(),
                query: String::new(),
                headers: headers
                    .iter()
                    .map(|(n, v)| {
                        let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                        (n.as_str().to_string(), value)
                    })
                    .collect(),
                body: body.to_vec(),
            }),
            events: vec![NewEvent {
                event_id: delivery.to_string(),
                kind,
                subject,
                payload: payload.to_string(),
                subscribers: Vec::new(),
            }],
        };
        if let Err(error) = store.persist_ingest(record).await {
            eprintln!("storing: {error:#}");
            return reject(StatusCode::SERVICE_UNAVAILABLE, "could not store");
        }
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        reply.to_string(),
    )
        .into_response()
}
