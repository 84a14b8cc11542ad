//! What the shared core needs of a database connection (or transaction): run a
//! statement, or a query whose rows it decodes, with typed parameters. Each
//! backend implements `Sql` for its driver; nothing else of the core knows which
//! database it talks to, except where `Dialect` says the SQL differs.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use anyhow::{bail, Result};

/// Which SQL a connection speaks, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement whose text differs between the dialects.
#[derive(Debug, Clone, Copy)]
pub struct Dialected {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Dialected {
    pub fn text(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// One statement parameter, as both drivers bind it. `None` is SQL `NULL` (typed,
/// as PostgreSQL needs it to be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Bytes(&'a [u8]),
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(Some(value))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        Param::Int(value)
    }
}

/// Times (`UnixMs`) and tokens: stored as `BIGINT`, as the store always has.
impl From<u64> for Param<'_> {
    fn from(value: u64) -> Self {
        Param::Int(Some(value as i64))
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(Some(value))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(Some(value))
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Param::Text(value.as_deref())
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Param::Bytes(value)
    }
}

/// One row of a query's result, read by column index.
pub trait SqlRow {
    /// An integer column of any width.
    fn int(&self, column: usize) -> Result<Option<i64>>;
    fn text(&self, column: usize) -> Result<Option<String>>;
    fn bytes(&self, column: usize) -> Result<Vec<u8>>;
}

/// Reading columns that must not be `NULL`.
pub trait SqlRowExt: SqlRow {
    fn required_int(&self, column: usize) -> Result<i64> {
        match self.int(column)? {
            Some(value) => Ok(value),
            None => bail!("column {column} is NULL"),
        }
    }

    fn required_text(&self, column: usize) -> Result<String> {
        match self.text(column)? {
            Some(value) => Ok(value),
            None => bail!("column {column} is NULL"),
        }
    }
}

impl<R: SqlRow + ?Sized> SqlRowExt for R {}

/// How a query's rows become values: a plain function (no captures), which keeps
/// the query's signature the same on every driver.
pub type Decode<T> = fn(&dyn SqlRow) -> Result<T>;

/// A connection or transaction to run statements on. Statements use `$1`, `$2`,
/// ... for `params[0]`, `params[1]`, ..., and every parameter given must appear.
///
/// The futures are `Send` so that PostgreSQL's can run on tokio's worker threads;
/// SQLite's are finished when returned (see `run_now`).
pub trait Sql {
    const DIALECT: Dialect;

    /// Runs a statement; how many rows it changed.
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> impl Future<Output = Result<u64>> + Send;

    /// Runs a query, decoding each row with `decode`.
    fn query<T: Send>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        decode: Decode<T>,
    ) -> impl Future<Output = Result<Vec<T>>> + Send;
}

/// The first row of a query, if any.
pub async fn query_opt<C: Sql, T: Send>(
    conn: &C,
    sql: &str,
    params: &[Param<'_>],
    decode: Decode<T>,
) -> Result<Option<T>> {
    Ok(conn.query(sql, params, decode).await?.into_iter().next())
}

/// The first row of a query, which must be there.
pub async fn query_one<C: Sql, T: Send>(
    conn: &C,
    sql: &str,
    params: &[Param<'_>],
    decode: Decode<T>,
) -> Result<T> {
    match query_opt(conn, sql, params, decode).await? {
        Some(row) => Ok(row),
        None => bail!("the query returned no row"),
    }
}

/// Runs a future that never waits, as the shared core is on SQLite (every
/// statement runs when it is called): one poll, on the calling thread. A future
/// that does wait is a bug, reported as an error rather than a hang.
pub fn run_now<F: Future>(future: F) -> Result<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => {
            bail!("a statement of the event store waited on a thread that cannot wait")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_now_finishes_a_ready_future_and_refuses_one_that_waits() {
        assert_eq!(run_now(async { 7 }).unwrap(), 7);
        assert!(run_now(std::future::pending::<()>()).is_err());
    }
}
