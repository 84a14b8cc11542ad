//! A loaded plugin: one compiled component, pre-instantiated once, with a fresh
//! `Store` and instance for every call so that no state (or trap) carries over.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Store, UpdateDeadline};

use crate::artifact_cache::Source;
use crate::bindings::{
    Manifest, Plugin, PluginError, PluginPre, PollOutcome, StoredEvent, WebhookOutcome,
    WebhookRequest, GUEST_EXPORT_V0_1_0,
};
use crate::config::PluginConfig;
use crate::host_memory::{BudgetExceeded, HostMemoryBudget};
use crate::keyvalue::{KeyValue, Mode};
use crate::limits::{self, PluginLimits, QUEUE_WAIT};
use crate::metrics::{Call, CallFailure};
use crate::plugin_state::{PluginIdentity, PluginState};
use crate::runtime::Runtime;
use crate::store::StateChange;

/// How long one call may run when `[plugins.<id>] timeout` does not say.
pub const DEFAULT_CALL_TIMEOUT: Duration = limits::DEFAULT_TIMEOUT;

/// A plugin that compiled, linked and described itself; ready to take calls.
pub struct LoadedPlugin {
    pub identity: Arc<PluginIdentity>,
    pub manifest: Manifest,
    /// Hex SHA-256 of the component bytes this version was loaded from.
    pub sha256: String,
    pub loaded_at: SystemTime,
    /// Whether this load compiled the component (`false`: it came from the cache).
    pub compiled: bool,
    pub limits: PluginLimits,
    /// One permit per call allowed to run at once (`max_concurrent_calls`); a
    /// call holds its permit until its instance is dropped.
    slots: tokio::sync::Semaphore,
    runtime: Runtime,
    pre: PluginPre<PluginState>,
}

/// Why a call produced no answer from the plugin. A `PluginError` is an answer and
/// is returned inside `Ok`.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
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
        let limits = PluginLimits::from_config(id, config)?;
        let compile_runtime = runtime.clone();
        let key = sha256.clone();
        let (component, source) =
            tokio::task::spawn_blocking(move || compile_runtime.component(&bytes, &key))
                .await
                .context("compile task panicked")?
                .context("not a loadable WebAssembly component")?;
        check_world(runtime, &component)?;
        let instance_pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component needs imports that hookhost does not provide")?;
        let pre = PluginPre::new(instance_pre)
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
            sha256,
            loaded_at: SystemTime::now(),
            compiled: source == Source::Compiled,
            slots: tokio::sync::Semaphore::new(limits.max_concurrent_calls),
            limits,
            runtime: runtime.clone(),
            pre,
        };
        let manifest = plugin
            .call(Call::Describe, |plugin, store| {
                Box::pin(async move { plugin.hookhost_plugin_guest().call_describe(store).await })
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

    pub async fn handle_webhook(
        &self,
        request: WebhookRequest,
    ) -> Result<Result<WebhookOutcome, PluginError>, CallError> {
        self.call(Call::Webhook, move |plugin, store| {
            Box::pin(async move {
                plugin
                    .hookhost_plugin_guest()
                    .call_handle_webhook(store, &request)
                    .await
            })
        })
        .await
    }

    /// Calls `poll`; the `state` writes it made come back beside its outcome,
    /// unsaved, for the caller to save with the outcome (see `keyvalue`).
    pub async fn poll(
        &self,
        cursor: Option<String>,
    ) -> Result<(Result<PollOutcome, PluginError>, Vec<StateChange>), CallError> {
        let result = self
            .call_in(Call::Poll, Mode::staged(), move |plugin, store| {
                Box::pin(async move {
                    plugin
                        .hookhost_plugin_guest()
                        .call_poll(store, cursor.as_deref())
                        .await
                })
            })
            .await
            .map(|(outcome, kv)| (outcome, kv.into_staged()));
        let ok = matches!(result, Ok((Ok(_), _)));
        self.runtime.metrics.poll_finished(self.id(), ok);
        result
    }

    pub async fn on_event(&self, event: StoredEvent) -> Result<Result<(), PluginError>, CallError> {
        self.call(Call::OnEvent, move |plugin, store| {
            Box::pin(async move {
                plugin
                    .hookhost_plugin_guest()
                    .call_on_event(store, &event)
                    .await
            })
        })
        .await
    }

    /// Runs `f` against a fresh instance in a fresh store, bounded by the call
    /// timeout, with `state` writes going straight to the store.
    async fn call<R, F>(&self, kind: Call, f: F) -> Result<R, CallError>
    where
        F: for<'a> FnOnce(
            &'a Plugin,
            &'a mut Store<PluginState>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>,
        >,
    {
        self.call_in(kind, Mode::WriteThrough, f)
            .await
            .map(|(value, _)| value)
    }

    /// As `call`, with `state` in `mode`; returns the call's `state` view as well.
    async fn call_in<R, F>(&self, kind: Call, mode: Mode, f: F) -> Result<(R, KeyValue), CallError>
    where
        F: for<'a> FnOnce(
            &'a Plugin,
            &'a mut Store<PluginState>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = wasmtime::Result<R>> + Send + 'a>,
        >,
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
                &self.runtime.engine,
                PluginState::new(self.identity.clone(), &self.limits, kv, budget),
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

/// Hex SHA-256 of a component's bytes: its identity in the API, logs and cache.
pub fn content_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Says precisely what is wrong when a component targets another world or version.
fn check_world(runtime: &Runtime, component: &Component) -> Result<()> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(&runtime.engine).map(|(name, _)| name).collect();
    if exports.contains(&GUEST_EXPORT_V0_1_0) {
        return Ok(());
    }
    if let Some(other) = exports
        .iter()
        .find(|name| name.starts_with("hookhost:plugin/guest@"))
    {
        bail!("the component exports {other}, a version this host does not support (it supports {GUEST_EXPORT_V0_1_0})");
    }
    Err(anyhow!(
        "the component does not export {GUEST_EXPORT_V0_1_0}, so it was not built for the hookhost plugin world (its exports: {})",
        if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
    ))
}
