//! Every write the PostgreSQL store makes, each run by the writer inside its own
//! savepoint of a group's transaction (see `writer`). The semantics are the SQLite
//! store's; what differs is what several nodes writing at once need: inserts that
//! meet a concurrent insert of the same key wait for it and then see it, claims
//! skip rows another transaction holds, and a poll save locks its lease and cursor
//! rows so that a lease changing hands cannot interleave with it.

use anyhow::Result;
use deadpool_postgres::Transaction;

use super::super::{
    AfterFailure, IngestRecord, Persisted, PollLease, PollRecord, StateChange, StateRefused,
    UnixMs, STATE_MAX_KEYS,
};
use super::reads::{delivery_from_row, event_from_row, DELIVERY_COLUMNS, EVENT_COLUMNS};
use super::writer::Written;

/// One write, as queued for the writer. Run by reference, so that a write that
/// lost a deadlock can run again.
#[derive(Debug)]
pub enum Write {
    Ingest(IngestRecord),
    Poll(PollRecord),
    Claim {
        now: UnixMs,
        until: UnixMs,
        limit: u32,
    },
    Complete {
        delivery: i64,
        now: UnixMs,
    },
    Fail {
        delivery: i64,
        error: String,
        after: AfterFailure,
        now: UnixMs,
    },
    Retry {
        delivery: i64,
        now: UnixMs,
    },
    Purge {
        cutoff: UnixMs,
    },
    /// A refusal fails the write (so that nothing of it stays) with the
    /// `StateRefused` as its error.
    State {
        plugin: String,
        changes: Vec<StateChange>,
        now: UnixMs,
    },
    KeepLeases {
        node: String,
        plugins: Vec<String>,
        now: UnixMs,
        expires_at: UnixMs,
    },
    ReleaseLeases {
        node: String,
    },
}

pub async fn apply(tx: &Transaction<'_>, write: &Write) -> Result<Written> {
    Ok(match write {
        Write::Ingest(record) => Written::Persisted(persist(tx, record).await?),
        Write::Poll(record) => Written::Persisted(persist_poll(tx, record).await?),
        Write::Claim { now, until, limit } => {
            // SKIP LOCKED: a delivery another node is claiming right now is left to
            // it; once that claim commits, its lease keeps the row out of this query.
            let statement = tx
                .prepare_cached(&format!(
                    "WITH due AS (
                         SELECT id FROM deliveries
                         WHERE state = 'pending' AND next_at <= $1
                           AND (claimed_until IS NULL OR claimed_until <= $1)
                         ORDER BY next_at LIMIT $3
                         FOR UPDATE SKIP LOCKED),
                     claimed AS (
                         UPDATE deliveries d
                         SET claimed_until = $2, attempts = d.attempts + 1, updated_at = $1
                         FROM due WHERE d.id = due.id
                         RETURNING d.id, d.event_id, d.plugin, d.attempts)
                     SELECT claimed.id, claimed.plugin, claimed.attempts, {EVENT_COLUMNS}
                     FROM claimed JOIN events e ON e.id = claimed.event_id
                     ORDER BY claimed.id"
                ))
                .await?;
            let rows = tx
                .query(
                    &statement,
                    &[&(*now as i64), &(*until as i64), &i64::from(*limit)],
                )
                .await?;
            Written::Claimed(
                rows.iter()
                    .map(|row| super::super::ClaimedDelivery {
                        id: row.get(0),
                        plugin: row.get(1),
                        attempt: row.get::<_, i32>(2) as u32,
                        event: event_from_row(row, 3),
                    })
                    .collect(),
            )
        }
        Write::Complete { delivery, now } => {
            let statement = tx
                .prepare_cached(
                    "UPDATE deliveries SET state = 'delivered', claimed_until = NULL,
                         last_error = NULL, updated_at = $2 WHERE id = $1",
                )
                .await?;
            tx.execute(&statement, &[delivery, &(*now as i64)]).await?;
            Written::Done
        }
        Write::Fail {
            delivery,
            error,
            after,
            now,
        } => {
            let (state, next_at) = match after {
                AfterFailure::RetryAt(at) => ("pending", *at),
                AfterFailure::Dead => ("dead", *now),
            };
            let statement = tx
                .prepare_cached(
                    "UPDATE deliveries SET state = $2, next_at = $3, claimed_until = NULL,
                         last_error = $4, updated_at = $5 WHERE id = $1",
                )
                .await?;
            tx.execute(
                &statement,
                &[delivery, &state, &(next_at as i64), error, &(*now as i64)],
            )
            .await?;
            Written::Done
        }
        Write::Retry { delivery, now } => {
            let statement = tx
                .prepare_cached(&format!(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = $2,
                         claimed_until = NULL, updated_at = $2 WHERE id = $1
                     RETURNING {DELIVERY_COLUMNS}"
                ))
                .await?;
            let row = tx
                .query_opt(&statement, &[delivery, &(*now as i64)])
                .await?;
            Written::Delivery(row.as_ref().map(delivery_from_row))
        }
        Write::Purge { cutoff } => {
            let cutoff = *cutoff as i64;
            let events = tx
                .execute("DELETE FROM events WHERE received_at < $1", &[&cutoff])
                .await?;
            tx.execute("DELETE FROM requests WHERE received_at < $1", &[&cutoff])
                .await?;
            Written::Count(events)
        }
        Write::State {
            plugin,
            changes,
            now,
        } => {
            apply_state(tx, plugin, changes, *now).await??;
            Written::Done
        }
        Write::KeepLeases {
            node,
            plugins,
            now,
            expires_at,
        } => {
            // The token grows only when the lease changes hands, so the holder's
            // polls in flight stay valid across its renewals.
            let statement = tx
                .prepare_cached(
                    "INSERT INTO poll_leases AS l (plugin, holder, token, expires_at)
                     VALUES ($1, $2, 1, $3)
                     ON CONFLICT (plugin) DO UPDATE SET
                         token = CASE WHEN l.holder = $2 THEN l.token ELSE l.token + 1 END,
                         holder = $2,
                         expires_at = $3
                     WHERE l.holder = $2 OR l.expires_at <= $4
                     RETURNING token",
                )
                .await?;
            let mut held = Vec::new();
            // In one order on every node, so that two nodes renewing overlapping
            // sets cannot deadlock on each other's rows.
            let mut plugins = plugins.clone();
            plugins.sort();
            plugins.dedup();
            for plugin in plugins {
                let row = tx
                    .query_opt(
                        &statement,
                        &[&plugin, node, &(*expires_at as i64), &(*now as i64)],
                    )
                    .await?;
                if let Some(row) = row {
                    held.push(PollLease {
                        plugin,
                        token: row.get::<_, i64>(0) as u64,
                        expires_at: *expires_at,
                    });
                }
            }
            Written::Leases(held)
        }
        Write::ReleaseLeases { node } => {
            tx.execute(
                "UPDATE poll_leases SET expires_at = 0 WHERE holder = $1",
                &[node],
            )
            .await?;
            Written::Done
        }
    })
}

async fn persist(tx: &Transaction<'_>, record: &IngestRecord) -> Result<Vec<Persisted>> {
    let find = tx
        .prepare_cached("SELECT id FROM events WHERE plugin = $1 AND event_id = $2")
        .await?;
    let mut existing = Vec::with_capacity(record.events.len());
    for event in &record.events {
        let row = tx
            .query_opt(&find, &[&record.plugin, &event.event_id])
            .await?;
        existing.push(row.map(|row| row.get::<_, i64>(0)));
    }
    // A provider's retry of something fully stored changes nothing, not even the
    // request log.
    if !record.events.is_empty() && existing.iter().all(Option::is_some) {
        return Ok(existing
            .into_iter()
            .map(|id| Persisted::Duplicate(id.expect("checked")))
            .collect());
    }
    let received_at = record.received_at as i64;
    let request_id: Option<i64> = match &record.request {
        Some(request) => {
            let statement = tx
                .prepare_cached(
                    "INSERT INTO requests (plugin, received_at, method, path, query, headers, body)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .await?;
            let headers = serde_json::to_string(&request.headers)?;
            let row = tx
                .query_one(
                    &statement,
                    &[
                        &record.plugin,
                        &received_at,
                        &request.method,
                        &request.path,
                        &request.query,
                        &headers,
                        &request.body,
                    ],
                )
                .await?;
            Some(row.get(0))
        }
        None => None,
    };
    // DO NOTHING: the same event id may come twice in one delivery (the first
    // wins), or from another node at the same moment; an insert that meets
    // another transaction's uncommitted row waits for it, and once it committed
    // the SELECT after finds it, so both callers get the one id.
    let insert = tx
        .prepare_cached(
            "INSERT INTO events (plugin, event_id, kind, subject, payload, received_at, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (plugin, event_id) DO NOTHING
             RETURNING id",
        )
        .await?;
    let queue = tx
        .prepare_cached(
            "INSERT INTO deliveries (event_id, plugin, state, next_at, updated_at)
             VALUES ($1, $2, 'pending', $3, $3)
             ON CONFLICT (event_id, plugin) DO NOTHING",
        )
        .await?;
    let mut outcomes = Vec::with_capacity(record.events.len());
    for (event, existing) in record.events.iter().zip(existing) {
        if let Some(id) = existing {
            outcomes.push(Persisted::Duplicate(id));
            continue;
        }
        let inserted = tx
            .query_opt(
                &insert,
                &[
                    &record.plugin,
                    &event.event_id,
                    &event.kind,
                    &event.subject,
                    &event.payload,
                    &received_at,
                    &request_id,
                ],
            )
            .await?;
        let Some(inserted) = inserted else {
            let id: i64 = tx
                .query_one(&find, &[&record.plugin, &event.event_id])
                .await?
                .get(0);
            outcomes.push(Persisted::Duplicate(id));
            continue;
        };
        let id: i64 = inserted.get(0);
        for subscriber in &event.subscribers {
            tx.execute(&queue, &[&id, subscriber, &received_at]).await?;
        }
        outcomes.push(Persisted::New(id));
    }
    Ok(outcomes)
}

/// Applies state writes inside the caller's savepoint, which is rolled back when
/// this (or anything after it in the same write) fails or is refused.
async fn apply_state(
    tx: &Transaction<'_>,
    plugin: &str,
    changes: &[StateChange],
    now: UnixMs,
) -> Result<Result<(), StateRefused>> {
    // Two nodes writing one plugin's state at once would each count only their own
    // new keys; the lock makes the count see the other's, so the limit holds.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('hookhost.plugin_state.' || $1, 0))",
        &[&plugin],
    )
    .await?;
    let set = tx
        .prepare_cached(
            "INSERT INTO plugin_state (plugin, key, value, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (plugin, key) DO UPDATE SET value = $3, updated_at = $4",
        )
        .await?;
    let delete = tx
        .prepare_cached("DELETE FROM plugin_state WHERE plugin = $1 AND key = $2")
        .await?;
    for change in changes {
        match change {
            StateChange::Set(key, value) => {
                tx.execute(&set, &[&plugin, key, value, &(now as i64)])
                    .await?
            }
            StateChange::Delete(key) => tx.execute(&delete, &[&plugin, key]).await?,
        };
    }
    let held = tx
        .query_one(
            "SELECT COUNT(*) FROM plugin_state WHERE plugin = $1",
            &[&plugin],
        )
        .await?
        .get::<_, i64>(0) as u64;
    if held > STATE_MAX_KEYS {
        return Ok(Err(StateRefused::TooManyKeys {
            plugin: plugin.to_string(),
            would_hold: held,
        }));
    }
    Ok(Ok(()))
}

async fn persist_poll(tx: &Transaction<'_>, record: &PollRecord) -> Result<Vec<Persisted>> {
    if let Some(token) = record.lease {
        // FOR SHARE: the lease cannot change hands until this save has committed,
        // so a new holder's first poll reads the cursor this one saves.
        let current = tx
            .query_opt(
                "SELECT token FROM poll_leases WHERE plugin = $1 FOR SHARE",
                &[&record.plugin],
            )
            .await?
            .map(|row| row.get::<_, i64>(0) as u64);
        if current != Some(token) {
            return Err(StateRefused::LeaseLost {
                plugin: record.plugin.clone(),
                token,
                current,
            }
            .into());
        }
    }
    // FOR UPDATE: two saves from the same cursor (an API-triggered poll beside the
    // scheduled one) take turns, and the second sees the first's cursor.
    let saved: Option<Option<String>> = tx
        .query_opt(
            "SELECT cursor FROM poll_cursors WHERE plugin = $1 FOR UPDATE",
            &[&record.plugin],
        )
        .await?
        .map(|row| row.get(0));
    let cursor_moved = |saved: Option<String>| StateRefused::CursorMoved {
        plugin: record.plugin.clone(),
        started: record.from_cursor.clone(),
        saved,
    };
    let current = saved.clone().flatten();
    if current != record.from_cursor {
        return Err(cursor_moved(current).into());
    }
    apply_state(tx, &record.plugin, &record.state, record.polled_at).await??;
    let cursor = record.cursor.clone().or(current);
    let polled_at = record.polled_at as i64;
    if saved.is_some() {
        tx.execute(
            "UPDATE poll_cursors SET cursor = $2, polled_at = $3 WHERE plugin = $1",
            &[&record.plugin, &cursor, &polled_at],
        )
        .await?;
    } else {
        // No row to lock yet: a concurrent first save may insert it first, and
        // then this one started from a cursor that is no longer the saved one.
        let inserted = tx
            .execute(
                "INSERT INTO poll_cursors (plugin, cursor, polled_at) VALUES ($1, $2, $3)
                 ON CONFLICT (plugin) DO NOTHING",
                &[&record.plugin, &cursor, &polled_at],
            )
            .await?;
        if inserted == 0 {
            let saved: Option<String> = tx
                .query_one(
                    "SELECT cursor FROM poll_cursors WHERE plugin = $1",
                    &[&record.plugin],
                )
                .await?
                .get(0);
            return Err(cursor_moved(saved).into());
        }
    }
    let events = IngestRecord {
        plugin: record.plugin.clone(),
        received_at: record.polled_at,
        request: None,
        events: record.events.clone(),
    };
    persist(tx, &events).await
}
