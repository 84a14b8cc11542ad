//! The reload task: the only writer of the plugin registry. It takes plugin ids
//! from the watcher, waits until a burst of file events has settled, then loads
//! each changed file and swaps it in, or records why it could not.
//!
//! A file that fails to load never replaces a working version: editors and copy
//! tools write in steps (truncate then write, write then rename), so a reload may
//! well see a half-written file; the write that completes it raises another event
//! and a later round picks it up.
//!
//! A deploy (`admin::deploy`, `deploy::sync`) comes through here too: `validate`
//! loads the bytes without touching anything, `make_current` writes them into the
//! plugins directory atomically and swaps in the version already loaded. Every registry write happens
//! under one lock, so a file reload that read older bytes can never land after a
//! deploy that replaced them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::Config;
use crate::live::{Change, LiveFeed};
use crate::metrics::Reload;
use crate::plugins::id::{is_valid_plugin_id, not_a_plugin_id};
use crate::plugins::loaded::{content_sha256, LoadedPlugin};
use crate::plugins::registry::{plugin_files, Registry};
use crate::plugins::runtime::Runtime;

/// How long the plugins directory must be quiet before a batch of changes is
/// loaded. Long enough to coalesce one copy's many write events, short enough
/// that a deploy feels immediate.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Cheap to clone: the watcher's reload task and the deploy route and task share one.
#[derive(Clone)]
pub struct Reloader {
    pub runtime: Runtime,
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    /// Told after every reload, whatever its outcome, for the dashboard.
    pub live: LiveFeed,
    /// Held from reading a plugin's bytes to swapping it in (or recording why not),
    /// so that loads of the same plugin from the file and from a deploy never
    /// finish out of order.
    swapping: Arc<tokio::sync::Mutex<()>>,
}

impl Reloader {
    pub fn new(
        runtime: Runtime,
        registry: Arc<Registry>,
        config: Arc<Config>,
        live: LiveFeed,
    ) -> Self {
        Reloader {
            runtime,
            registry,
            config,
            live,
            swapping: Arc::default(),
        }
    }

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
        {
            let _swapping = self.swapping.lock().await;
            self.apply(id).await;
        }
        self.live.publish(Change::Plugin { id: id.to_string() });
    }

    /// Loads `bytes` as plugin `id` (compile, link, `describe`) the way a reload
    /// does, without changing anything: the error says why it is not loadable.
    pub async fn validate(&self, id: &str, bytes: Vec<u8>) -> Result<LoadedPlugin> {
        if !is_valid_plugin_id(id) {
            bail!(not_a_plugin_id(id));
        }
        let sha256 = content_sha256(&bytes);
        let plugin_config = self.config.plugins.get(id).cloned().unwrap_or_default();
        LoadedPlugin::load(&self.runtime, id, bytes, sha256, &plugin_config)
            .await
            .with_context(|| format!("loading plugin {id}"))
    }

    /// Makes `plugin` (from `validate`, loaded from `bytes`) current: writes `bytes`
    /// atomically to `<plugins_dir>/<id>.wasm`, so that a restart loads the same
    /// version, then swaps it in as a reload does. When the write fails nothing
    /// changes.
    pub async fn make_current(
        &self,
        plugin: LoadedPlugin,
        bytes: Bytes,
    ) -> Result<Arc<LoadedPlugin>> {
        let id = plugin.id().to_string();
        debug_assert_eq!(plugin.sha256, content_sha256(&bytes));
        let installed = {
            let _swapping = self.swapping.lock().await;
            let dir = self.config.plugins_dir.clone();
            let file_id = id.clone();
            tokio::task::spawn_blocking(move || write_plugin_file(&dir, &file_id, &bytes))
                .await
                .context("plugin file write task panicked")??;
            tracing::info!(
                plugin = %id,
                name = %plugin.manifest.name,
                version = %plugin.manifest.version,
                sha256 = %plugin.sha256,
                "plugin deployed"
            );
            self.registry.install(plugin);
            self.runtime.metrics.reloaded(&id, Reload::Loaded);
            self.registry
                .get(&id)
                .expect("the plugin was installed under the lock just now")
        };
        self.live.publish(Change::Plugin { id });
        Ok(installed)
    }

    /// Undeploys `id` on this node: deletes `<plugins_dir>/<id>.wasm` and unloads
    /// the plugin (calls in flight finish on it), under the same lock as every
    /// swap, so a reload that read the file before cannot bring it back. `true`
    /// when there was something to remove (a loaded plugin, a load failure, or
    /// the file). When the file cannot be deleted nothing changes.
    pub async fn remove(&self, id: &str) -> Result<bool> {
        let removed = {
            let _swapping = self.swapping.lock().await;
            let path = self.plugin_path(id);
            let had_file = match tokio::fs::remove_file(&path).await {
                Ok(()) => true,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
                Err(error) => {
                    return Err(
                        anyhow::Error::new(error).context(format!("deleting {}", path.display()))
                    )
                }
            };
            let was_known = self.registry.remove(id);
            if was_known || had_file {
                tracing::info!(
                    plugin = id,
                    "plugin undeployed: file deleted, plugin unloaded"
                );
                self.runtime.metrics.reloaded(id, Reload::Unloaded);
            }
            was_known || had_file
        };
        if removed {
            self.live.publish(Change::Plugin { id: id.to_string() });
        }
        Ok(removed)
    }

    /// Whether `id` is anything on this node: loaded, failed to load, or a file
    /// in the plugins directory.
    pub fn is_present(&self, id: &str) -> bool {
        self.registry.get(id).is_some()
            || self.registry.has_failure(id)
            || self.plugin_path(id).exists()
    }

    /// Records that a version of `id` could not be made current (it does not load,
    /// or its file could not be written); the version serving keeps serving.
    pub fn record_failure(&self, id: &str, error: anyhow::Error) {
        self.fail(id, error);
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
                    memory_init = plugin.memory_init.name(),
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

/// Writes `<dir>/<id>.wasm` so that readers (the watcher's reloads, a restart) see
/// either the old file or the whole new one: the bytes go to a temporary file in
/// the same directory, are flushed to disk, and are renamed over the plugin file.
/// The temporary name is hidden and does not end in `.wasm`, so the watcher and the
/// start-up scan never take it for a plugin.
pub fn write_plugin_file(dir: &Path, id: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(format!("{id}.wasm"));
    let temp = dir.join(temp_file_name(id));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, &target)?;
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(anyhow::Error::new(error).context(format!("writing {}", target.display())));
    }
    Ok(())
}

/// `.<id>.wasm.deploy-<random>`: unique, so concurrent writers never share one.
fn temp_file_name(id: &str) -> String {
    format!(".{id}.wasm.deploy-{:016x}", fastrand::u64(..))
}

/// Whether `name` is one of `write_plugin_file`'s temporary names.
fn is_temp_file_name(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|rest| rest.split_once(".wasm.deploy-"))
        .is_some_and(|(id, _)| is_valid_plugin_id(id))
}

/// Deletes the temporary files of deploys that a crash interrupted
/// (`.<id>.wasm.deploy-*` in `dir`), logging each, and returns their names. Run
/// at start, before anything deploys: a deploy of this host in progress would
/// otherwise lose its file. A file that cannot be deleted is logged and left.
pub fn remove_stale_deploy_files(dir: &Path) -> Vec<String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // `load_all` reports a missing or unreadable plugins directory.
        Err(_) => return Vec::new(),
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_temp_file_name(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::warn!(
                    file = %entry.path().display(),
                    "removed the temporary file of a deploy interrupted by a crash"
                );
                removed.push(name);
            }
            Err(error) => tracing::warn!(
                file = %entry.path().display(),
                "could not remove the temporary file of an interrupted deploy: {error}"
            ),
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_files_are_replaced_whole_and_temporary_files_are_not_plugins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.wasm"), b"old").unwrap();
        write_plugin_file(dir.path(), "app", b"new bytes").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("app.wasm")).unwrap(),
            b"new bytes"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["app.wasm"], "no temporary file is left behind");

        let temp = dir.path().join(temp_file_name("app"));
        assert_eq!(
            crate::deploy::watcher::plugin_id_of(&temp),
            None,
            "{temp:?}"
        );
        std::fs::write(&temp, b"partial").unwrap();
        let ids: Vec<String> = plugin_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["app"]);
    }

    #[test]
    fn only_deploy_temporary_files_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let stale = temp_file_name("app");
        for name in [
            stale.as_str(),
            ".other.wasm.deploy-1",
            "app.wasm",
            ".app.wasm.swp",
            ".Bad.wasm.deploy-1",
            "notes.wasm.deploy-1",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        // A directory with a temporary name is not something a deploy wrote.
        std::fs::create_dir(dir.path().join(".dir.wasm.deploy-1")).unwrap();
        let mut expected = vec![stale.clone(), ".other.wasm.deploy-1".to_string()];
        expected.sort();
        assert_eq!(remove_stale_deploy_files(dir.path()), expected);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".Bad.wasm.deploy-1",
                ".app.wasm.swp",
                ".dir.wasm.deploy-1",
                "app.wasm",
                "notes.wasm.deploy-1"
            ]
        );
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.wasm"), b"old").unwrap();
        // A directory where the plugin file should be: the rename fails.
        std::fs::create_dir(dir.path().join("other.wasm")).unwrap();
        let error = write_plugin_file(dir.path(), "other", b"new").unwrap_err();
        assert!(format!("{error:#}").contains("other.wasm"), "{error:#}");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["app.wasm", "other.wasm"]);
        assert_eq!(std::fs::read(dir.path().join("app.wasm")).unwrap(), b"old");
    }
}
