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
use hookhost::plugins::id::{is_valid_plugin_id, not_a_plugin_id};
use hookhost::store::backend::Stores;
use hookhost::Host;
use null_store::NullStore;

// The hookhost binary's allocator (host/src/main.rs): this example stands for
// hookhost without its store, so it must not measure glibc's malloc instead.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    if !is_valid_plugin_id(&id) {
        bail!(not_a_plugin_id(&id));
    }
    let dir = tempfile::tempdir()?;
    let mut config = Config::load(None, Default::default(), |_| None)?;
    config.data_dir = dir.path().join("data");
    config.plugins_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&config.plugins_dir)?;
    std::fs::copy(&file, config.plugins_dir.join(format!("{id}.wasm")))
        .with_context(|| format!("copying {file}"))?;
    config.plugins.insert(
        id.clone(),
        PluginConfig {
            values,
            ..PluginConfig::default()
        },
    );
    let stores = Stores {
        events: Arc::new(NullStore),
        components: None,
    };
    let host = Host::with_stores(&config, stores).await?;
    host.check_loaded(&id)
        .with_context(|| format!("loading {file}"))?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, host.app()).await?;
    Ok(())
}
