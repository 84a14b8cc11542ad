//! Deployed components shared by every node of a fleet: `PUT /api/plugins/{id}`
//! stores a component once, by content hash, and each node loads the current one.
//!
//! Only a store that several nodes share implements this (PostgreSQL). On one node
//! with SQLite a deploy is written into the plugins folder instead, where hot reload
//! picks it up, so the folder stays the one place a single host loads plugins from.

use anyhow::Result;
use serde::Serialize;

use super::UnixMs;

/// Which component a plugin runs fleet-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedComponent {
    pub plugin: String,
    /// Lowercase hex SHA-256 of the component bytes.
    pub sha256: String,
    pub deployed_at: UnixMs,
}

#[async_trait::async_trait]
pub trait ComponentStore: Send + Sync + 'static {
    /// Stores `bytes` under their SHA-256 (once, however often they are deployed)
    /// and makes them `plugin`'s current component, in one transaction.
    async fn deploy(&self, plugin: &str, bytes: Vec<u8>, now: UnixMs) -> Result<DeployedComponent>;

    /// The current component of every deployed plugin.
    async fn deployed(&self) -> Result<Vec<DeployedComponent>>;

    /// The bytes stored under `sha256`, if any.
    async fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
}
