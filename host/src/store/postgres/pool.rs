//! The PostgreSQL store's connection pool and the bounds that make a database that
//! is down give errors within seconds, never a hang: connect, pool wait, read and
//! group timeouts, and TCP keepalives for a server that vanished without a word.

use std::time::Duration;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};

use super::database_url::{self, DatabaseUrl};
use super::tls;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a caller waits for a pooled connection (all busy) or a new one.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one read may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one group of writes may take, commit included.
pub const GROUP_TIMEOUT: Duration = Duration::from_secs(10);
/// `health()` answers within this.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// A pool of up to `max_size` connections to `url`. It connects lazily, on the
/// runtime that asks for a connection: that runtime drives the connection's I/O.
pub fn pool(url: &DatabaseUrl, max_size: usize) -> Result<Pool> {
    let tls = tls::connector(&url.tls).with_context(|| format!("database {}", url.shown))?;
    let mut config = url.config.clone();
    config
        .connect_timeout(CONNECT_TIMEOUT)
        // A server that vanished without closing the connection (a cut network, a
        // killed machine) is noticed by the keepalives instead of never.
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .tcp_user_timeout(GROUP_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("hookhost");
    }
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            // Fast: a connection the server closed (a restart) is known closed
            // without a round trip, and replaced.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .context("building the PostgreSQL connection pool")
}

/// Why the pool gave no connection, with tokio-postgres's causes (a refused
/// connection, a TLS certificate that did not verify), which its own text leaves out.
pub fn pool_error(error: &PoolError) -> String {
    match error {
        PoolError::Backend(error) => database_url::error_chain(error),
        other => database_url::error_chain(other),
    }
}
