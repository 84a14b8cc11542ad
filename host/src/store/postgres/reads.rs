//! Row shapes and the listing queries of the PostgreSQL store. Reads go straight
//! to a pooled connection: each statement sees the last commit of any node.

use anyhow::Result;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::super::{
    DeliveryFilter, DeliveryRow, DeliveryState, EventFilter, StoredEventRow, UnixMs,
};

/// Qualified with `e.` so that they also serve a join; listed in `event_from_row`'s
/// order.
pub const EVENT_COLUMNS: &str =
    "e.id, e.plugin, e.event_id, e.kind, e.subject, e.payload, e.received_at";
pub const DELIVERY_COLUMNS: &str =
    "id, event_id, plugin, state, attempts, next_at, last_error, updated_at";

/// The event in `EVENT_COLUMNS` starting at column `first`.
pub fn event_from_row(row: &Row, first: usize) -> StoredEventRow {
    StoredEventRow {
        id: row.get(first),
        plugin: row.get(first + 1),
        event_id: row.get(first + 2),
        kind: row.get(first + 3),
        subject: row.get(first + 4),
        payload: row.get(first + 5),
        received_at: row.get::<_, i64>(first + 6) as UnixMs,
    }
}

pub fn delivery_from_row(row: &Row) -> DeliveryRow {
    let state: String = row.get(3);
    DeliveryRow {
        id: row.get(0),
        event: row.get(1),
        plugin: row.get(2),
        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Pending),
        attempts: row.get::<_, i32>(4) as u32,
        next_attempt_at: row.get::<_, i64>(5) as UnixMs,
        last_error: row.get(6),
        updated_at: row.get::<_, i64>(7) as UnixMs,
    }
}

/// A `WHERE` clause built from optional filters, with its parameters numbered in
/// the order they are added.
#[derive(Default)]
pub struct Clauses {
    clauses: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Clauses {
    /// Adds `template` with its one parameter written as `$?`.
    pub fn push(&mut self, template: &str, value: impl ToSql + Sync + Send + 'static) {
        self.values.push(Box::new(value));
        let placeholder = format!("${}", self.values.len());
        self.clauses.push(template.replace("$?", &placeholder));
    }

    /// `select` filtered by the clauses and the cursor (ids below `before`), newest
    /// (largest id) first, at most `limit` rows.
    pub fn newest_first(
        mut self,
        select: &str,
        before: Option<i64>,
        limit: u32,
    ) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
        if let Some(before) = before {
            self.push("id < $?", before);
        }
        let mut sql = select.to_string();
        if !self.clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.clauses.join(" AND "));
        }
        self.values.push(Box::new(i64::from(limit)));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", self.values.len()));
        (sql, self.values)
    }
}

pub fn event_clauses(filter: EventFilter) -> Clauses {
    let mut clauses = Clauses::default();
    if let Some(plugin) = filter.plugin {
        clauses.push("plugin = $?", plugin);
    }
    if let Some(kind) = filter.kind {
        // `prefix.*` is a prefix match; anything else is exact.
        match kind.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('.') => {
                let escaped = prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                clauses.push("kind LIKE $? ESCAPE '\\'", format!("{escaped}%"));
            }
            _ => clauses.push("kind = $?", kind),
        }
    }
    if let Some(subject) = filter.subject {
        clauses.push("subject = $?", subject);
    }
    clauses
}

pub fn delivery_clauses(filter: DeliveryFilter) -> Clauses {
    let mut clauses = Clauses::default();
    if let Some(plugin) = filter.plugin {
        clauses.push("plugin = $?", plugin);
    }
    if let Some(state) = filter.state {
        clauses.push("state = $?", state.as_str().to_string());
    }
    if let Some(event) = filter.event {
        clauses.push("event_id = $?", event);
    }
    clauses
}

/// The parameters as `query` takes them.
pub fn params(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|value| value.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// The stored headers of a request (a JSON array of `[name, value]`).
pub fn headers_from_json(text: &str) -> Result<Vec<(String, String)>> {
    Ok(serde_json::from_str(text)?)
}
