//! hookhost: receives webhooks and runs polls, and routes each into a sandboxed
//! WebAssembly component that holds the provider-specific logic.
//!
//! # Layout
//!
//! - `config`: the TOML file, `${ENV}` expansion, defaults.
//! - `bindings`: Rust types generated from `wit/` (the plugin contract).
//! - `runtime`: the one wasmtime engine, its linker and epoch ticker.
//! - `plugin_state`: per-call store data and the host side of plugin imports.
//! - `guest_output`: plugins' stdout/stderr into the log.
//! - `plugin`: one loaded component; a fresh instance per call, with a deadline.
//! - `registry`: plugins by id, load errors, plugin-file discovery.
//! - `server`: the axum router (`/hooks`, `/api`, `/healthz`).
//! - `error`: the JSON error shape every route answers with.
//!
//! Data flows one way: HTTP request -> `server` -> `registry` lookup -> `plugin`
//! call -> response.

pub mod bindings;
pub mod config;
pub mod error;
pub mod guest_output;
pub mod plugin;
pub mod plugin_state;
pub mod registry;
pub mod runtime;
pub mod server;

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::server::AppState;

/// A host with its plugins loaded, ready to serve.
pub struct Host {
    state: AppState,
}

impl Host {
    /// Prepares the data directory, builds the engine and loads every plugin in the
    /// plugins directory. A plugin that fails to load is recorded and skipped; it
    /// never stops the others.
    pub async fn start(config: &Config) -> Result<Host> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let runtime = Runtime::new()?;
        let registry = Arc::new(Registry::default());
        match registry::plugin_files(&config.plugins_dir) {
            Ok(files) => {
                for (id, path) in files {
                    registry::load_file(&runtime, &registry, config, &id, &path).await;
                }
            }
            // A missing plugins directory is a configuration mistake worth a loud
            // warning, but the API and health check still serve.
            Err(error) => tracing::warn!("{error:#}"),
        }
        for id in config.plugins.keys() {
            if registry.get(id).is_none() {
                tracing::warn!(plugin = %id, "config has [plugins.{id}] but no such plugin is loaded");
            }
        }
        Ok(Host {
            state: AppState {
                registry,
                max_body_bytes: config.max_body_bytes,
            },
        })
    }

    /// Serves HTTP on `listener` until `shutdown` resolves, then lets requests in
    /// flight finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        axum::serve(listener, server::app(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }
}
