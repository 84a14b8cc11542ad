//! When the event store cannot persist, nothing is acknowledged: the provider gets
//! 503 with `Retry-After` (so it retries), not the plugin's 2xx; `/healthz` says
//! the database is down, and the admin API answers 503 rather than 500. Drives the
//! real router over loopback with a store that fails every call.

mod common;

use std::sync::Arc;

use anyhow::{anyhow, Result};
use common::test_plugin;
use hookhost::config::Config;
use hookhost::store::backend::Stores;
use hookhost::store::sql::impls::SqlBackend;
use hookhost::store::sql::reads::{Found, Read};
use hookhost::store::sql::writes::{Write, Written};
use hookhost::store::{EventStore, Unavailable};
use hookhost::Host;

/// A SQL database that cannot be reached: every read and write fails, and the
/// store traits (`sql::impls`) carry that failure up as the real backends do.
struct FailingStore;

/// What every read and write of `FailingStore` answers.
fn down<T>() -> Result<T> {
    Err(anyhow!("connection refused").context(Unavailable))
}

impl SqlBackend for FailingStore {
    async fn write(&self, _: Write) -> Result<Written> {
        down()
    }

    async fn read(&self, _: Read) -> Result<Found> {
        down()
    }
}

#[async_trait::async_trait]
impl EventStore for FailingStore {
    async fn health(&self) -> Result<()> {
        down()
    }
}

#[tokio::test]
async fn a_webhook_that_cannot_be_stored_gets_503_with_retry_after_and_healthz_says_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(None, Default::default(), |_| None).unwrap();
    config.data_dir = dir.path().join("data");
    config.plugins_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&config.plugins_dir).unwrap();
    std::fs::copy(
        test_plugin("faulty"),
        config.plugins_dir.join("faulty.wasm"),
    )
    .unwrap();
    let stores = Stores {
        events: Arc::new(FailingStore),
        components: None,
    };
    let host = Host::with_stores(&config, stores).await.unwrap();
    host.check_loaded("faulty").expect("faulty loads");
    let node = host.node().to_string();
    let app = host.app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let response = reqwest::Client::new()
        .post(format!("http://{address}/hooks/faulty/ok"))
        .header("x-id", "lost")
        .send()
        .await
        .unwrap();
    assert_storage_unavailable(response).await;

    let health = reqwest::get(format!("http://{address}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["database"], "down", "{body}");
    assert_eq!(body["node"], node, "{body}");
    // The reason is for the log: /healthz is open, and the store's messages name
    // the database and whatever its driver says.
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    assert!(!body.to_string().contains("connection refused"), "{body}");

    // The admin API: the database being unavailable is not an internal error.
    let events = reqwest::get(format!("http://{address}/api/events"))
        .await
        .unwrap();
    assert_storage_unavailable(events).await;
}

/// The answer to a request the store could not serve: 503, try again in 5 s,
/// error `storage`.
async fn assert_storage_unavailable(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "storage", "{body}");
}
