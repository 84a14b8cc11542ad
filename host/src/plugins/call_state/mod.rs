//! `CallState`: what one call into a plugin owns (its WASI context, resource table,
//! limits and host memory budget), and the host side of the plugin's imports
//! (`config`, `log`, `crypto`; `state` delegates to `imports::state`, `crypto` to
//! `imports::crypto`), in the newest contract version; older versions forward to
//! these (`bindings::v0_1_0`).
//! A fresh one is built for every call, so nothing leaks from one call to the next.

mod v0_1_0;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::metrics::Metrics;
use crate::plugins::bindings::{config, crypto, log, state, types};
use crate::plugins::host_memory::{BudgetExceeded, Charge, HostMemoryBudget};
use crate::plugins::http_budget::held::HeldHttpResources;
use crate::plugins::imports;
use crate::plugins::imports::guest_output::{Channel, GuestOutput, LogBudget};
use crate::plugins::imports::state::KeyValue;
use crate::plugins::limits::{self, PluginLimits};
use crate::plugins::outbound::allowlist::AllowedHost;
use crate::plugins::outbound::OutboundPolicy;

/// Who a plugin is, for logs and errors; shared by every call to one loaded version.
#[derive(Debug)]
pub struct PluginIdentity {
    pub id: Arc<str>,
    /// The version from the plugin's manifest; empty while `describe` has not run yet.
    pub version: String,
    /// `[plugins.<id>] config`: the only configuration this plugin can read.
    pub config: BTreeMap<String, String>,
    /// `[plugins.<id>] allowed_hosts`: where its outbound HTTP may go.
    pub allowed_hosts: Arc<[AllowedHost]>,
}

/// The wasmtime store data of one call.
pub struct CallState {
    identity: Arc<PluginIdentity>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: OutboundPolicy,
    table: ResourceTable,
    pub limits: StoreLimits,
    /// This call's view of the plugin's `state`.
    pub kv: KeyValue,
    log_budget: Arc<LogBudget>,
    /// What the wasi:http resources in `table` are charged to the call's host
    /// memory budget (see `http_budget`).
    held_http: HeldHttpResources,
    /// What this call's staged `state` writes are charged (see `imports::state`).
    staged_state: Charge,
}

impl CallState {
    /// `budget` is the call's host memory budget (`limits::HOST_MEMORY_BUDGET`).
    /// `metrics` is where this call's refused outbound requests are counted.
    pub fn new(
        identity: Arc<PluginIdentity>,
        plugin_limits: &PluginLimits,
        kv: KeyValue,
        budget: Arc<HostMemoryBudget>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let log_budget = Arc::new(LogBudget::new(
            identity.id.clone(),
            plugin_limits.max_log_bytes,
        ));
        // Nothing is granted: no preopened directories, no environment, no
        // arguments, no sockets or name lookups; HTTP only through wasi:http and
        // only to allowed hosts (see `outbound`). Clocks and randomness are allowed
        // because guest languages' runtimes need them (timestamps, hash seeds).
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::new(
                identity.id.clone(),
                Channel::Stdout,
                log_budget.clone(),
            ))
            .stderr(GuestOutput::new(
                identity.id.clone(),
                Channel::Stderr,
                log_budget.clone(),
            ))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(limits::MAX_RANDOM_BYTES)
            .build();
        // Growing past a limit traps, so a runaway plugin ends its own call with
        // a clear error instead of limping on with failed allocations.
        let limits = StoreLimitsBuilder::new()
            .memory_size(plugin_limits.memory)
            .table_elements(plugin_limits.table_elements)
            .instances(plugin_limits.instances)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits::HTTP_FIELD_SIZE_LIMIT);
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits::RESOURCE_TABLE_CAPACITY);
        let outbound = OutboundPolicy {
            plugin: identity.id.clone(),
            allowed_hosts: identity.allowed_hosts.clone(),
            metrics,
            in_flight: None,
        };
        Self {
            identity,
            wasi,
            http,
            outbound,
            table,
            limits,
            kv,
            log_budget,
            held_http: HeldHttpResources::new(budget.clone()),
            staged_state: budget.empty_charge(),
        }
    }

    /// The wasi:http view together with what its resources are charged, for the
    /// wrappers in `http_budget`.
    pub(crate) fn http_and_held(&mut self) -> (WasiHttpCtxView<'_>, &mut HeldHttpResources) {
        (
            WasiHttpCtxView {
                ctx: &mut self.http,
                table: &mut self.table,
                hooks: &mut self.outbound,
            },
            &mut self.held_http,
        )
    }

    /// Moves the charge of the outgoing request at `rep` into the send about to
    /// start, grown by what a request in flight holds; `OutboundPolicy` takes it.
    pub(crate) fn reserve_send(&mut self, rep: u32) -> Result<(), BudgetExceeded> {
        self.outbound.in_flight = Some(self.held_http.send(&self.table, rep)?);
        Ok(())
    }

    /// Refunds a reservation the send did not take: the request was refused
    /// before it was handed to `OutboundPolicy`, and is gone.
    pub(crate) fn release_unsent(&mut self) {
        self.outbound.in_flight = None;
    }

    /// Charges the staged `state` writes as they stand now.
    fn charge_staged_state(&mut self) -> Result<(), BudgetExceeded> {
        const WHAT: &str = "staged state writes";
        let bytes = self.kv.staged_bytes();
        if self.staged_state.resize(WHAT, bytes).is_ok() {
            return Ok(());
        }
        self.held_http.release_dropped(&self.table);
        self.staged_state.resize(WHAT, bytes)
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl types::Host for CallState {}

impl config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        self.identity.config.get(&key).cloned()
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        if !self.log_budget.spend(message.len()) {
            return;
        }
        let plugin = &*self.identity.id;
        let version = &self.identity.version;
        match level {
            log::Level::Trace => tracing::trace!(plugin, version, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, version, "{message}"),
            log::Level::Info => tracing::info!(plugin, version, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, version, "{message}"),
            log::Level::Error => tracing::error!(plugin, version, "{message}"),
        }
    }
}

// Writes that a poll stages are held in host memory until the poll ends, so each
// is charged; one that takes the call over its budget traps it.
impl state::Host for CallState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, state::StateError>> {
        Ok(self.kv.get(key).await)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), state::StateError>> {
        let result = self.kv.set(key, value).await;
        self.charge_staged_state()?;
        Ok(result)
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), state::StateError>> {
        let result = self.kv.delete(key).await;
        self.charge_staged_state()?;
        Ok(result)
    }
}

impl crypto::Host for CallState {
    fn hmac_sha256(&mut self, key: Vec<u8>, data: Vec<u8>) -> Vec<u8> {
        imports::crypto::hmac_sha256(&key, &data)
    }

    fn hmac_sha1(&mut self, key: Vec<u8>, data: Vec<u8>) -> Vec<u8> {
        imports::crypto::hmac_sha1(&key, &data)
    }

    fn hmac_sha512(&mut self, key: Vec<u8>, data: Vec<u8>) -> Vec<u8> {
        imports::crypto::hmac_sha512(&key, &data)
    }

    fn ed25519_verify(
        &mut self,
        public_key: Vec<u8>,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> bool {
        imports::crypto::ed25519_verify(&public_key, &message, &signature)
    }

    fn sha256(&mut self, data: Vec<u8>) -> Vec<u8> {
        imports::crypto::sha256(&data)
    }

    fn constant_time_eq(&mut self, a: Vec<u8>, b: Vec<u8>) -> bool {
        imports::crypto::constant_time_eq(&a, &b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> CallState {
        CallState::new(
            Arc::new(PluginIdentity {
                id: "t".into(),
                version: "1".into(),
                config: BTreeMap::from([("secret".into(), "x".into())]),
                allowed_hosts: Arc::new([]),
            }),
            &PluginLimits::default(),
            KeyValue::new(
                "t".into(),
                None,
                crate::plugins::imports::state::Mode::WriteThrough,
            ),
            HostMemoryBudget::new("t".into(), limits::HOST_MEMORY_BUDGET),
            Arc::default(),
        )
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = crypto::Host::hmac_sha256(
            &mut state(),
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
        );
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        let mut s = state();
        assert!(crypto::Host::constant_time_eq(
            &mut s,
            b"abc".to_vec(),
            b"abc".to_vec()
        ));
        assert!(!crypto::Host::constant_time_eq(
            &mut s,
            b"abc".to_vec(),
            b"abd".to_vec()
        ));
        assert!(!crypto::Host::constant_time_eq(
            &mut s,
            b"abc".to_vec(),
            b"ab".to_vec()
        ));
    }

    #[test]
    fn config_sees_only_its_own_keys() {
        let mut s = state();
        assert_eq!(
            config::Host::get(&mut s, "secret".into()).as_deref(),
            Some("x")
        );
        assert_eq!(config::Host::get(&mut s, "other".into()), None);
    }
}
