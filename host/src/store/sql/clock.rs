//! The database's clock: what `Clock::Database` reads, inside the write or read
//! that compares times, so that every node of a fleet agrees on when a delivery
//! is due and when a lease runs out, whatever its own clock says.

use anyhow::{Context, Result};

use super::conn::{query_one, Dialected, Sql, SqlRowExt};
use crate::store::{Clock, UnixMs};

/// Milliseconds since the Unix epoch, by the database server's clock. In
/// PostgreSQL the time of this statement (`now()` would be the start of the
/// group's transaction, which may be seconds earlier); in SQLite the time of the
/// machine, which SQLite shares with its one node.
const DATABASE_NOW: Dialected = Dialected {
    sqlite: "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    postgres: "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
};

/// The time `clock` says now: fixed for `Clock::At`, else read from the database.
pub async fn resolve<C: Sql>(conn: &C, clock: Clock) -> Result<UnixMs> {
    match clock {
        Clock::At(at) => Ok(at),
        Clock::Database => {
            let now = query_one(conn, DATABASE_NOW.text(C::DIALECT), &[], |row| {
                row.required_int(0)
            })
            .await
            .context("reading the database's clock")?;
            Ok(now.max(0) as UnixMs)
        }
    }
}
