//! The process's wasmtime engines (one per way of initialising memory, see
//! `memory_init`), their linkers, and the epoch tickers that let the host interrupt
//! a plugin that runs too long.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::metrics::Metrics;
use crate::plugins::artifact_cache::{ArtifactCache, Source};
use crate::plugins::bindings;
use crate::plugins::call_state::CallState;
use crate::plugins::data_segments;
use crate::plugins::http_budget;
use crate::plugins::limits;
use crate::plugins::memory_init::InitStrategy;
use crate::store::StateStore;

/// How often the epoch advances. Call deadlines are counted in these ticks, so this
/// is the granularity of a timeout: fine enough to stop a loop promptly, coarse
/// enough that the ticker thread costs nothing measurable.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Set (to anything but `0` or empty) to have wasmtime write `/tmp/perf-PID.map`,
/// so that `perf report` names plugin functions instead of showing bare
/// addresses. A profiling aid: the file lists every compiled plugin function and
/// grows with each load, so it stays off unless asked for.
pub const PERF_MAP_ENV: &str = "HOOKHOST_PERF_MAP";

/// The engines and linkers shared by every plugin. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    mapped: Arc<PluginEngine>,
    copied: Arc<PluginEngine>,
    resident: Arc<PluginEngine>,
    /// Where plugins' `state` lives; `None` (as in `hookhost check`) answers every
    /// `state` call with `unavailable`.
    pub state_store: Option<Arc<dyn StateStore>>,
    /// The host's metrics; here because every plugin call goes through a `Runtime`.
    pub metrics: Arc<Metrics>,
}

impl Runtime {
    /// `cache_dir` holds compiled components between loads and restarts; without
    /// one (a one-off `hookhost check`) every load compiles.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self> {
        let runtime = Self {
            mapped: Arc::new(PluginEngine::new(InitStrategy::Mapped, cache_dir.clone())?),
            copied: Arc::new(PluginEngine::new(InitStrategy::Copied, cache_dir.clone())?),
            resident: Arc::new(PluginEngine::new(InitStrategy::Resident, cache_dir)?),
            state_store: None,
            metrics: Arc::default(),
        };
        spawn_epoch_ticker(&[
            &runtime.mapped.engine,
            &runtime.copied.engine,
            &runtime.resident.engine,
        ]);
        Ok(runtime)
    }

    /// Gives plugins loaded with this runtime their `state`, kept in `store`.
    pub fn with_state_store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.state_store = Some(store);
        self
    }

    /// The engine (and its linker) that compiles and runs components initialised
    /// the `strategy` way.
    pub fn engine(&self, strategy: InitStrategy) -> &PluginEngine {
        match strategy {
            InitStrategy::Mapped => &self.mapped,
            InitStrategy::Copied => &self.copied,
            InitStrategy::Resident => &self.resident,
        }
    }
}

/// One wasmtime engine with the host's imports linked, and its compiled-component
/// cache. Components compiled by one engine run only in its stores.
pub struct PluginEngine {
    strategy: InitStrategy,
    pub engine: Engine,
    pub linker: Linker<CallState>,
    /// Compiled components kept between loads; `None` compiles every time.
    cache: Option<ArtifactCache>,
}

impl PluginEngine {
    fn new(strategy: InitStrategy, cache_dir: Option<PathBuf>) -> Result<Self> {
        let engine = Engine::new(&engine_config(strategy))
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        let mut linker = Linker::new(&engine);
        // Components from Python, JS, C and Go import wasi:* even when they use none
        // of it; they must find it, with nothing granted (see CallState::new).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI HTTP")?;
        http_budget::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking the host memory budget's WASI HTTP wrappers")?;
        // Every supported version's imports; their names carry the version, so
        // they sit side by side.
        bindings::v0_1_0::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .and_then(|()| {
                bindings::v0_2_0::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            })
            .map_err(anyhow::Error::from)
            .context("linking the hookhost imports")?;
        // The engines cache in the same directory: an entry's name carries its
        // engine's compatibility hash, which covers `memory_init_cow`, so a
        // copying engine never loads a mapping one's entry. The mapped and the
        // resident engine compile alike (they differ only in how the pool resets
        // a slot) and share entries.
        let cache = cache_dir
            .map(|dir| ArtifactCache::new(dir, &engine))
            .transpose()?;
        Ok(Self {
            strategy,
            engine,
            linker,
            cache,
        })
    }

    /// Compiles a component, or takes it from the cache. Blocking and CPU-bound:
    /// call it off the async runtime.
    pub fn component(&self, bytes: &[u8], sha256: &str) -> Result<(Component, Source)> {
        if self.strategy == InitStrategy::Copied {
            // What the copy engine compiles is the component with its data
            // segments merged (`data_segments`); its entries say so in their name,
            // so that none compiled from the bytes as they came is taken instead,
            // and a hit skips the merge (which reads the whole component).
            let key = format!("{sha256}-merged-data");
            return self.compile_with(&key, || self.compile_merged(bytes));
        }
        self.compile_with(sha256, || {
            Component::new(&self.engine, bytes).map_err(anyhow::Error::from)
        })
    }

    /// `bytes` with their data segments merged, compiled; or, when nothing merges or
    /// the merged component does not compile, `bytes` as they came.
    fn compile_merged(&self, bytes: &[u8]) -> Result<Component> {
        if let Some(merged) = data_segments::merged(bytes) {
            match Component::new(&self.engine, &merged) {
                Ok(component) => return Ok(component),
                Err(error) => tracing::warn!(
                    "compiling the component with its data segments merged failed, \
                     compiling it as it is: {error:#}"
                ),
            }
        }
        Component::new(&self.engine, bytes).map_err(anyhow::Error::from)
    }

    fn compile_with(
        &self,
        key: &str,
        compile: impl FnOnce() -> Result<Component>,
    ) -> Result<(Component, Source)> {
        match &self.cache {
            Some(cache) => cache.component(&self.engine, key, compile),
            None => Ok((compile()?, Source::Compiled)),
        }
    }
}

fn engine_config(strategy: InitStrategy) -> Config {
    let mut config = Config::new();
    config.memory_init_cow(matches!(
        strategy,
        InitStrategy::Mapped | InitStrategy::Resident
    ));
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if std::env::var(PERF_MAP_ENV).is_ok_and(|value| !value.is_empty() && value != "0") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // Deep recursion traps with "stack overflow" at this depth instead of touching
    // the host's stack (wasmtime's default, set so the bound is visible here).
    config.max_wasm_stack(512 * 1024);
    // Pool sizes that held for Rust, Python, JS, C and Go components plus 100 live
    // instances (see ../shared/TOOLCHAINS.md): a Python component alone has 14 core
    // instances and JS needs ~7,700 table elements.
    // The slot sizes are the ceilings of the per-plugin `memory` and
    // `table_elements` (checked at config load); each plugin's own, lower limit is
    // enforced per store by `CallState`'s `StoreLimits`.
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(limits::POOL_COMPONENT_INSTANCES as u32)
        .total_core_instances(1500)
        .total_memories(100)
        .total_tables(200)
        .total_stacks(100)
        .max_memory_size(limits::MAX_MEMORY)
        .table_elements(limits::MAX_TABLE_ELEMENTS)
        // Without the scan for written pages, a slot's reset restores all of
        // its first `linear_memory_keep_resident` bytes (the image copied back
        // over it, the rest zeroed) whatever the call touched, so they all stay
        // resident: that is the resident way (`memory_init`).
        .pagemap_scan(match strategy {
            InitStrategy::Resident => Enabled::No,
            InitStrategy::Mapped | InitStrategy::Copied => Enabled::Auto,
        })
        .linear_memory_keep_resident(32 * 1024 * 1024)
        .table_keep_resident(128 * 1024);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances each engine's epoch every `EPOCH_TICK` for as long as any of them
/// lives: one thread for all of a runtime's engines, so that an idle host wakes
/// once per tick rather than once per engine. A plain thread rather than a tokio
/// task, so that a busy runtime cannot delay it.
fn spawn_epoch_ticker(engines: &[&Engine]) {
    let weak: Vec<_> = engines.iter().map(|engine| engine.weak()).collect();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || loop {
            let mut alive = false;
            for engine in weak.iter().filter_map(|weak| weak.upgrade()) {
                engine.increment_epoch();
                alive = true;
            }
            if !alive {
                break;
            }
            std::thread::sleep(EPOCH_TICK);
        })
        .expect("spawning the epoch ticker thread");
}
