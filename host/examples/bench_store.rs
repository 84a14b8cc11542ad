//! Measures what durability costs, on the machine it runs on:
//!
//! 1. persisted events/s into the SQLite event store with group commit and with one
//!    commit (one fsync) per write, from many concurrent writers;
//! 2. webhook requests/s through the real router and the `faulty` test plugin, with
//!    the event store on and with a store that persists nothing.
//!
//! ```text
//! scripts/build-plugins   # the second part needs target/test-plugins/faulty.wasm
//! cargo run --release --example bench_store [-- EVENTS CONCURRENCY]
//! ```
//!
//! The data lives in a temporary directory on the same file system as `target/`, so
//! that fsync costs what it costs there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hookhost::config::Config;
use hookhost::plugins::registry;
use hookhost::store::backend::Stores;
use hookhost::store::sqlite::{Commit, SqliteStore};
use hookhost::store::{EventLog, EventStore, IngestRecord, NewEvent, RawRequest, UnixMs};
use hookhost::Host;

#[path = "support/null_store.rs"]
mod null_store;
use null_store::NullStore;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let scratch = tempfile::tempdir_in(&target).context("creating a scratch directory")?;

    println!("## event store: {events} events, {concurrency} concurrent writers");
    for commit in [Commit::Grouped, Commit::PerWrite] {
        let path = scratch.path().join(format!("{commit:?}.sqlite3"));
        let store = Arc::new(SqliteStore::open(&path, commit)?);
        let elapsed = persist_many(store, events, concurrency).await?;
        println!(
            "{:<28} {:>9.0} events/s  ({events} in {elapsed:.2?})",
            format!("{commit:?} commit:"),
            events as f64 / elapsed.as_secs_f64()
        );
    }

    let requests = events;
    println!(
        "## webhooks: {requests} requests to /hooks/faulty/ok, {concurrency} concurrent clients"
    );
    let plugin = registry::plugin_files(&target.join("test-plugins"))?
        .into_iter()
        .find(|(id, _)| id == "faulty")
        .context("target/test-plugins/faulty.wasm is missing: run scripts/build-plugins")?;
    for persistence in ["on", "off"] {
        let store: Arc<dyn EventStore> = if persistence == "on" {
            let path = scratch.path().join("webhooks.sqlite3");
            Arc::new(SqliteStore::open(&path, Commit::Grouped)?)
        } else {
            Arc::new(NullStore)
        };
        let elapsed = serve_and_send(&plugin.1, store, requests, concurrency).await?;
        println!(
            "{:<28} {:>9.0} requests/s  ({requests} in {elapsed:.2?})",
            format!("persistence {persistence}:"),
            requests as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}

async fn persist_many(
    store: Arc<SqliteStore>,
    events: usize,
    concurrency: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..concurrency {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in (writer..events).step_by(concurrency) {
                store.persist_ingest(record(n)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    Ok(started.elapsed())
}

/// A typical GitHub push: a couple of KiB of body, a dozen headers, one event.
fn record(n: usize) -> IngestRecord {
    let body = format!(
        r#"{{"ref":"refs/heads/main","n":{n},"repository":{{"full_name":"acme/widgets"}},"pad":"{}"}}"#,
        "x".repeat(2000)
    );
    IngestRecord {
        plugin: "github".into(),
        received_at: n as UnixMs,
        request: Some(RawRequest {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: (0..12)
                .map(|h| (format!("x-header-{h}"), "value".repeat(4)))
                .collect(),
            body: body.clone().into_bytes(),
        }),
        events: vec![NewEvent {
            event_id: format!("delivery-{n}"),
            kind: "github.push".into(),
            subject: Some("acme/widgets".into()),
            payload: body,
            subscribers: vec![],
        }],
    }
}

async fn serve_and_send(
    plugin_file: &std::path::Path,
    store: Arc<dyn EventStore>,
    requests: usize,
    concurrency: usize,
) -> Result<Duration> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::load(None, Default::default(), |_| None)?;
    config.data_dir = dir.path().join("data");
    config.plugins_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&config.plugins_dir)?;
    std::fs::copy(plugin_file, config.plugins_dir.join("faulty.wasm"))
        .context("copying faulty.wasm")?;
    let stores = Stores {
        events: store,
        components: None,
    };
    let host = Host::with_stores(&config, stores).await?;
    let app = host.app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks/faulty/ok", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut senders = Vec::new();
    for sender in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        senders.push(tokio::spawn(async move {
            for n in (sender..requests).step_by(concurrency) {
                let response = client
                    .post(&url)
                    .header("x-id", format!("id-{n}"))
                    .body("{}")
                    .send()
                    .await?;
                anyhow::ensure!(response.status() == 200, "status {}", response.status());
            }
            anyhow::Ok(())
        }));
    }
    for sender in senders {
        sender.await??;
    }
    let elapsed = started.elapsed();
    server.abort();
    Ok(elapsed)
}
