//! A loaded plugin: one compiled component, pre-instantiated once, with a fresh
//! `Store` and instance for every call so that no state (or trap) carries over.
//!
//! What a call returns is held to the plugin's own manifest here, where every
//! caller has to pass: events of a kind outside its `emits` are refused, so no
//! plugin can pass its events off as another's (`github.push` from `evil`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::{PoolConcurrencyLimitError, Store, UpdateDeadline};

use crate::config::PluginConfig;
use crate::metrics::{Call, CallFailure, Refusal};
use crate::plugins::artifact_cache::Source;
use crate::plugins::bindings::{
    Event, Manifest, Plugin, PluginError, PluginPre, PollOutcome, StoredEvent, WebhookOutcome,
    WebhookRequest, WitVersion,
};
use crate::plugins::call_state::{CallState, PluginIdentity};
use crate::plugins::host_memory::{BudgetExceeded, HostMemoryBudget};
use crate::plugins::imports::state::{KeyValue, Mode};
use crate::plugins::limits::{self, PluginLimits, QUEUE_WAIT};
use crate::plugins::memory_init::InitStrategy;
use crate::plugins::runtime::Runtime;
use crate::plugins::subscriptions::covers;
use crate::store::StateChange;

/// How long one call may run when `[plugins.<id>] timeout` does not say.
pub const DEFAULT_CALL_TIMEOUT: Duration = limits::DEFAULT_TIMEOUT;

/// What the closure given to `LoadedPlugin::call` returns: the guest call, running
/// against the instance and store it borrows.
type CallFuture<'a, R> =
    std::pin::Pin<Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// A plugin that compiled, linked and described itself; ready to take calls.
pub struct LoadedPlugin {
    pub identity: Arc<PluginIdentity>,
    pub manifest: Manifest,
    /// The contract version the component was built for; an older one's calls are
    /// converted to and from the host's types (`bindings`).
    pub wit: WitVersion,
    /// Hex SHA-256 of the component bytes this version was loaded from.
    pub sha256: String,
    pub loaded_at: SystemTime,
    /// Whether this load compiled the component (`false`: it came from the cache).
    pub compiled: bool,
    /// How each call's fresh instance gets its initial memory; also which of the
    /// runtime's engines runs the component.
    pub memory_init: InitStrategy,
    pub limits: PluginLimits,
    /// The plugins whose events this one may get as a handler (`[plugins.<id>]
    /// sources`); `None`: any.
    pub sources: Option<Vec<String>>,
    /// One permit per call allowed to run at once (`max_concurrent_calls`); a
    /// call holds its permit until its instance is dropped.
    slots: tokio::sync::Semaphore,
    runtime: Runtime,
    pre: PluginPre<CallState>,
}

/// Why a call produced no answer from the plugin that the host can use. A
/// `PluginError` is an answer and is returned inside `Ok`.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin emitted an event whose kind its manifest's `emits` does not cover;
    /// the whole outcome is refused, so nothing of the call is stored. `kind` and
    /// `emits` are the plugin's own words, shortened for the log.
    #[error("plugin {plugin} {version} emitted an event of kind {kind}, which its manifest's emits {emits} do not cover; none of the call's events were accepted")]
    UndeclaredKind {
        plugin: Arc<str>,
        version: String,
        kind: String,
        emits: String,
    },
    #[error("plugin {plugin} {version} did not finish within {timeout:?}")]
    Timeout {
        plugin: Arc<str>,
        version: String,
        timeout: Duration,
    },
    #[error("plugin {plugin} {version} trapped: {trap:?}")]
    Trap {
        plugin: Arc<str>,
        version: String,
        trap: anyhow::Error,
    },
    #[error("plugin {plugin} {version} already runs {limit} calls (max_concurrent_calls); no slot freed within {QUEUE_WAIT:?}")]
    Busy {
        plugin: Arc<str>,
        version: String,
        limit: usize,
    },
    /// The host's instance pool (shared by every plugin) had no room for this
    /// call's instance: the host is at capacity, the call itself did nothing
    /// wrong and may succeed shortly (503, and no attempt spent on a delivery).
    #[error("plugin {plugin} {version} got no instance: the host's instance pool is exhausted ({reason})")]
    PoolExhausted {
        plugin: Arc<str>,
        version: String,
        reason: String,
    },
}

impl CallError {
    /// Whether the call was refused for want of capacity (a slot or an
    /// instance) before the plugin ran: retrying later may succeed, and a
    /// delivery refused so has not been attempted.
    pub fn is_capacity(&self) -> bool {
        matches!(
            self,
            CallError::Busy { .. } | CallError::PoolExhausted { .. }
        )
    }
}

impl LoadedPlugin {
    /// Compiles `bytes`, checks that the component implements the `plugin` world and
    /// that the host provides everything it imports, and calls `describe`.
    ///
    /// Compilation is CPU-bound (seconds for a Python or JS component), so it runs on
    /// the blocking pool rather than on the async runtime's workers.
    /// `sha256` is `content_sha256(&bytes)`, which the caller has already computed to
    /// decide whether to load at all.
    pub async fn load(
        runtime: &Runtime,
        id: &str,
        bytes: Vec<u8>,
        sha256: String,
        config: &PluginConfig,
    ) -> Result<Self> {
        let limits = config.limits(id)?;
        let compile_runtime = runtime.clone();
        let key = sha256.clone();
        let wanted = config.memory_init;
        // Reading the data sections walks the whole component, so it runs off the
        // async runtime too.
        let (memory_init, compiled) = tokio::task::spawn_blocking(move || {
            let memory_init = wanted.resolve(&bytes);
            let compiled = compile_runtime.engine(memory_init).component(&bytes, &key);
            (memory_init, compiled)
        })
        .await
        .context("compile task panicked")?;
        let (component, source) = compiled.context("not a loadable WebAssembly component")?;
        let engine = runtime.engine(memory_init);
        let wit = WitVersion::of(&engine.engine, &component)?;
        let instance_pre = engine
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component needs imports that hookhost does not provide")?;
        let pre = PluginPre::new(wit, instance_pre)
            .map_err(anyhow::Error::from)
            .context("the component does not match the plugin world")?;

        let mut plugin = LoadedPlugin {
            identity: Arc::new(PluginIdentity {
                id: id.into(),
                version: String::new(),
                config: config.values.clone(),
                allowed_hosts: config.allowed_hosts.clone().into(),
            }),
            manifest: Manifest {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                emits: Vec::new(),
                poll_interval_seconds: None,
                subscriptions: Vec::new(),
            },
            wit,
            sha256,
            loaded_at: SystemTime::now(),
            compiled: source == Source::Compiled,
            memory_init,
            sources: config.sources.clone(),
            slots: tokio::sync::Semaphore::new(limits.max_concurrent_calls),
            limits,
            runtime: runtime.clone(),
            pre,
        };
        let manifest = plugin
            .call(Call::Describe, |plugin, store| {
                Box::pin(async move { plugin.call_describe(store).await })
            })
            .await
            .context("describe() failed")?;
        plugin.identity = Arc::new(PluginIdentity {
            id: id.into(),
            version: manifest.version.clone(),
            config: config.values.clone(),
            allowed_hosts: config.allowed_hosts.clone().into(),
        });
        plugin.manifest = manifest;
        Ok(plugin)
    }

    /// The longest one call may run.
    pub fn timeout(&self) -> Duration {
        self.limits.timeout
    }

    pub fn id(&self) -> &str {
        &self.identity.id
    }

    /// Whether this plugin, as a handler, may get events that plugin `source`
    /// emitted (`[plugins.<id>] sources`).
    pub fn accepts_events_from(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|sources| sources.iter().any(|allowed| allowed == source))
    }

    /// Calls `handle-webhook`. An outcome with an event outside the manifest's
    /// `emits` is an `UndeclaredKind` error, never an outcome. The call's share of
    /// `request` is dropped when this returns, so the caller can take it back.
    pub async fn handle_webhook(
        &self,
        request: Arc<WebhookRequest>,
    ) -> Result<Result<WebhookOutcome, PluginError>, CallError> {
        let answer = self
            .call(Call::Webhook, move |plugin, store| {
                Box::pin(async move { plugin.call_handle_webhook(store, &request).await })
            })
            .await?;
        if let Ok(outcome) = &answer {
            self.check_emits(Call::Webhook, &outcome.events)?;
        }
        Ok(answer)
    }

    /// Refuses `events` when any of them has a kind the manifest's `emits` does
    /// not cover (an empty `emits` covers none), and counts the refusal.
    fn check_emits(&self, call: Call, events: &[Event]) -> Result<(), CallError> {
        let emits = &self.manifest.emits;
        let Some(undeclared) = events.iter().find(|event| !covers(emits, &event.kind)) else {
            return Ok(());
        };
        self.runtime
            .metrics
            .events_refused(self.id(), call, Refusal::UndeclaredKind);
        Err(CallError::UndeclaredKind {
            plugin: self.identity.id.clone(),
            version: self.identity.version.clone(),
            kind: clipped(&format!("{:?}", undeclared.kind)),
            emits: clipped(&format!("{emits:?}")),
        })
    }

    /// Calls `poll`; the `state` writes it made come back beside its outcome,
    /// unsaved, for the caller to save with the outcome (see `keyvalue`).
    /// An outcome with an event outside the manifest's `emits` is an
    /// `UndeclaredKind` error, and its `state` writes are dropped with it.
    pub async fn poll(
        &self,
        cursor: Option<String>,
    ) -> Result<(Result<PollOutcome, PluginError>, Vec<StateChange>), CallError> {
        let result = self
            .call_in(Call::Poll, Mode::staged(), move |plugin, store| {
                Box::pin(async move { plugin.call_poll(store, cursor.as_deref()).await })
            })
            .await
            .map(|(outcome, kv)| (outcome, kv.into_staged()))
            .and_then(|(outcome, staged)| {
                if let Ok(outcome) = &outcome {
                    self.check_emits(Call::Poll, &outcome.events)?;
                }
                Ok((outcome, staged))
            });
        let ok = matches!(result, Ok((Ok(_), _)));
        self.runtime.metrics.poll_finished(self.id(), ok);
        result
    }

    pub async fn on_event(&self, event: StoredEvent) -> Result<Result<(), PluginError>, CallError> {
        self.call(Call::OnEvent, move |plugin, store| {
            Box::pin(async move { plugin.call_on_event(store, event).await })
        })
        .await
    }

    /// Runs `f` against a fresh instance in a fresh store, bounded by the call
    /// timeout, with `state` writes going straight to the store.
    async fn call<R, F>(&self, kind: Call, f: F) -> Result<R, CallError>
    where
        F: for<'a> FnOnce(&'a Plugin, &'a mut Store<CallState>) -> CallFuture<'a, R>,
    {
        self.call_in(kind, Mode::WriteThrough, f)
            .await
            .map(|(value, _)| value)
    }

    /// As `call`, with `state` in `mode`; returns the call's `state` view as well.
    async fn call_in<R, F>(&self, kind: Call, mode: Mode, f: F) -> Result<(R, KeyValue), CallError>
    where
        F: for<'a> FnOnce(&'a Plugin, &'a mut Store<CallState>) -> CallFuture<'a, R>,
    {
        let busy = || CallError::Busy {
            plugin: self.identity.id.clone(),
            version: self.identity.version.clone(),
            limit: self.limits.max_concurrent_calls,
        };
        let _slot = match tokio::time::timeout(QUEUE_WAIT, self.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; treat it like a full queue anyway.
            Ok(Err(_)) | Err(_) => return Err(busy()),
        };
        let timeout = self.limits.timeout;
        let run = async {
            let kv = KeyValue::new(
                self.identity.id.clone(),
                self.runtime.state_store.clone(),
                mode,
            );
            let budget =
                HostMemoryBudget::new(self.identity.id.clone(), limits::HOST_MEMORY_BUDGET);
            let mut store = Store::new(
                &self.runtime.engine(self.memory_init).engine,
                CallState::new(
                    self.identity.clone(),
                    &self.limits,
                    kv,
                    budget,
                    self.runtime.metrics.clone(),
                ),
            );
            store.limiter(|state| &mut state.limits);
            // Bounds on what the guest can make the host allocate; see `limits`.
            store.set_hostcall_fuel(limits::HOSTCALL_FUEL);
            store.set_max_component_handles(limits::COMPONENT_HANDLES);
            // Give the executor back every epoch tick, so that a plugin spinning on
            // the CPU cannot hold a runtime worker; the deadline itself is enforced
            // by the timeout around this future, which then drops the instance.
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
            let plugin = self.pre.instantiate_async(&mut store).await?;
            let value = f(&plugin, &mut store).await?;
            Ok::<_, wasmtime::Error>((value, store.into_data().kv))
        };
        let metrics = &self.runtime.metrics;
        let _in_use = metrics.call_started(self.id(), kind);
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if pool_exhausted(&error).is_some() => {
                let reason = pool_exhausted(&error).unwrap_or_default();
                metrics.call_failed(self.id(), kind, CallFailure::PoolExhausted);
                Err(CallError::PoolExhausted {
                    plugin: self.identity.id.clone(),
                    version: self.identity.version.clone(),
                    reason,
                })
            }
            Ok(Err(trap)) => {
                let failure = if trap.is::<BudgetExceeded>() {
                    CallFailure::MemoryBudget
                } else {
                    CallFailure::Trap
                };
                metrics.call_failed(self.id(), kind, failure);
                Err(CallError::Trap {
                    plugin: self.identity.id.clone(),
                    version: self.identity.version.clone(),
                    trap: trap.into(),
                })
            }
            Err(_) => {
                metrics.call_failed(self.id(), kind, CallFailure::Timeout);
                Err(CallError::Timeout {
                    plugin: self.identity.id.clone(),
                    version: self.identity.version.clone(),
                    timeout,
                })
            }
        }
    }
}

/// What of the pooling allocator ran out, when that is why `error` happened
/// (`runtime::engine_config` sizes the pool): an instance, memory, table or
/// stack for the call could not be had while other calls hold them.
fn pool_exhausted(error: &wasmtime::Error) -> Option<String> {
    error
        .downcast_ref::<PoolConcurrencyLimitError>()
        .map(|limit| limit.to_string())
}

/// The longest piece of a plugin's own text (a kind, its `emits`) an error quotes:
/// a refusal costs the log one line of bounded length.
const MAX_QUOTED_CHARS: usize = 200;

fn clipped(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}... ({} bytes)", &text[..end], text.len()),
        None => text.to_string(),
    }
}

/// Hex SHA-256 of a component's bytes: its identity in the API, logs and cache.
pub fn content_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::{clipped, MAX_QUOTED_CHARS};

    #[test]
    fn quoted_plugin_text_is_cut_at_a_character_boundary_and_says_how_long_it_was() {
        assert_eq!(clipped("\"github.push\""), "\"github.push\"");
        let longest_whole = "ü".repeat(MAX_QUOTED_CHARS);
        assert_eq!(clipped(&longest_whole), longest_whole);
        let long = "ü".repeat(MAX_QUOTED_CHARS * 10);
        let shown = clipped(&long);
        assert!(shown.starts_with(&"ü".repeat(MAX_QUOTED_CHARS)), "{shown}");
        assert!(
            shown.ends_with(&format!("... ({} bytes)", long.len())),
            "{shown}"
        );
        assert!(shown.len() < long.len());
    }
}
