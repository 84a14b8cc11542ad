//! Deployed components in PostgreSQL: each component once, by content hash
//! (`components`), and which one each plugin runs (`deployments`).
//!
//! A deploy is its own transaction rather than a job of the writers' groups: it
//! carries a whole component (megabytes), and a group should not wait on that.

use anyhow::{anyhow, Context, Result};
use sha2::{Digest, Sha256};

use super::pool::GROUP_TIMEOUT;
use super::PostgresStore;
use crate::store::components::{ComponentStore, DeployedComponent};
use crate::store::UnixMs;

#[async_trait::async_trait]
impl ComponentStore for PostgresStore {
    async fn deploy(&self, plugin: &str, bytes: Vec<u8>, now: UnixMs) -> Result<DeployedComponent> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let mut client = self.client().await?;
        let deploy = async {
            let tx = client.transaction().await?;
            // DO NOTHING: the same bytes deployed again (or to another plugin) are
            // stored once.
            tx.execute(
                "INSERT INTO components (sha256, bytes, size, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &bytes, &(bytes.len() as i64), &(now as i64)],
            )
            .await?;
            tx.execute(
                "INSERT INTO deployments (plugin, sha256, deployed_at) VALUES ($1, $2, $3)
                 ON CONFLICT (plugin) DO UPDATE SET sha256 = $2, deployed_at = $3",
                &[&plugin, &sha256, &(now as i64)],
            )
            .await?;
            tx.commit().await
        };
        tokio::time::timeout(GROUP_TIMEOUT, deploy)
            .await
            .map_err(|_| anyhow!("PostgreSQL did not answer within {GROUP_TIMEOUT:?}"))?
            .with_context(|| format!("deploying a component of {plugin}"))?;
        Ok(DeployedComponent {
            plugin: plugin.to_string(),
            sha256,
            deployed_at: now,
        })
    }

    async fn deployed(&self) -> Result<Vec<DeployedComponent>> {
        self.with_client(|client| async move {
            let rows = client
                .query(
                    "SELECT plugin, sha256, deployed_at FROM deployments ORDER BY plugin",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| DeployedComponent {
                    plugin: row.get(0),
                    sha256: row.get(1),
                    deployed_at: row.get::<_, i64>(2) as UnixMs,
                })
                .collect())
        })
        .await
        .context("listing deployed components")
    }

    async fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.with_client(|client| async move {
            let row = client
                .query_opt("SELECT bytes FROM components WHERE sha256 = $1", &[&sha256])
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
        .await
        .with_context(|| format!("reading component {sha256}"))
    }
}
