//! The set of plugins the host serves, by id, with the last load error of each.
//! Only the `Reloader` (`deploy::reload`) writes it: for file changes, deploys
//! through the API, and the deploy-sync task of a fleet alike.
//! Readers take a cheap `Arc` snapshot of one plugin; a load replaces an entry
//! atomically, so a call already running finishes on the version it started with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::plugins::id::{is_valid_plugin_id, PLUGIN_ID_PATTERN};
use crate::plugins::loaded::LoadedPlugin;

/// Why the newest file of a plugin is not the one serving.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub message: String,
    pub at: SystemTime,
}

/// One plugin id: the version serving (if any) and the last failed load (if any).
#[derive(Clone, Default)]
pub struct Entry {
    pub current: Option<Arc<LoadedPlugin>>,
    pub failure: Option<LoadFailure>,
}

pub struct Registry {
    entries: RwLock<BTreeMap<String, Entry>>,
    /// Bumped after every install or removal; the poll scheduler watches it to
    /// keep its timers in line with the plugins.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            entries: RwLock::default(),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Registry {
    /// Changes whenever a plugin is installed or removed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The version of `id` that new calls should use.
    pub fn get(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        self.read().get(id).and_then(|entry| entry.current.clone())
    }

    /// Whether a failed load of `id` is on record.
    pub fn has_failure(&self, id: &str) -> bool {
        self.read()
            .get(id)
            .is_some_and(|entry| entry.failure.is_some())
    }

    /// Every known id with its state, in id order.
    pub fn snapshot(&self) -> Vec<(String, Entry)> {
        self.read()
            .iter()
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect()
    }

    /// The ids of loaded plugins that get an event of `kind` emitted by plugin
    /// `source`: their manifest subscribes to `kind` and their `[plugins.<id>]
    /// sources` (if set) include `source`. In id order. The one place deliveries'
    /// handlers are chosen, for webhooks and polls alike.
    pub fn subscribers(&self, kind: &str, source: &str) -> Vec<String> {
        self.read()
            .iter()
            .filter(|(_, entry)| {
                entry.current.as_ref().is_some_and(|plugin| {
                    crate::plugins::subscriptions::covers(&plugin.manifest.subscriptions, kind)
                        && plugin.accepts_events_from(source)
                })
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Makes `plugin` the serving version of its id and clears any earlier failure.
    pub fn install(&self, plugin: LoadedPlugin) {
        let id = plugin.id().to_string();
        self.write().insert(
            id,
            Entry {
                current: Some(Arc::new(plugin)),
                failure: None,
            },
        );
        self.changes.send_modify(|n| *n += 1);
    }

    /// Forgets `id` entirely (its file was deleted); `true` when it was known.
    pub fn remove(&self, id: &str) -> bool {
        let removed = self.write().remove(id).is_some();
        if removed {
            self.changes.send_modify(|n| *n += 1);
        }
        removed
    }

    /// Clears a recorded load failure of `id`, keeping the serving version.
    pub fn clear_failure(&self, id: &str) {
        if let Some(entry) = self.write().get_mut(id) {
            entry.failure = None;
        }
    }

    /// Records that loading `id` failed; whatever version was serving keeps serving.
    pub fn record_failure(&self, id: &str, error: &anyhow::Error) {
        let failure = LoadFailure {
            message: format!("{error:#}"),
            at: SystemTime::now(),
        };
        self.write().entry(id.to_string()).or_default().failure = Some(failure);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated (every
        // write is a single insert), so a poisoned lock is still consistent.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `*.wasm` files directly in `dir` with a valid plugin id, sorted by id. Other
/// `.wasm` names are skipped with a warning.
pub fn plugin_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading plugins directory {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading plugins directory {}", dir.display()))?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("wasm") || !path.is_file() {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            tracing::warn!(file = %path.display(), "skipping plugin file: name is not UTF-8");
            continue;
        };
        if !is_valid_plugin_id(stem) {
            tracing::warn!(
                file = %path.display(),
                "skipping plugin file: id must match {PLUGIN_ID_PATTERN}"
            );
            continue;
        }
        found.push((stem.to_string(), path));
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasm_files_with_valid_ids_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "github.wasm",
            "Bad.wasm",
            "notes.txt",
            "stripe.wasm",
            ".hidden.wasm",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("dir.wasm")).unwrap();
        let ids: Vec<String> = plugin_files(dir.path())
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["github", "stripe"]);
    }
}
