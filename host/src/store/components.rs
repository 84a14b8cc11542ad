//! Deployed components shared by every node of a fleet: `PUT /api/plugins/{id}`
//! stores a component once, by content hash, and each node loads the current one;
//! `DELETE /api/plugins/{id}` leaves a tombstone that every node applies; the last
//! `KEPT_VERSIONS` versions of each plugin are kept for `rollback`, older
//! components are deleted.
//!
//! Only a store that several nodes share implements this (PostgreSQL). On one node
//! with SQLite a deploy is written into the plugins folder instead, where hot reload
//! picks it up, so the folder stays the one place a single host loads plugins from.

use anyhow::Result;
use serde::Serialize;

use super::UnixMs;

/// How many versions of each plugin the fleet store keeps for rollback, the
/// current one included. Older components (no longer a recent version of any
/// plugin) are deleted by the deploy, undeploy or rollback that made them old.
pub const KEPT_VERSIONS: usize = 5;

/// Which component a plugin runs fleet-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedComponent {
    pub plugin: String,
    /// Lowercase hex SHA-256 of the component bytes.
    pub sha256: String,
    pub deployed_at: UnixMs,
}

/// What the fleet says about one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// The plugin runs this component on every node.
    Current(DeployedComponent),
    /// The plugin was undeployed: no node runs it, whatever its plugins folder
    /// holds, until a component is deployed (or rolled back to) again.
    Removed { plugin: String, removed_at: UnixMs },
}

impl Deployment {
    pub fn plugin(&self) -> &str {
        match self {
            Deployment::Current(component) => &component.plugin,
            Deployment::Removed { plugin, .. } => plugin,
        }
    }
}

#[async_trait::async_trait]
pub trait ComponentStore: Send + Sync + 'static {
    /// Stores `bytes` under their SHA-256 (once, however often they are deployed)
    /// and makes them `plugin`'s current component, in one transaction.
    async fn deploy(&self, plugin: &str, bytes: Vec<u8>, now: UnixMs) -> Result<DeployedComponent>;

    /// Leaves a tombstone for `plugin`, so that every node unloads it and deletes
    /// its file. Written when the fleet has a current component of `plugin`, or
    /// when `present_here` (the plugin came from a node's folder and was never
    /// deployed through the store). `true` when a tombstone was written; `false`
    /// when there was nothing to remove (unknown, or already removed).
    async fn undeploy(&self, plugin: &str, present_here: bool, now: UnixMs) -> Result<bool>;

    /// Undoes `plugin`'s last deploy: the newest kept version before the current
    /// one (skipping undeploys) becomes current again on every node, and what came
    /// after it is forgotten. `None` when no earlier version is kept; nothing
    /// changes then.
    async fn rollback(&self, plugin: &str, now: UnixMs) -> Result<Option<DeployedComponent>>;

    /// What the fleet says about every plugin it knows: its current component, or
    /// that it was removed.
    async fn deployed(&self) -> Result<Vec<Deployment>>;

    /// The bytes stored under `sha256`, if any.
    async fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
}
