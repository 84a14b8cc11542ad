//! Watches the plugins directory and reports which plugin ids may have changed.
//! It only sends ids; deciding what changed and reloading is `reload`'s job.

use std::path::Path;

use anyhow::{Context, Result};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

use crate::plugins::id::is_valid_plugin_id;

/// Starts watching `dir` (not its subdirectories). Every create, write, rename or
/// removal of `<id>.wasm` sends `id` on `changes`. The returned watcher stops
/// when dropped.
pub fn watch_plugins_dir(
    dir: &Path,
    changes: UnboundedSender<String>,
) -> Result<RecommendedWatcher> {
    let mut watcher =
        notify::recommended_watcher(move |result: notify::Result<notify::Event>| match result {
            Ok(event) => {
                if event.kind.is_access()
                    && !matches!(
                        event.kind,
                        notify::EventKind::Access(notify::event::AccessKind::Close(
                            notify::event::AccessMode::Write
                        ))
                    )
                {
                    return;
                }
                for path in &event.paths {
                    if let Some(id) = plugin_id_of(path) {
                        // The receiver is gone only during shutdown.
                        let _ = changes.send(id);
                    }
                }
            }
            Err(error) => tracing::warn!("plugins directory watcher: {error}"),
        })
        .context("creating the plugins directory watcher")?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching plugins directory {}", dir.display()))?;
    Ok(watcher)
}

/// `Some(id)` for `<dir>/<id>.wasm` with a valid id; editors' and copy tools'
/// temporary names (`.github.wasm.swp`, `github.wasm~`) are not plugins.
pub(crate) fn plugin_id_of(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    is_valid_plugin_id(stem).then(|| stem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plugin_files_map_to_ids() {
        assert_eq!(
            plugin_id_of(Path::new("/p/github.wasm")).as_deref(),
            Some("github")
        );
        for other in [
            "/p/.github.wasm.swp",
            "/p/github.wasm~",
            "/p/github.wasm.tmp",
            "/p/Bad.wasm",
            "/p/notes.txt",
        ] {
            assert_eq!(plugin_id_of(Path::new(other)), None, "{other}");
        }
    }
}
