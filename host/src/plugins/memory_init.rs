//! How a fresh instance's linear memory gets the component's initial data: mapped
//! copy-on-write from an image, copied in, or restored whole from an image kept
//! resident.
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
//!   JavaScript (ComponentizeJS) takes two thirds of the CPU this way, while Go
//!   takes more than twice as long. The segments are copied one at a time, so the
//!   runtime merges close ones before compiling (`data_segments`).
//! - Resident (`resident`): the image is mapped once per pool slot and the slot's
//!   memory stays resident; after each call wasmtime restores all of it, copying
//!   the image back over it and zeroing the rest, without first looking for what
//!   the call wrote (no page scan). Each call costs one `memcpy` of the memory's
//!   whole initial extent, data and the zeros between, but neither the `memset`
//!   of `copy` nor any fault. Cheaper when the data fills most of the initial
//!   memory, as Python's (componentize-py) snapshot does: an eighth to a quarter
//!   less CPU per call than `copy`; JavaScript's data fills a third of its memory,
//!   and costs a fifth more this way.
//!
//! `auto` (the default) maps a component whose core modules each start with less
//! than `COPY_FROM_BYTES` of data; above it, it restores the module whose data
//! fills at least half its initial memory and copies any other. Both bounds lie
//! between the languages measured; a plugin can say which way it wants with
//! `memory_init` in its config.

use anyhow::{Context, Result};
use serde::Deserialize;
use wasmparser::{DataKind, Parser, Payload};

/// Initial data from which `auto` copies or restores instead of mapping: a
/// snapshotted interpreter heap (Python 10.6 MiB, JavaScript 2.7 MiB) is above it, a
/// compiled program's static data (Go 0.9 MiB, Rust and C tens of KiB) below.
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
    Resident,
}

/// The way chosen for one component: which engine compiles and runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitStrategy {
    /// Copy-on-write mapping of the memory image.
    Mapped,
    /// Data segments copied into resident memory at each instantiation.
    Copied,
    /// The image mapped once per pool slot, all of it restored after each call.
    Resident,
}

impl InitStrategy {
    /// As the config and the admin API name it.
    pub fn name(self) -> &'static str {
        match self {
            InitStrategy::Mapped => "cow",
            InitStrategy::Copied => "copy",
            InitStrategy::Resident => "resident",
        }
    }
}

impl MemoryInit {
    /// The strategy for the component in `bytes`. `auto` reads its data and memory
    /// sections; bytes that do not parse are left to the compiler, which says what
    /// is wrong.
    pub fn resolve(self, bytes: &[u8]) -> InitStrategy {
        match self {
            MemoryInit::Copy => InitStrategy::Copied,
            MemoryInit::Cow => InitStrategy::Mapped,
            MemoryInit::Resident => InitStrategy::Resident,
            MemoryInit::Auto => match largest_initial_data(bytes) {
                Ok(data) if data.bytes < COPY_FROM_BYTES => InitStrategy::Mapped,
                Ok(data) if data.fills_half_its_memory() => InitStrategy::Resident,
                Ok(_) => InitStrategy::Copied,
                Err(_) => InitStrategy::Mapped,
            },
        }
    }
}

/// One core module's initial data: the bytes of its active data segments, and the
/// initial size of the memory it defines, if it defines one (a module that imports
/// its memory has none here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct InitialData {
    bytes: u64,
    memory_bytes: Option<u64>,
}

impl InitialData {
    fn fills_half_its_memory(&self) -> bool {
        self.memory_bytes
            .is_some_and(|memory| memory > 0 && self.bytes.saturating_mul(2) >= memory)
    }
}

/// The initial data of the core module (of a component, or the module itself)
/// that puts the most bytes into its memory at instantiation.
fn largest_initial_data(bytes: &[u8]) -> Result<InitialData> {
    let mut largest = InitialData::default();
    // Nested modules' sections come between their header and their `End`, so the
    // running total starts again at each module.
    let mut current = InitialData::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.context("reading the component's sections")? {
            Payload::Version { .. } => current = InitialData::default(),
            Payload::MemorySection(reader) => {
                if let Some(memory) = reader.into_iter().next() {
                    let memory = memory.context("reading a memory")?;
                    let page_bytes = 1u64 << memory.page_size_log2.unwrap_or(16);
                    current.memory_bytes = Some(memory.initial.saturating_mul(page_bytes));
                }
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data.context("reading a data segment")?;
                    if matches!(data.kind, DataKind::Active { .. }) {
                        current.bytes += data.data.len() as u64;
                    }
                }
                // The memory section comes before the data section, so `current`
                // is complete here.
                if current.bytes > largest.bytes {
                    largest = current;
                }
            }
            _ => {}
        }
    }
    Ok(largest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with one memory of `memory_bytes` (rounded up to pages) and
    /// one active segment of `size` bytes.
    fn module_with_data(size: usize, memory_bytes: usize) -> Vec<u8> {
        use wasm_encoder::{ConstExpr, DataSection, MemorySection, MemoryType, Module};
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: memory_bytes.max(size).div_ceil(65536).max(1) as u64,
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
    fn auto_maps_small_data_and_restores_data_that_fills_its_memory() {
        let bound = COPY_FROM_BYTES as usize;
        let small = module_with_data(64 << 10, 64 << 10);
        // Python's shape: the snapshot is most of the memory.
        let filling = module_with_data(bound, bound + (bound / 4));
        // JavaScript's: a third of it.
        let sparse = module_with_data(bound, 3 * bound);
        assert_eq!(
            largest_initial_data(&sparse).unwrap(),
            InitialData {
                bytes: COPY_FROM_BYTES,
                memory_bytes: Some(3 * COPY_FROM_BYTES)
            }
        );
        assert_eq!(MemoryInit::Auto.resolve(&small), InitStrategy::Mapped);
        assert_eq!(MemoryInit::Auto.resolve(&filling), InitStrategy::Resident);
        assert_eq!(MemoryInit::Auto.resolve(&sparse), InitStrategy::Copied);
    }

    #[test]
    fn data_in_a_module_that_imports_its_memory_is_copied() {
        let data = InitialData {
            bytes: COPY_FROM_BYTES,
            memory_bytes: None,
        };
        assert!(!data.fills_half_its_memory());
    }

    #[test]
    fn an_explicit_choice_wins_and_unparsable_bytes_are_mapped() {
        let large = module_with_data(COPY_FROM_BYTES as usize, COPY_FROM_BYTES as usize);
        assert_eq!(MemoryInit::Cow.resolve(&large), InitStrategy::Mapped);
        assert_eq!(MemoryInit::Copy.resolve(&large), InitStrategy::Copied);
        assert_eq!(
            MemoryInit::Resident.resolve(b"junk"),
            InitStrategy::Resident
        );
        assert_eq!(MemoryInit::Auto.resolve(b"junk"), InitStrategy::Mapped);
    }
}
