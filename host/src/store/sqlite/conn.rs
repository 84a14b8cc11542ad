//! The shared core's `Sql` on a rusqlite connection. Every statement runs when it
//! is called, so each future is finished when returned and the core is driven with
//! `run_now` on the thread that owns the connection.
//!
//! The core writes placeholders as `$1`, `$2`, ...; SQLite numbers such named
//! parameters in the order they first appear, not by their digits, so they are
//! bound by name.

use std::ffi::CStr;
use std::future::{ready, Ready};

use anyhow::{bail, Result};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Connection};

use crate::store::sql::conn::{Decode, Dialect, Param, Sql, SqlRow};

/// A connection (or a savepoint of one, which derefs to it) running the core.
pub struct SqliteConn<'c>(pub &'c Connection);

/// The names of `$1` to `$16`, as SQLite looks them up.
const NAMES: [&CStr; 16] = [
    c"$1", c"$2", c"$3", c"$4", c"$5", c"$6", c"$7", c"$8", c"$9", c"$10", c"$11", c"$12", c"$13",
    c"$14", c"$15", c"$16",
];

impl SqliteConn<'_> {
    /// `sql`, prepared (once per connection) with `params` bound to it.
    fn bound(&self, sql: &str, params: &[Param<'_>]) -> Result<CachedStatement<'_>> {
        let mut statement = self.0.prepare_cached(sql)?;
        if params.len() > NAMES.len() || params.len() != statement.parameter_count() {
            bail!(
                "the statement takes {} parameters, {} were given",
                statement.parameter_count(),
                params.len()
            );
        }
        for (param, name) in params.iter().zip(NAMES) {
            statement.raw_bind_parameter(name, param)?;
        }
        Ok(statement)
    }
}

// The futures are `Ready`, as the trait allows an implementation to say: the
// statement has run by the time it returns, which is what `run_now` relies on.
#[allow(refining_impl_trait)]
impl Sql for SqliteConn<'_> {
    const DIALECT: Dialect = Dialect::Sqlite;

    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Ready<Result<u64>> {
        ready(
            self.bound(sql, params)
                .and_then(|mut statement| Ok(statement.raw_execute()? as u64)),
        )
    }

    fn query<T: Send>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        decode: Decode<T>,
    ) -> Ready<Result<Vec<T>>> {
        let run = || {
            let mut statement = self.bound(sql, params)?;
            let mut rows = statement.raw_query();
            let mut decoded = Vec::new();
            while let Some(row) = rows.next()? {
                decoded.push(decode(row)?);
            }
            Ok(decoded)
        };
        ready(run())
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Int(Some(value)) => ValueRef::Integer(value),
            Param::Text(Some(text)) => ValueRef::Text(text.as_bytes()),
            Param::Bytes(bytes) => ValueRef::Blob(bytes),
            Param::Int(None) | Param::Text(None) => ValueRef::Null,
        }))
    }
}

impl SqlRow for rusqlite::Row<'_> {
    fn int(&self, column: usize) -> Result<Option<i64>> {
        Ok(self.get(column)?)
    }

    fn text(&self, column: usize) -> Result<Option<String>> {
        Ok(self.get(column)?)
    }

    fn bytes(&self, column: usize) -> Result<Vec<u8>> {
        Ok(self.get(column)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::conn::{run_now, SqlRowExt};

    #[test]
    fn placeholders_bind_by_their_digits_whatever_order_they_appear_in() {
        let conn = Connection::open_in_memory().unwrap();
        let sqlite = SqliteConn(&conn);
        let row = run_now(sqlite.query(
            "SELECT $2 || '-' || $1, $1",
            &["a".into(), "b".into()],
            |row| Ok((row.required_text(0)?, row.required_text(1)?)),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(row, [("b-a".to_string(), "a".to_string())]);
        let missing = run_now(sqlite.execute("SELECT $1, $2", &["a".into()])).unwrap();
        assert!(missing.is_err());
    }
}
