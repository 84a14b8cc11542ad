//! When the event store cannot persist, nothing is acknowledged: the provider gets
//! 503 with `Retry-After` (so it retries), not the plugin's 2xx. Drives the real
//! router over loopback with a store that fails every write.

mod common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use common::test_plugin;
use hookhost::config::Config;
use hookhost::plugin::{content_sha256, LoadedPlugin};
use hookhost::registry::Registry;
use hookhost::reload::Reloader;
use hookhost::runtime::Runtime;
use hookhost::scheduler::Scheduler;
use hookhost::server::{self, AppState};
use hookhost::store::{
    AfterFailure, ClaimedDelivery, DeliveryFilter, DeliveryRow, EventFilter, EventStore,
    IngestRecord, Persisted, PollLease, PollRecord, RawRequest, SavedCursor, StateChange,
    StateRefused, StoredEventRow, UnixMs,
};
use tokio::sync::Notify;

/// Fails every call, as a full disk or a broken file would.
struct FailingStore;

#[async_trait::async_trait]
impl EventStore for FailingStore {
    async fn persist_ingest(&self, _: IngestRecord) -> Result<Vec<Persisted>> {
        bail!("disk full")
    }
    async fn list_events(&self, _: EventFilter) -> Result<Vec<StoredEventRow>> {
        bail!("disk full")
    }
    async fn get_event(&self, _: i64) -> Result<Option<(StoredEventRow, Option<RawRequest>)>> {
        bail!("disk full")
    }
    async fn list_deliveries(&self, _: DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        bail!("disk full")
    }
    async fn claim_due(&self, _: UnixMs, _: Duration, _: u32) -> Result<Vec<ClaimedDelivery>> {
        bail!("disk full")
    }
    async fn next_due(&self) -> Result<Option<UnixMs>> {
        bail!("disk full")
    }
    async fn complete(&self, _: i64, _: UnixMs) -> Result<()> {
        bail!("disk full")
    }
    async fn fail(&self, _: i64, _: String, _: AfterFailure, _: UnixMs) -> Result<()> {
        bail!("disk full")
    }
    async fn retry(&self, _: i64, _: UnixMs) -> Result<Option<DeliveryRow>> {
        bail!("disk full")
    }
    async fn purge_older_than(&self, _: UnixMs) -> Result<u64> {
        bail!("disk full")
    }
    async fn persist_poll(&self, _: PollRecord) -> Result<Vec<Persisted>> {
        bail!("disk full")
    }
    async fn poll_cursor(&self, _: &str) -> Result<Option<SavedCursor>> {
        bail!("disk full")
    }
    async fn state_get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>> {
        bail!("disk full")
    }
    async fn state_len(&self, _: &str) -> Result<u64> {
        bail!("disk full")
    }
    async fn state_apply(
        &self,
        _: &str,
        _: Vec<StateChange>,
        _: UnixMs,
    ) -> Result<Result<(), StateRefused>> {
        bail!("disk full")
    }
    async fn keep_poll_leases(
        &self,
        _: &str,
        _: &[String],
        _: UnixMs,
        _: Duration,
    ) -> Result<Vec<PollLease>> {
        bail!("disk full")
    }
    async fn release_poll_leases(&self, _: &str) -> Result<()> {
        bail!("disk full")
    }
    async fn health(&self) -> Result<()> {
        bail!("disk full")
    }
}

#[tokio::test]
async fn a_webhook_that_cannot_be_stored_gets_503_with_retry_after() {
    let config = Config::load(None, Default::default(), |_| None).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let registry = Arc::new(Registry::default());
    let bytes = std::fs::read(test_plugin("faulty")).unwrap();
    let sha256 = content_sha256(&bytes);
    let plugin = LoadedPlugin::load(&runtime, "faulty", bytes, sha256, &Default::default())
        .await
        .expect("faulty loads");
    registry.install(plugin);
    let store: Arc<dyn EventStore> = Arc::new(FailingStore);
    let wake_dispatcher = Arc::new(Notify::new());
    let (scheduler, _no_timers) = Scheduler::new(
        &config,
        registry.clone(),
        store.clone(),
        wake_dispatcher.clone(),
    );
    let reloader = Reloader::new(
        runtime.clone(),
        registry.clone(),
        Arc::new(config.clone()),
        Default::default(),
    );
    let state = AppState {
        registry,
        max_body_bytes: config.max_body_bytes,
        store,
        wake_dispatcher,
        scheduler,
        metrics: runtime.metrics.clone(),
        admin: Arc::new(hookhost::admin_auth::AdminAuth::open()),
        live: Default::default(),
        reloader,
        components: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, server::app(state)).await });

    let response = reqwest::Client::new()
        .post(format!("http://{address}/hooks/faulty/ok"))
        .header("x-id", "lost")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "storage", "{body}");
}
