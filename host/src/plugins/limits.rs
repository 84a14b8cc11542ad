//! What one plugin may consume: the per-plugin limits (`[plugins.<id>]` keys, with
//! safe defaults) and the host-wide caps wasmtime applies on a guest's behalf.
//!
//! A limit that is exceeded ends the call, never the host: the call traps (memory,
//! tables, instances, hostcall data, host memory budget), is interrupted (`timeout`), is answered with
//! 503 (`max_concurrent_calls`) or 500 (`max_response_bytes`, `max_event_bytes`),
//! or loses its excess log output (`max_log_bytes`).

use std::time::Duration;

/// The per-plugin limits after defaults are applied. Built once per load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLimits {
    /// `timeout`: the longest one call may run before it is interrupted (504).
    pub timeout: Duration,
    /// `memory`: the largest a linear memory of the plugin may grow.
    pub memory: usize,
    /// `table_elements`: the most elements one table may grow to.
    pub table_elements: usize,
    /// `instances`: the most core instances one instantiation may create.
    pub instances: usize,
    /// `max_concurrent_calls`: calls into the plugin running at once; more wait
    /// up to `QUEUE_WAIT`, then get 503 with `Retry-After`.
    pub max_concurrent_calls: usize,
    /// `max_response_bytes`: the largest response body a plugin may answer with.
    pub max_response_bytes: usize,
    /// `max_event_bytes`: the largest payload of one event.
    pub max_event_bytes: usize,
    /// `max_log_bytes`: log output (the `log` import, stdout, stderr) kept per call.
    pub max_log_bytes: usize,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Python components start at about 12.4 MiB; this leaves room for real work.
pub const DEFAULT_MEMORY: usize = 128 * MIB;
/// JS components need about 7,700 elements.
pub const DEFAULT_TABLE_ELEMENTS: usize = 10_000;
/// A Python component has 14 core instances; JS and Go fewer.
pub const DEFAULT_INSTANCES: usize = 64;
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 16;
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = MIB;
/// Payloads are often the request body itself (limit 1 MiB by default), re-encoded.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * MIB;
pub const DEFAULT_MAX_LOG_BYTES: usize = 64 * 1024;

/// How long a call waits for a free slot when the plugin is at
/// `max_concurrent_calls`, before it is answered 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// The largest `memory` a plugin may be given. The pooling allocator reserves
/// every memory slot at this size (`runtime::engine_config`), so a larger
/// per-plugin value could never be honoured; config asking for more is refused.
pub const MAX_MEMORY: usize = 256 * MIB;
/// The largest `table_elements` a plugin may be given: the pool's table slot size.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;
/// The largest `instances`: a store cannot hold more core instances than this
/// without starving the pool (`total_core_instances`) for everyone else.
pub const MAX_INSTANCES: usize = 200;
/// Each engine's pool (one per `memory_init` way) has room for this many live
/// component instances across the plugins it runs.
pub const POOL_COMPONENT_INSTANCES: usize = 100;

// Host-side caps on what a guest can make the host allocate. wasmtime has
// defaults for each; they are set explicitly so that the bound is visible here
// and does not move with an upgrade (advisories GHSA-852m-cvvp-9p4w and
// GHSA-243v-98vx-264h: guest-controlled host allocations through component-model
// hostcalls, resource tables and wasi-http fields).

/// Bytes a guest may pass to the host in one host call (strings and lists in
/// `log`, `crypto`, `config` and WASI calls); wasmtime's default is 128 MiB. The
/// largest legitimate one is HMAC over a webhook body, so this is the body limit's
/// order of magnitude with generous headroom. Exceeding it traps the call.
pub const HOSTCALL_FUEL: usize = 16 * MIB;
/// Live entries in a call's resource table (WASI streams, pollables, HTTP
/// requests and fields); wasmtime's default is 1,000,000. A webhook call needs a
/// few dozen; this stops a guest from filling host memory with handles.
pub const RESOURCE_TABLE_CAPACITY: usize = 10_000;
/// Live component-model handles in one store (`resource.new` without host code
/// in the loop); wasmtime's default is 100,000.
pub const COMPONENT_HANDLES: usize = 10_000;
/// In-memory size of one wasi-http `fields` resource (outbound request headers);
/// wasmtime's default is 128 KiB. Real API calls send a few KiB of headers.
pub const HTTP_FIELD_SIZE_LIMIT: usize = 64 * 1024;
/// Bytes of randomness one `wasi:random` call may ask for; wasmtime's default is
/// 64 MiB. Runtimes ask for seeds and keys of tens of bytes.
pub const MAX_RANDOM_BYTES: u64 = 1024 * 1024;
/// Host memory one call may make the host hold on its behalf, outside its linear
/// memory: wasi:http fields, requests and their bodies, requests in flight, staged
/// `state` writes (`host_memory` says what is charged and what else was checked).
/// Going over it traps the call (500, counted as `memory_budget`). A request in
/// flight is charged under 1 MiB with everything it holds, so this allows dozens
/// at once; real plugins make one or a few.
pub const HOST_MEMORY_BUDGET: usize = 32 * MIB;
/// Bytes one write to an outgoing wasi:http body may carry, which check-write
/// offers; wasmtime's default is 1 MiB. Each unsent body buffers up to
/// `OUTGOING_BODY_BUFFER_CHUNKS + 1` such writes, charged to the budget.
pub const OUTGOING_BODY_CHUNK: usize = 64 * 1024;
/// Writes an outgoing body queues beyond the one in progress (wasmtime's default).
pub const OUTGOING_BODY_BUFFER_CHUNKS: usize = 1;

const MIB: usize = 1024 * 1024;

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            memory: DEFAULT_MEMORY,
            table_elements: DEFAULT_TABLE_ELEMENTS,
            instances: DEFAULT_INSTANCES,
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
        }
    }
}
