//! Every read the store makes, as data: a backend runs each `Read` with `run` on a
//! connection that sees the last commit (SQLite's reader beside its writer in WAL
//! mode; a pooled PostgreSQL connection, which sees every node's commits).

use std::time::Duration;

use anyhow::{anyhow, Result};

use super::clock::resolve;
use super::conn::{query_one, query_opt, Dialected, Param, Sql, SqlRowExt};
use super::records::COUNT_STATE;
use super::rows::{
    delivery_columns, delivery_from_row, event_columns, event_from_row, headers_from_json,
    EVENT_COLUMN_COUNT,
};
use crate::store::kind_pattern::KindPattern;
use crate::store::{
    Clock, DeliveryFilter, DeliveryRow, EventFilter, RawRequest, SavedCursor, StoredEventRow,
    UnixMs,
};

#[derive(Debug)]
pub enum Read {
    Events(EventFilter),
    Event(i64),
    Deliveries(DeliveryFilter),
    NextDue,
    /// How long until a delivery of these handler plugins falls due.
    DueIn {
        handlers: Vec<String>,
        now: Clock,
    },
    Cursor(String),
    StateValue {
        plugin: String,
        key: String,
    },
    StateLen(String),
}

/// What a read found; the variant matches the `Read` that asked for it.
#[derive(Debug)]
pub enum Found {
    Events(Vec<StoredEventRow>),
    /// Boxed: an event with its request is far larger than the other answers.
    Event(Option<Box<(StoredEventRow, Option<RawRequest>)>>),
    Deliveries(Vec<DeliveryRow>),
    NextDue(Option<UnixMs>),
    DueIn(Option<Duration>),
    Cursor(Option<SavedCursor>),
    StateValue(Option<Vec<u8>>),
    StateLen(u64),
}

/// The answer to a read that was asked for `what`, when it is not the expected
/// variant: a bug, reported instead of a panic.
pub fn unexpected(what: &str, found: Found) -> anyhow::Error {
    anyhow!("the event store answered {what} with {found:?}")
}

const EVENT_WITH_REQUEST: &str = concat!(
    "SELECT ",
    event_columns!(),
    ", r.method, r.path, r.query, r.headers, r.body
     FROM events e LEFT JOIN requests r ON r.id = e.request_id
     WHERE e.id = $1"
);

// Written so that both databases can read it: SQLite has no GREATEST, PostgreSQL no
// two-argument MAX. A NULL `claimed_until` compares as not greater.
const NEXT_DUE: &str = "SELECT MIN(CASE WHEN claimed_until > next_at THEN claimed_until
                     ELSE next_at END)
     FROM deliveries WHERE state = 'pending'";

const NEXT_DUE_OF: Dialected = Dialected {
    sqlite: "SELECT MIN(CASE WHEN claimed_until > next_at THEN claimed_until
                     ELSE next_at END)
     FROM deliveries WHERE state = 'pending'
       AND plugin IN (SELECT value FROM json_each($1))",
    postgres: "SELECT MIN(CASE WHEN claimed_until > next_at THEN claimed_until
                     ELSE next_at END)
     FROM deliveries WHERE state = 'pending'
       AND plugin IN (SELECT jsonb_array_elements_text(CAST($1::text AS jsonb)))",
};

const CURSOR: &str = "SELECT cursor, polled_at FROM poll_cursors WHERE plugin = $1";

const STATE_VALUE: &str = "SELECT value FROM plugin_state WHERE plugin = $1 AND key = $2";

pub async fn run<C: Sql>(conn: &C, read: Read) -> Result<Found> {
    Ok(match read {
        Read::Events(filter) => {
            let (sql, params) = event_listing(&filter);
            let params = params.iter().map(Listed::param).collect::<Vec<_>>();
            Found::Events(
                conn.query(&sql, &params, |row| event_from_row(row, 0))
                    .await?,
            )
        }
        Read::Event(id) => Found::Event(
            query_opt(conn, EVENT_WITH_REQUEST, &[id.into()], event_with_request)
                .await?
                .map(Box::new),
        ),
        Read::Deliveries(filter) => {
            let (sql, params) = delivery_listing(&filter);
            let params = params.iter().map(Listed::param).collect::<Vec<_>>();
            Found::Deliveries(conn.query(&sql, &params, delivery_from_row).await?)
        }
        Read::NextDue => {
            let next = query_one(conn, NEXT_DUE, &[], |row| row.int(0)).await?;
            Found::NextDue(next.map(|next| next as UnixMs))
        }
        Read::DueIn { handlers, now } => {
            let handlers = serde_json::to_string(&handlers)?;
            let sql = NEXT_DUE_OF.text(C::DIALECT);
            let next = query_one(conn, sql, &[handlers.as_str().into()], |row| row.int(0)).await?;
            let now = resolve(conn, now).await?;
            Found::DueIn(
                next.map(|next| Duration::from_millis((next.max(0) as UnixMs).saturating_sub(now))),
            )
        }
        Read::Cursor(plugin) => {
            let cursor = query_opt(conn, CURSOR, &[(&plugin).into()], |row| {
                Ok(SavedCursor {
                    cursor: row.text(0)?,
                    polled_at: row.required_int(1)? as UnixMs,
                })
            })
            .await?;
            Found::Cursor(cursor)
        }
        Read::StateValue { plugin, key } => {
            let params = [(&plugin).into(), (&key).into()];
            Found::StateValue(query_opt(conn, STATE_VALUE, &params, |row| row.bytes(0)).await?)
        }
        Read::StateLen(plugin) => {
            let held = query_one(conn, COUNT_STATE, &[(&plugin).into()], |row| {
                row.required_int(0)
            })
            .await?;
            Found::StateLen(held as u64)
        }
    })
}

/// An event and, when it came with one, its request (columns after the event's).
fn event_with_request(
    row: &dyn super::conn::SqlRow,
) -> Result<(StoredEventRow, Option<RawRequest>)> {
    let event = event_from_row(row, 0)?;
    let first = EVENT_COLUMN_COUNT;
    let request = match row.text(first)? {
        Some(method) => Some(RawRequest {
            method,
            path: row.required_text(first + 1)?,
            query: row.required_text(first + 2)?,
            headers: headers_from_json(&row.required_text(first + 3)?)?,
            body: row.bytes(first + 4)?,
        }),
        None => None,
    };
    Ok((event, request))
}

/// A listing's parameter, owned by the listing while its SQL is built.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listed {
    Int(i64),
    Text(String),
}

impl Listed {
    fn param(&self) -> Param<'_> {
        match self {
            Listed::Int(value) => (*value).into(),
            Listed::Text(value) => value.into(),
        }
    }
}

/// A `WHERE` clause built from optional filters, with its parameters numbered in
/// the order they are added.
#[derive(Default)]
struct Clauses {
    clauses: Vec<String>,
    values: Vec<Listed>,
}

impl Clauses {
    /// Adds `template` with its one parameter written as `$?` (used as often as
    /// the clause needs it).
    fn push(&mut self, template: &str, value: Listed) {
        self.values.push(value);
        let placeholder = format!("${}", self.values.len());
        self.clauses.push(template.replace("$?", &placeholder));
    }

    /// `select` filtered by the clauses and the cursor (ids below `before`), newest
    /// (largest id) first, at most `limit` rows.
    fn newest_first(
        mut self,
        select: &str,
        before: Option<i64>,
        limit: u32,
    ) -> (String, Vec<Listed>) {
        if let Some(before) = before {
            self.push("id < $?", Listed::Int(before));
        }
        let mut sql = select.to_string();
        if !self.clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.clauses.join(" AND "));
        }
        self.values.push(Listed::Int(i64::from(limit)));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", self.values.len()));
        (sql, self.values)
    }
}

fn event_listing(filter: &EventFilter) -> (String, Vec<Listed>) {
    let mut clauses = Clauses::default();
    if let Some(plugin) = &filter.plugin {
        clauses.push("plugin = $?", Listed::Text(plugin.clone()));
    }
    if let Some(kind) = &filter.kind {
        match KindPattern::parse(kind) {
            KindPattern::Exact(kind) => clauses.push("kind = $?", Listed::Text(kind.into())),
            // The kinds that start with the prefix and go on, compared as they are
            // (LIKE would ignore case in SQLite, and needs escaping).
            KindPattern::Below(prefix) => clauses.push(
                "substr(kind, 1, length($?)) = $? AND length(kind) > length($?)",
                Listed::Text(prefix.into()),
            ),
        }
    }
    if let Some(subject) = &filter.subject {
        clauses.push("subject = $?", Listed::Text(subject.clone()));
    }
    let select = concat!("SELECT ", event_columns!(), " FROM events e");
    clauses.newest_first(select, filter.before, filter.limit)
}

fn delivery_listing(filter: &DeliveryFilter) -> (String, Vec<Listed>) {
    let mut clauses = Clauses::default();
    if let Some(plugin) = &filter.plugin {
        clauses.push("plugin = $?", Listed::Text(plugin.clone()));
    }
    if let Some(state) = filter.state {
        clauses.push("state = $?", Listed::Text(state.as_str().into()));
    }
    if let Some(event) = filter.event {
        clauses.push("event_id = $?", Listed::Int(event));
    }
    let select = concat!("SELECT ", delivery_columns!(), " FROM deliveries");
    clauses.newest_first(select, filter.before, filter.limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_numbers_its_parameters_in_order_and_a_prefix_pattern_reuses_its_own() {
        let (sql, values) = event_listing(&EventFilter {
            plugin: Some("github".into()),
            kind: Some("github.*".into()),
            before: Some(9),
            limit: 5,
            ..EventFilter::default()
        });
        assert!(sql.ends_with(
            "WHERE plugin = $1 AND substr(kind, 1, length($2)) = $2 AND length(kind) > \
             length($2) AND id < $3 ORDER BY id DESC LIMIT $4"
        ));
        assert_eq!(
            values,
            [
                Listed::Text("github".into()),
                Listed::Text("github.".into()),
                Listed::Int(9),
                Listed::Int(5)
            ]
        );
    }
}
