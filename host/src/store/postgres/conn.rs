//! The shared core's `Sql` on a tokio-postgres connection or transaction. Every
//! statement is prepared once per connection (deadpool's statement cache), so a
//! write costs one round trip per statement after the first time.

use anyhow::{bail, Result};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use crate::store::sql::conn::{Decode, Dialect, Param, Sql, SqlRow};

/// A pooled connection, or a transaction or savepoint on one.
pub struct PgConn<'c, C>(pub &'c C);

impl<C: GenericClient> Sql for PgConn<'_, C> {
    const DIALECT: Dialect = Dialect::Postgres;

    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let statement = self.0.prepare_cached(sql).await?;
        Ok(self.0.execute(&statement, &to_sql(params)).await?)
    }

    async fn query<T: Send>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        decode: Decode<T>,
    ) -> Result<Vec<T>> {
        let statement = self.0.prepare_cached(sql).await?;
        let rows = self.0.query(&statement, &to_sql(params)).await?;
        rows.iter().map(|row| decode(row)).collect()
    }
}

/// The parameters as tokio-postgres takes them; each keeps its Rust type, so the
/// server's type for the placeholder must match (`BIGINT`, `TEXT`, `BYTEA`).
fn to_sql<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| match param {
            Param::Int(value) => value as &(dyn ToSql + Sync),
            Param::Text(value) => value as &(dyn ToSql + Sync),
            Param::Bytes(value) => value as &(dyn ToSql + Sync),
        })
        .collect()
}

impl SqlRow for Row {
    fn int(&self, column: usize) -> Result<Option<i64>> {
        // `INTEGER` columns (`attempts`) are 32 bits; the rest are `BIGINT`.
        let Some(info) = self.columns().get(column) else {
            bail!("no column {column}");
        };
        Ok(match *info.type_() {
            Type::INT4 => self.try_get::<_, Option<i32>>(column)?.map(i64::from),
            _ => self.try_get(column)?,
        })
    }

    fn text(&self, column: usize) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: usize) -> Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }
}
