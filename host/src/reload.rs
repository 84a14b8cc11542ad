//! The reload task: the only writer of the plugin registry. It takes plugin ids
//! from the watcher, waits until a burst of file events has settled, then loads
//! each changed file and swaps it in, or records why it could not.
//!
//! A file that fails to load never replaces a working version: editors and copy
//! tools write in steps (truncate then write, write then rename), so a reload may
//! well see a half-written file; the write that completes it raises another event
//! and a later round picks it up.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::Config;
use crate::live::{Change, LiveFeed};
use crate::metrics::Reload;
use crate::plugin::{content_sha256, LoadedPlugin};
use crate::registry::{plugin_files, Registry};
use crate::runtime::Runtime;

/// How long the plugins directory must be quiet before a batch of changes is
/// loaded. Long enough to coalesce one copy's many write events, short enough
/// that a deploy feels immediate.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

pub struct Reloader {
    pub runtime: Runtime,
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    /// Told after every reload, whatever its outcome, for the dashboard.
    pub live: LiveFeed,
}

impl Reloader {
    /// Loads every plugin file in the plugins directory (at start-up).
    pub async fn load_all(&self) {
        match plugin_files(&self.config.plugins_dir) {
            Ok(files) => {
                for (id, _) in files {
                    self.reload(&id).await;
                }
            }
            // A missing plugins directory is a configuration mistake worth a loud
            // warning, but the API and health check still serve.
            Err(error) => tracing::warn!("{error:#}"),
        }
    }

    /// Applies changes as the watcher reports them, until the watcher goes away.
    pub async fn run(self, mut changes: UnboundedReceiver<String>) {
        let mut pending = BTreeSet::new();
        while let Some(id) = changes.recv().await {
            pending.insert(id);
            loop {
                match tokio::time::timeout(DEBOUNCE, changes.recv()).await {
                    Ok(Some(id)) => {
                        pending.insert(id);
                    }
                    Ok(None) => return,
                    Err(_quiet) => break,
                }
            }
            for id in std::mem::take(&mut pending) {
                self.reload(&id).await;
            }
        }
    }

    /// Brings plugin `id` in line with `<plugins_dir>/<id>.wasm`: loads a new or
    /// changed file, unloads a deleted one, keeps the old version on failure.
    pub async fn reload(&self, id: &str) {
        self.apply(id).await;
        self.live.publish(Change::Plugin { id: id.to_string() });
    }

    async fn apply(&self, id: &str) {
        let path = self.plugin_path(id);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if self.registry.remove(id) {
                    tracing::info!(plugin = id, "plugin file deleted; plugin unloaded");
                    self.runtime.metrics.reloaded(id, Reload::Unloaded);
                }
                return;
            }
            Err(error) => {
                let error =
                    anyhow::Error::new(error).context(format!("reading {}", path.display()));
                self.fail(id, error);
                return;
            }
        };
        let sha256 = content_sha256(&bytes);
        if self
            .registry
            .get(id)
            .is_some_and(|current| current.sha256 == sha256)
        {
            // Same content as the version serving (a touch, or the last step of a
            // write whose half-written state failed to load): nothing to swap.
            self.registry.clear_failure(id);
            return;
        }
        let plugin_config = self.config.plugins.get(id).cloned().unwrap_or_default();
        let started = std::time::Instant::now();
        match LoadedPlugin::load(&self.runtime, id, bytes, sha256, &plugin_config)
            .await
            .with_context(|| format!("loading plugin {id} from {}", path.display()))
        {
            Ok(plugin) => {
                tracing::info!(
                    plugin = id,
                    name = %plugin.manifest.name,
                    version = %plugin.manifest.version,
                    sha256 = %plugin.sha256,
                    compiled = plugin.compiled,
                    took_ms = started.elapsed().as_millis() as u64,
                    "plugin loaded"
                );
                self.registry.install(plugin);
                self.runtime.metrics.reloaded(id, Reload::Loaded);
            }
            Err(error) => self.fail(id, error),
        }
    }

    fn fail(&self, id: &str, error: anyhow::Error) {
        if self.registry.get(id).is_some() {
            tracing::error!(plugin = id, "{error:#}; the previous version keeps serving");
        } else {
            tracing::error!(plugin = id, "{error:#}");
        }
        self.registry.record_failure(id, &error);
        self.runtime.metrics.reloaded(id, Reload::Failed);
    }

    fn plugin_path(&self, id: &str) -> PathBuf {
        self.config.plugins_dir.join(format!("{id}.wasm"))
    }
}
