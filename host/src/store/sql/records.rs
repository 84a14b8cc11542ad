//! Persisting what a webhook or a poll produced, each inside the savepoint its
//! writer gives it (rolled back, with everything else of the same write, when any
//! step fails or is refused):
//! - `persist`: the request row, the events deduplicated on (plugin, event id),
//!   and a delivery per subscriber of each new event;
//! - `persist_poll`: a poll's cursor, state writes and events, fenced by its lease
//!   and the cursor it started from;
//! - `apply_state`: plugins' key-value writes under the key limit.
//!
//! PostgreSQL may have several nodes running these at once: an insert that meets
//! another transaction's uncommitted row of the same key waits for it, and a poll
//! save locks its lease and cursor rows. SQLite has one writer holding the whole
//! database, so the locking clauses are PostgreSQL's only.

use anyhow::Result;

use super::conn::{query_one, query_opt, Dialect, Dialected, Param, Sql, SqlRowExt};
use super::rows::headers_to_json;
use crate::store::{
    IngestRecord, NewEvent, Persisted, PollRecord, RawRequest, StateChange, StateRefused, UnixMs,
    STATE_MAX_KEYS,
};

const FIND_EVENT: &str = "SELECT id FROM events WHERE plugin = $1 AND event_id = $2";

const INSERT_REQUEST: &str = "INSERT INTO requests
         (plugin, received_at, method, path, query, headers, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";

// DO NOTHING: the same event id may come twice in one delivery (the first wins),
// or from another node at the same moment; an insert that meets another
// transaction's uncommitted row waits for it, and once it committed `FIND_EVENT`
// finds it, so both callers get the one id.
const INSERT_EVENT: &str = "INSERT INTO events
         (plugin, event_id, kind, subject, payload, received_at, request_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (plugin, event_id) DO NOTHING
     RETURNING id";

// Due at once by the database's clock, which decides when a delivery is due: a
// node whose clock runs ahead must not hold its new deliveries back by as much.
const QUEUE_DELIVERY: Dialected = Dialected {
    sqlite: "INSERT INTO deliveries (event_id, plugin, state, next_at, updated_at)
     VALUES ($1, $2, 'pending',
             MIN($3, CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)), $3)
     ON CONFLICT (event_id, plugin) DO NOTHING",
    postgres: "INSERT INTO deliveries (event_id, plugin, state, next_at, updated_at)
     VALUES ($1, $2, 'pending',
             LEAST($3, (extract(epoch FROM clock_timestamp()) * 1000)::bigint), $3)
     ON CONFLICT (event_id, plugin) DO NOTHING",
};

/// Stores `record`'s request and new events and queues their deliveries.
pub async fn persist<C: Sql>(conn: &C, record: &IngestRecord) -> Result<Vec<Persisted>> {
    let IngestRecord {
        plugin,
        received_at,
        request,
        events,
    } = record;
    persist_events(conn, plugin, *received_at, request.as_ref(), events).await
}

/// `persist`, from the parts of a record (a poll's has no request).
async fn persist_events<C: Sql>(
    conn: &C,
    plugin: &str,
    received_at: UnixMs,
    request: Option<&RawRequest>,
    events: &[NewEvent],
) -> Result<Vec<Persisted>> {
    let plugin = Param::from(plugin);
    let mut existing = Vec::with_capacity(events.len());
    for event in events {
        let id = query_opt(
            conn,
            FIND_EVENT,
            &[plugin, (&event.event_id).into()],
            |row| row.required_int(0),
        )
        .await?;
        existing.push(id);
    }
    // A provider's retry of something fully stored changes nothing, not even the
    // request log.
    if !events.is_empty() && existing.iter().all(Option::is_some) {
        return Ok(existing
            .into_iter()
            .flatten()
            .map(Persisted::Duplicate)
            .collect());
    }
    let received_at = Param::from(received_at);
    let request_id = match request {
        Some(request) => {
            let headers = headers_to_json(&request.headers)?;
            let params = [
                plugin,
                received_at,
                (&request.method).into(),
                (&request.path).into(),
                (&request.query).into(),
                (&headers).into(),
                (&request.body).into(),
            ];
            Some(query_one(conn, INSERT_REQUEST, &params, |row| row.required_int(0)).await?)
        }
        None => None,
    };
    let mut outcomes = Vec::with_capacity(events.len());
    for (event, existing) in events.iter().zip(existing) {
        if let Some(id) = existing {
            outcomes.push(Persisted::Duplicate(id));
            continue;
        }
        let params = [
            plugin,
            (&event.event_id).into(),
            (&event.kind).into(),
            (&event.subject).into(),
            (&event.payload).into(),
            received_at,
            request_id.into(),
        ];
        let inserted = query_opt(conn, INSERT_EVENT, &params, |row| row.required_int(0)).await?;
        let Some(id) = inserted else {
            let find = [plugin, (&event.event_id).into()];
            let id = query_one(conn, FIND_EVENT, &find, |row| row.required_int(0)).await?;
            outcomes.push(Persisted::Duplicate(id));
            continue;
        };
        for subscriber in &event.subscribers {
            let queue = QUEUE_DELIVERY.text(C::DIALECT);
            conn.execute(queue, &[id.into(), subscriber.into(), received_at])
                .await?;
        }
        outcomes.push(Persisted::New(id));
    }
    Ok(outcomes)
}

// Two nodes writing one plugin's state at once would each count only their own new
// keys; the lock makes the count see the other's, so the limit holds.
const LOCK_STATE: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('hookhost.plugin_state.' || $1, 0))";

const SET_STATE: &str = "INSERT INTO plugin_state (plugin, key, value, updated_at)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (plugin, key) DO UPDATE SET value = $3, updated_at = $4";

const DELETE_STATE: &str = "DELETE FROM plugin_state WHERE plugin = $1 AND key = $2";

pub const COUNT_STATE: &str = "SELECT COUNT(*) FROM plugin_state WHERE plugin = $1";

/// Applies state writes; refused (the caller's savepoint then rolls them back)
/// when the plugin would hold more than `STATE_MAX_KEYS` keys.
pub async fn apply_state<C: Sql>(
    conn: &C,
    plugin: &str,
    changes: &[StateChange],
    now: UnixMs,
) -> Result<Result<(), StateRefused>> {
    if C::DIALECT == Dialect::Postgres {
        conn.execute(LOCK_STATE, &[plugin.into()]).await?;
    }
    for change in changes {
        match change {
            StateChange::Set(key, value) => {
                let params = [plugin.into(), key.into(), value.into(), now.into()];
                conn.execute(SET_STATE, &params).await?
            }
            StateChange::Delete(key) => {
                conn.execute(DELETE_STATE, &[plugin.into(), key.into()])
                    .await?
            }
        };
    }
    let held = query_one(conn, COUNT_STATE, &[plugin.into()], |row| {
        row.required_int(0)
    })
    .await? as u64;
    if held > STATE_MAX_KEYS {
        return Ok(Err(StateRefused::TooManyKeys {
            plugin: plugin.to_string(),
            would_hold: held,
        }));
    }
    Ok(Ok(()))
}

// FOR SHARE: the lease cannot change hands until this save has committed, so a new
// holder's first poll reads the cursor this one saves.
const LEASE_TOKEN: Dialected = Dialected {
    sqlite: "SELECT token FROM poll_leases WHERE plugin = $1",
    postgres: "SELECT token FROM poll_leases WHERE plugin = $1 FOR SHARE",
};

const CURSOR: &str = "SELECT cursor FROM poll_cursors WHERE plugin = $1";

// FOR UPDATE: two saves from the same cursor (an API-triggered poll beside the
// scheduled one) take turns, and the second sees the first's cursor.
const LOCKED_CURSOR: Dialected = Dialected {
    sqlite: CURSOR,
    postgres: "SELECT cursor FROM poll_cursors WHERE plugin = $1 FOR UPDATE",
};

const UPDATE_CURSOR: &str = "UPDATE poll_cursors SET cursor = $2, polled_at = $3 WHERE plugin = $1";

const INSERT_CURSOR: &str =
    "INSERT INTO poll_cursors (plugin, cursor, polled_at) VALUES ($1, $2, $3)
     ON CONFLICT (plugin) DO NOTHING";

/// Saves a poll's cursor, state and events, or refuses (`StateRefused`, as the
/// error) when its lease changed hands or the cursor it started from moved.
pub async fn persist_poll<C: Sql>(conn: &C, record: &PollRecord) -> Result<Vec<Persisted>> {
    let plugin = Param::from(&record.plugin);
    if let Some(token) = record.lease {
        let current = query_opt(conn, LEASE_TOKEN.text(C::DIALECT), &[plugin], |row| {
            row.required_int(0)
        })
        .await?
        .map(|token| token as u64);
        if current != Some(token) {
            return Err(StateRefused::LeaseLost {
                plugin: record.plugin.clone(),
                token,
                current,
            }
            .into());
        }
    }
    let saved: Option<Option<String>> =
        query_opt(conn, LOCKED_CURSOR.text(C::DIALECT), &[plugin], |row| {
            row.text(0)
        })
        .await?;
    let cursor_moved = |saved: Option<String>| StateRefused::CursorMoved {
        plugin: record.plugin.clone(),
        started: record.from_cursor.clone(),
        saved,
    };
    let current = saved.clone().flatten();
    if current != record.from_cursor {
        return Err(cursor_moved(current).into());
    }
    apply_state(conn, &record.plugin, &record.state, record.polled_at).await??;
    let cursor = record.cursor.clone().or(current);
    let params = [plugin, (&cursor).into(), record.polled_at.into()];
    if saved.is_some() {
        conn.execute(UPDATE_CURSOR, &params).await?;
    } else if conn.execute(INSERT_CURSOR, &params).await? == 0 {
        // No row to lock yet: a concurrent first save (another node's) inserted it
        // first, and this one started from a cursor that is no longer the saved one.
        let saved = query_one(conn, CURSOR, &[plugin], |row| row.text(0)).await?;
        return Err(cursor_moved(saved).into());
    }
    persist_events(conn, &record.plugin, record.polled_at, None, &record.events).await
}
