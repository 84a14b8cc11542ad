//! Deployed components in PostgreSQL: each component once, by content hash
//! (`components`); what each plugin runs now, or a tombstone when it was
//! undeployed (`deployments`, `sha256` NULL); and the recent deploys and undeploys
//! of each plugin, newest last (`deployment_history`), which rollback walks back.
//!
//! Every change is its own transaction rather than a job of the writers' groups: a
//! deploy carries a whole component (megabytes), and a group should not wait on
//! that. The changes take one advisory lock, so that two at once never race the
//! garbage collection that ends each of them: it keeps the last `KEPT_VERSIONS`
//! versions of the plugin changed and deletes every component no deployment or
//! kept version refers to.

use anyhow::{anyhow, Context, Result};
use sha2::{Digest, Sha256};
use tokio_postgres::Transaction;

use super::pool::GROUP_TIMEOUT;
use super::PostgresStore;
use crate::store::components::{ComponentStore, DeployedComponent, Deployment, KEPT_VERSIONS};
use crate::store::UnixMs;

/// `pg_advisory_xact_lock` key serializing deploys, undeploys and rollbacks:
/// "hookdepl" as ASCII.
const DEPLOY_LOCK: i64 = 0x686f_6f6b_6465_706c;

#[async_trait::async_trait]
impl ComponentStore for PostgresStore {
    async fn deploy(&self, plugin: &str, bytes: Vec<u8>, now: UnixMs) -> Result<DeployedComponent> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let mut client = self.client().await?;
        let deploy = async {
            let tx = begin(&mut client).await?;
            // DO NOTHING: the same bytes deployed again (or to another plugin) are
            // stored once.
            tx.execute(
                "INSERT INTO components (sha256, bytes, size, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&sha256, &bytes, &(bytes.len() as i64), &(now as i64)],
            )
            .await?;
            make_current(&tx, plugin, Some(&sha256), now).await?;
            collect_garbage(&tx, plugin).await?;
            tx.commit().await
        };
        within_timeout(deploy)
            .await
            .with_context(|| format!("deploying a component of {plugin}"))?;
        Ok(DeployedComponent {
            plugin: plugin.to_string(),
            sha256,
            deployed_at: now,
        })
    }

    async fn undeploy(&self, plugin: &str, present_here: bool, now: UnixMs) -> Result<bool> {
        let mut client = self.client().await?;
        let undeploy = async {
            let tx = begin(&mut client).await?;
            let current = sha256_row(
                &tx,
                "SELECT sha256 FROM deployments WHERE plugin = $1",
                plugin,
            )
            .await?;
            let remove = match current {
                Some(Some(_)) => true,
                Some(None) => false,
                None => present_here,
            };
            if remove {
                make_current(&tx, plugin, None, now).await?;
                collect_garbage(&tx, plugin).await?;
            }
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(remove)
        };
        within_timeout(undeploy)
            .await
            .with_context(|| format!("undeploying {plugin}"))
    }

    async fn rollback(&self, plugin: &str, now: UnixMs) -> Result<Option<DeployedComponent>> {
        let mut client = self.client().await?;
        let rollback = async {
            let tx = begin(&mut client).await?;
            // The newest version before the newest entry (a version or a tombstone)
            // that differs from what runs now: rolling back to the same bytes
            // would change nothing but the history.
            let previous = tx
                .query_opt(
                    "SELECT id, sha256 FROM deployment_history
                     WHERE plugin = $1 AND sha256 IS NOT NULL
                       AND id < (SELECT max(id) FROM deployment_history WHERE plugin = $1)
                       AND sha256 IS DISTINCT FROM
                           (SELECT sha256 FROM deployments WHERE plugin = $1)
                     ORDER BY id DESC LIMIT 1",
                    &[&plugin],
                )
                .await?;
            let Some(previous) = previous else {
                tx.commit().await?;
                return Ok(None);
            };
            let (id, sha256): (i64, String) = (previous.get(0), previous.get(1));
            tx.execute(
                "DELETE FROM deployment_history WHERE plugin = $1 AND id > $2",
                &[&plugin, &id],
            )
            .await?;
            tx.execute(
                "UPDATE deployments SET sha256 = $2, deployed_at = $3 WHERE plugin = $1",
                &[&plugin, &sha256, &(now as i64)],
            )
            .await?;
            collect_garbage(&tx, plugin).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(Some(DeployedComponent {
                plugin: plugin.to_string(),
                sha256,
                deployed_at: now,
            }))
        };
        within_timeout(rollback)
            .await
            .with_context(|| format!("rolling back {plugin}"))
    }

    async fn deployed(&self) -> Result<Vec<Deployment>> {
        self.with_client(|client| async move {
            let rows = client
                .query(
                    "SELECT plugin, sha256, deployed_at FROM deployments ORDER BY plugin",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| {
                    let plugin: String = row.get(0);
                    let at = row.get::<_, i64>(2) as UnixMs;
                    match row.get::<_, Option<String>>(1) {
                        Some(sha256) => Deployment::Current(DeployedComponent {
                            plugin,
                            sha256,
                            deployed_at: at,
                        }),
                        None => Deployment::Removed {
                            plugin,
                            removed_at: at,
                        },
                    }
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

/// Begins a transaction holding the deploy lock.
async fn begin(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&DEPLOY_LOCK])
        .await?;
    Ok(tx)
}

async fn within_timeout<T>(
    change: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T> {
    Ok(tokio::time::timeout(GROUP_TIMEOUT, change)
        .await
        .map_err(|_| anyhow!("PostgreSQL did not answer within {GROUP_TIMEOUT:?}"))??)
}

/// Makes `sha256` (a tombstone when `None`) `plugin`'s current deployment and
/// appends it to the plugin's history, unless it is already current (deploying
/// the same bytes twice leaves one version to roll back over, not two).
async fn make_current(
    tx: &Transaction<'_>,
    plugin: &str,
    sha256: Option<&str>,
    now: UnixMs,
) -> Result<(), tokio_postgres::Error> {
    let newest = sha256_row(
        tx,
        "SELECT sha256 FROM deployment_history WHERE plugin = $1 ORDER BY id DESC LIMIT 1",
        plugin,
    )
    .await?;
    if newest.as_ref().map(Option::as_deref) != Some(sha256) {
        tx.execute(
            "INSERT INTO deployment_history (plugin, sha256, deployed_at) VALUES ($1, $2, $3)",
            &[&plugin, &sha256, &(now as i64)],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO deployments (plugin, sha256, deployed_at) VALUES ($1, $2, $3)
         ON CONFLICT (plugin) DO UPDATE SET sha256 = $2, deployed_at = $3",
        &[&plugin, &sha256, &(now as i64)],
    )
    .await?;
    Ok(())
}

/// Forgets `plugin`'s history before its `KEPT_VERSIONS`th newest version, then
/// deletes every component that neither a deployment nor a kept version of any
/// plugin refers to.
async fn collect_garbage(tx: &Transaction<'_>, plugin: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "DELETE FROM deployment_history WHERE plugin = $1 AND id < (
             SELECT id FROM deployment_history WHERE plugin = $1 AND sha256 IS NOT NULL
             ORDER BY id DESC OFFSET $2 LIMIT 1)",
        &[&plugin, &(KEPT_VERSIONS as i64 - 1)],
    )
    .await?;
    let deleted = tx
        .execute(
            "DELETE FROM components c
             WHERE NOT EXISTS (SELECT 1 FROM deployments d WHERE d.sha256 = c.sha256)
               AND NOT EXISTS (SELECT 1 FROM deployment_history h WHERE h.sha256 = c.sha256)",
            &[],
        )
        .await?;
    if deleted > 0 {
        tracing::info!(
            plugin,
            deleted,
            kept_versions = KEPT_VERSIONS,
            "deleted components no kept version refers to"
        );
    }
    Ok(())
}

/// The `sha256` of the row `query` finds for `plugin` (its `$1`), if any: `None`
/// inside for a tombstone.
async fn sha256_row(
    tx: &Transaction<'_>,
    query: &str,
    plugin: &str,
) -> Result<Option<Option<String>>, tokio_postgres::Error> {
    let row = tx.query_opt(query, &[&plugin]).await?;
    Ok(row.map(|row| row.get(0)))
}
