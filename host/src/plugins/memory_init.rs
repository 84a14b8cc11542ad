//! How a fresh instance's linear memory gets the component's initial data: mapped
//! copy-on-write from an image, or copied in.
//!
//! Every call runs in a fresh instance, so this happens once per call, and which
//! way is cheaper depends on the plugin (BENCHMARKS.md, "Memory initialisation"):
//!
//! - Mapped (`cow`, wasmtime's default): instantiation maps the image and each
//!   page the call touches is faulted in, and copied on its first write. With
//!   several server threads running, each such fault also interrupts the other
//!   CPUs to flush their TLBs. After the call, wasmtime's reset keeps at most 32
//!   runs of dirty pages resident and unmaps the rest, so the next call faults them
//!   in again. Cheap for a plugin that touches little of a small image: Rust, C and
//!   Go.
//! - Copied (`copy`): instantiation copies the data segments into memory that
//!   stays resident. Each call costs a `memcpy` of the whole initial data, and a
//!   `memset` of what the previous call wrote, but no faults. Cheaper for an
//!   interpreter whose initial data is a heap snapshot that every call walks:
//!   Python (componentize-py) takes half the CPU this way and JavaScript
//!   (ComponentizeJS) two thirds, while Go takes more than twice as long.
//!
//! `auto` (the default) copies when a core module of the component starts with at
//! least `COPY_FROM_BYTES` of data, a bound that lies between the languages
//! measured; a plugin can say which it wants with `memory_init` in its config.

use anyhow::{Context, Result};
use serde::Deserialize;
use wasmparser::{DataKind, Parser, Payload};

/// Initial data from which `auto` copies instead of mapping: a snapshotted
/// interpreter heap (Python 10.8 MiB, JavaScript 2.8 MiB) is above it, a compiled
/// program's static data (Go 0.9 MiB, Rust and C tens of KiB) below.
pub const COPY_FROM_BYTES: u64 = 2 << 20;

/// What a plugin's config asks for (`[plugins.<id>] memory_init`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryInit {
    /// Decide from the component's initial data size.
    #[default]
    Auto,
    Copy,
    Cow,
}

/// The way chosen for one component: which engine compiles and runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitStrategy {
    /// Copy-on-write mapping of the memory image.
    Mapped,
    /// Data segments copied into resident memory at each instantiation.
    Copied,
}

impl InitStrategy {
    /// As the config and the admin API name it.
    pub fn name(self) -> &'static str {
        match self {
            InitStrategy::Mapped => "cow",
            InitStrategy::Copied => "copy",
        }
    }
}

impl MemoryInit {
    /// The strategy for the component in `bytes`. `auto` reads its data sections;
    /// bytes that do not parse are left to the compiler, which says what is wrong.
    pub fn resolve(self, bytes: &[u8]) -> InitStrategy {
        match self {
            MemoryInit::Copy => InitStrategy::Copied,
            MemoryInit::Cow => InitStrategy::Mapped,
            MemoryInit::Auto => match largest_initial_data(bytes) {
                Ok(size) if size >= COPY_FROM_BYTES => InitStrategy::Copied,
                _ => InitStrategy::Mapped,
            },
        }
    }
}

/// The most bytes of active data segments any one core module (of a component,
/// or the module itself) puts into its memory at instantiation.
fn largest_initial_data(bytes: &[u8]) -> Result<u64> {
    let mut largest = 0;
    // Nested modules' sections come between their header and their `End`, so the
    // running total starts again at each module.
    let mut current = 0u64;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.context("reading the component's sections")? {
            Payload::Version { .. } => current = 0,
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data.context("reading a data segment")?;
                    if matches!(data.kind, DataKind::Active { .. }) {
                        current += data.data.len() as u64;
                    }
                }
                largest = largest.max(current);
            }
            _ => {}
        }
    }
    Ok(largest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with one memory and one active segment of `size` bytes.
    fn module_with_data(size: usize) -> Vec<u8> {
        use wasm_encoder::{ConstExpr, DataSection, MemorySection, MemoryType, Module};
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: size.div_ceil(65536).max(1) as u64,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut data = DataSection::new();
        data.active(0, &ConstExpr::i32_const(0), vec![7; size]);
        let mut module = Module::new();
        module.section(&memories).section(&data);
        module.finish()
    }

    #[test]
    fn auto_copies_a_large_initial_heap_and_maps_small_static_data() {
        let small = module_with_data(64 << 10);
        let large = module_with_data(COPY_FROM_BYTES as usize);
        assert_eq!(largest_initial_data(&large).unwrap(), COPY_FROM_BYTES);
        assert_eq!(MemoryInit::Auto.resolve(&small), InitStrategy::Mapped);
        assert_eq!(MemoryInit::Auto.resolve(&large), InitStrategy::Copied);
    }

    #[test]
    fn an_explicit_choice_wins_and_unparsable_bytes_are_mapped() {
        let large = module_with_data(COPY_FROM_BYTES as usize);
        assert_eq!(MemoryInit::Cow.resolve(&large), InitStrategy::Mapped);
        assert_eq!(MemoryInit::Copy.resolve(b"junk"), InitStrategy::Copied);
        assert_eq!(MemoryInit::Auto.resolve(b"junk"), InitStrategy::Mapped);
    }
}
