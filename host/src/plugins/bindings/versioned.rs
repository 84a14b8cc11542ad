//! One component, whichever contract version it was built for: `WitVersion`
//! (read from the name of its exported `guest` interface), and `PluginPre` and
//! `Plugin`, enums over the generated types whose calls take and return the
//! host's (newest) types. Generic over the store's data `T`, which is the host's
//! `CallState`.

use anyhow::{anyhow, bail, Result};
use wasmtime::component::{Component, InstancePre};
use wasmtime::{Engine, Store};

use super::{v0_1_0, v0_2_0};
use super::{Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest};

/// A version of the `hookhost:plugin` contract that this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitVersion {
    V0_1_0,
    V0_2_0,
}

impl WitVersion {
    /// Every supported version, newest first.
    pub const ALL: [WitVersion; 2] = [WitVersion::V0_2_0, WitVersion::V0_1_0];

    /// The package with its version, as `/api/plugins` and `hookhost check` show it:
    /// `hookhost:plugin@0.1.0`.
    pub fn package(self) -> &'static str {
        match self {
            WitVersion::V0_1_0 => "hookhost:plugin@0.1.0",
            WitVersion::V0_2_0 => "hookhost:plugin@0.2.0",
        }
    }

    /// The name of the interface a component of this version exports.
    pub fn guest_export(self) -> &'static str {
        match self {
            WitVersion::V0_1_0 => v0_1_0::GUEST_EXPORT,
            WitVersion::V0_2_0 => v0_2_0::GUEST_EXPORT,
        }
    }

    /// The version `component` was built for, from its exports; the newest when it
    /// exports several. The error says precisely what is wrong when it exports
    /// none this host supports.
    pub fn of(engine: &Engine, component: &Component) -> Result<WitVersion> {
        let ty = component.component_type();
        let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
        if let Some(version) = WitVersion::ALL
            .into_iter()
            .find(|version| exports.contains(&version.guest_export()))
        {
            return Ok(version);
        }
        // Oldest first: "does not export hookhost:plugin/guest@0.1.0 or ...".
        let mut supported = WitVersion::ALL.map(WitVersion::guest_export);
        supported.reverse();
        if let Some(other) = exports
            .iter()
            .find(|name| name.starts_with("hookhost:plugin/guest@"))
        {
            bail!(
                "the component exports {other}, a version this host does not support (it supports {})",
                supported.join(" and ")
            );
        }
        Err(anyhow!(
            "the component does not export {}, so it was not built for the hookhost plugin world (its exports: {})",
            supported.join(" or "),
            if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
        ))
    }
}

/// A component pre-instantiated against the bindings of its version.
pub enum PluginPre<T: 'static> {
    V0_1_0(v0_1_0::PluginPre<T>),
    V0_2_0(v0_2_0::PluginPre<T>),
}

impl<T: Send + 'static> PluginPre<T> {
    /// Fails when the component does not match `version`'s world.
    pub fn new(version: WitVersion, instance_pre: InstancePre<T>) -> wasmtime::Result<Self> {
        Ok(match version {
            WitVersion::V0_1_0 => PluginPre::V0_1_0(v0_1_0::PluginPre::new(instance_pre)?),
            WitVersion::V0_2_0 => PluginPre::V0_2_0(v0_2_0::PluginPre::new(instance_pre)?),
        })
    }

    pub async fn instantiate_async(&self, store: &mut Store<T>) -> wasmtime::Result<Plugin> {
        Ok(match self {
            PluginPre::V0_1_0(pre) => Plugin::V0_1_0(pre.instantiate_async(store).await?),
            PluginPre::V0_2_0(pre) => Plugin::V0_2_0(pre.instantiate_async(store).await?),
        })
    }
}

/// One instance of a component; each call converts at the edge for older versions.
pub enum Plugin {
    V0_1_0(v0_1_0::Plugin),
    V0_2_0(v0_2_0::Plugin),
}

impl Plugin {
    // Each takes the store of its call; `T` is `CallState`.
    pub async fn call_describe<T: Send>(&self, store: &mut Store<T>) -> wasmtime::Result<Manifest> {
        match self {
            Plugin::V0_1_0(p) => Ok(v0_1_0::manifest(
                p.hookhost_plugin_guest().call_describe(store).await?,
            )),
            Plugin::V0_2_0(p) => p.hookhost_plugin_guest().call_describe(store).await,
        }
    }

    pub async fn call_handle_webhook<T: Send>(
        &self,
        store: &mut Store<T>,
        request: &WebhookRequest,
    ) -> wasmtime::Result<Result<WebhookOutcome, PluginError>> {
        match self {
            Plugin::V0_1_0(p) => {
                let request = v0_1_0::webhook_request(request);
                let answer = p
                    .hookhost_plugin_guest()
                    .call_handle_webhook(store, &request)
                    .await?;
                Ok(v0_1_0::webhook_answer(answer))
            }
            Plugin::V0_2_0(p) => {
                p.hookhost_plugin_guest()
                    .call_handle_webhook(store, request)
                    .await
            }
        }
    }

    pub async fn call_poll<T: Send>(
        &self,
        store: &mut Store<T>,
        cursor: Option<&str>,
    ) -> wasmtime::Result<Result<PollOutcome, PluginError>> {
        match self {
            Plugin::V0_1_0(p) => Ok(v0_1_0::poll_answer(
                p.hookhost_plugin_guest().call_poll(store, cursor).await?,
            )),
            Plugin::V0_2_0(p) => p.hookhost_plugin_guest().call_poll(store, cursor).await,
        }
    }

    pub async fn call_on_event<T: Send>(
        &self,
        store: &mut Store<T>,
        event: StoredEvent,
    ) -> wasmtime::Result<Result<(), PluginError>> {
        match self {
            Plugin::V0_1_0(p) => {
                let event = v0_1_0::stored_event(event);
                let answer = p
                    .hookhost_plugin_guest()
                    .call_on_event(store, &event)
                    .await?;
                Ok(v0_1_0::on_event_answer(answer))
            }
            Plugin::V0_2_0(p) => p.hookhost_plugin_guest().call_on_event(store, &event).await,
        }
    }
}
