//! The "persistence off" side of the webhook benchmark for a plugin: hookhost's real
//! router and webhook path with one plugin loaded, over a store that keeps nothing.
//! hookhost itself has no such switch (a 2xx means stored); this example exists only
//! to separate what the sandbox costs from what durability costs.
//!
//!     cargo run --release --example plugin_without_store -- PLUGIN.wasm ID
//!         [--listen 127.0.0.1:0] [--config key=value ...]
//!
//! Serves `/hooks/ID` and prints `listening on http://ADDR` when ready.

#[path = "support/null_store.rs"]
mod null_store;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use hookhost::config::{Config, PluginConfig};
use hookhost::deploy::reload::Reloader;
use hookhost::node::NodeId;
use hookhost::plugins::loaded::{content_sha256, LoadedPlugin};
use hookhost::plugins::registry::Registry;
use hookhost::plugins::runtime::Runtime;
use hookhost::schedule::Scheduler;
use hookhost::server::{self, AppState};
use null_store::NullStore;
use tokio::sync::Notify;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(id)) = (args.next(), args.next()) else {
        bail!(
            "usage: plugin_without_store PLUGIN.wasm ID [--listen ADDR] [--config key=value ...]"
        );
    };
    let mut listen = "127.0.0.1:0".to_string();
    let mut values = BTreeMap::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--config" => {
                let pair = value("--config")?;
                let (key, value) = pair.split_once('=').context("--config takes key=value")?;
                values.insert(key.to_string(), value.to_string());
            }
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new(Some(cache.path().to_path_buf()))?;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {file}"))?;
    let sha256 = content_sha256(&bytes);
    let config = PluginConfig {
        values,
        ..PluginConfig::default()
    };
    let plugin = LoadedPlugin::load(&runtime, &id, bytes, sha256, &config)
        .await
        .with_context(|| format!("loading {file}"))?;
    let registry = Arc::new(Registry::default());
    registry.install(plugin);
    let store: Arc<dyn hookhost::store::EventStore> = Arc::new(NullStore);
    let wake_dispatcher = Arc::new(Notify::new());
    let node = NodeId::generate();
    let (scheduler, _no_timers) = Scheduler::new(
        &Config::load(None, Default::default(), |_| None)?,
        registry.clone(),
        store.clone(),
        wake_dispatcher.clone(),
        node.clone(),
    );
    let reloader = Reloader::new(
        runtime.clone(),
        registry.clone(),
        Arc::new(Config::load(None, Default::default(), |_| None)?),
        Default::default(),
    );
    let state = AppState {
        registry,
        max_body_bytes: hookhost::config::DEFAULT_MAX_BODY_BYTES,
        store,
        wake_dispatcher,
        scheduler,
        metrics: runtime.metrics.clone(),
        admin: Arc::new(hookhost::admin::auth::AdminAuth::open()),
        live: Default::default(),
        node,
        health_log: Default::default(),
        reloader,
        components: None,
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, server::app(state)).await?;
    Ok(())
}
