//! Compiled-component cache in `<data_dir>/cache`, so that restarts and reloads of
//! content seen before skip compilation (seconds for a Python or JS component).
//!
//! An entry is keyed by the SHA-256 of the component bytes and by a hash of the
//! engine's configuration and wasmtime version, so an entry made by another
//! configuration is never even opened. Each file carries a SHA-256 of its payload,
//! checked before wasmtime sees the bytes: a truncated or corrupt entry is
//! detected, deleted and rebuilt, never loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// First bytes of every entry; bump the digit when the layout changes.
const MAGIC: &[u8; 8] = b"HHCWASM1";
const HEADER_LEN: usize = MAGIC.len() + 32;

pub struct ArtifactCache {
    dir: PathBuf,
    /// Hex hash of everything about the engine that makes compiled code (in)valid.
    engine_key: String,
}

/// Whether a component came from the cache, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Compiled,
}

impl ArtifactCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating cache directory {}", dir.display()))?;
        let mut hasher = Sha256Hasher(Sha256::new());
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..16]);
        Ok(Self { dir, engine_key })
    }

    /// The entry named `key` (a component's SHA-256, plus a suffix when what is
    /// compiled is derived from the component), or what `compile` makes, stored
    /// under that name. `compile` runs only on a miss. Blocking: call it off the
    /// async runtime.
    pub fn component(
        &self,
        engine: &Engine,
        key: &str,
        compile: impl FnOnce() -> Result<Component>,
    ) -> Result<(Component, Source)> {
        let path = self.dir.join(format!("{key}-{}.cwasm", self.engine_key));
        match self.read_entry(engine, &path) {
            Ok(Some(component)) => return Ok((component, Source::Cache)),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(entry = %path.display(), "discarding compiled-component cache entry: {error:#}");
                let _ = std::fs::remove_file(&path);
            }
        }
        let component = compile()?;
        if let Err(error) = self.write_entry(&component, &path) {
            // A cache that cannot be written costs speed, not correctness.
            tracing::warn!(entry = %path.display(), "could not write compiled-component cache entry: {error:#}");
        }
        Ok((component, Source::Compiled))
    }

    fn read_entry(&self, engine: &Engine, path: &Path) -> Result<Option<Component>> {
        let data = match std::fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).context("reading entry"),
        };
        anyhow::ensure!(
            data.len() >= HEADER_LEN && &data[..MAGIC.len()] == MAGIC,
            "not a hookhost cache entry"
        );
        let (header, payload) = data.split_at(HEADER_LEN);
        anyhow::ensure!(
            Sha256::digest(payload).as_slice() == &header[MAGIC.len()..],
            "checksum mismatch (truncated or corrupt)"
        );
        // SAFETY: `Component::deserialize` trusts its input to be code that this
        // wasmtime produced with a compatible configuration. The entry's name embeds
        // the engine's compatibility hash, the payload checksum above proves the
        // bytes are exactly those `write_entry` serialized, and only hookhost writes
        // into its data directory. wasmtime additionally checks its own version and
        // configuration header and fails instead of loading a foreign artifact.
        #[allow(unsafe_code)]
        let component =
            unsafe { Component::deserialize(engine, payload) }.map_err(anyhow::Error::from)?;
        Ok(Some(component))
    }

    fn write_entry(&self, component: &Component, path: &Path) -> Result<()> {
        let payload = component.serialize().map_err(anyhow::Error::from)?;
        let mut data = Vec::with_capacity(HEADER_LEN + payload.len());
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&Sha256::digest(&payload));
        data.extend_from_slice(&payload);
        // Write then rename, so a reader never sees a half-written entry under
        // the final name (and a crash leaves only a stray temporary file).
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &data).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} into place", tmp.display()))
    }
}

/// Feeds `Hash` output into SHA-256, so the engine key is stable across builds
/// (std's `DefaultHasher` is not guaranteed to be).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("the digest is read from the inner Sha256")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
