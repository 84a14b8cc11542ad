//! `hookhost check FILE.wasm`: loads one component exactly as `serve` would (compile,
//! world and import checks, `describe`) and prints its manifest, or what is wrong.

use std::path::Path;

use anyhow::{Context, Result};
use hookhost::config::PluginConfig;
use hookhost::plugins::loaded::{content_sha256, LoadedPlugin};
use hookhost::plugins::runtime::Runtime;

/// Prints the manifest of the plugin in `path`; an error says what does not match.
pub fn run(path: &Path) -> Result<()> {
    let id = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("plugin")
        .to_string();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let plugin = runtime
        .block_on(async {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let sha256 = content_sha256(&bytes);
            let engine = Runtime::new(None)?;
            LoadedPlugin::load(&engine, &id, bytes, sha256, &PluginConfig::default()).await
        })
        .with_context(|| format!("plugin {id} ({}) does not load", path.display()))?;
    let m = &plugin.manifest;
    let list = |items: &[String]| {
        if items.is_empty() {
            "(none)".to_string()
        } else {
            items.join(", ")
        }
    };
    println!(
        "ok: {} implements {}",
        path.display(),
        plugin.wit.guest_export()
    );
    println!("  wit:           {}", plugin.wit.package());
    println!("  name:          {}", m.name);
    println!("  version:       {}", m.version);
    println!("  description:   {}", m.description);
    println!("  emits:         {}", list(&m.emits));
    println!(
        "  polls every:   {}",
        m.poll_interval_seconds
            .map_or("(does not poll)".to_string(), |s| format!("{s} s"))
    );
    println!("  subscriptions: {}", list(&m.subscriptions));
    println!("  sha256:        {}", plugin.sha256);
    println!("  memory_init:   {} (auto)", plugin.memory_init.name());
    Ok(())
}
