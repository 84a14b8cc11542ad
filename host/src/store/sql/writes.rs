//! Every write the store makes, as data: a backend's writer runs each `Write`
//! with `apply` inside its own savepoint of a group's transaction (see `group`).
//! Run by reference, so that a write that lost a deadlock (PostgreSQL) can run
//! again.

use anyhow::{anyhow, Result};

use super::clock::resolve;
use super::conn::{query_one, query_opt, Dialect, Dialected, Param, Sql, SqlRowExt};
use super::poll_share;
use super::records::{apply_state, persist, persist_poll};
use super::rows::{delivery_columns, delivery_from_row, event_columns, event_from_row};
use crate::store::{
    AfterFailure, ClaimedDelivery, Clock, DeliveryRow, DeliveryState, Discarded, IngestRecord,
    Persisted, PollLease, PollRecord, PurgeBatch, PurgeStep, PurgeTarget, Settled, Settlement,
    StateChange, UnixMs,
};

#[derive(Debug)]
pub enum Write {
    Ingest(IngestRecord),
    Poll(PollRecord),
    Claim {
        /// The handler plugins whose deliveries may be claimed.
        handlers: Vec<String>,
        now: Clock,
        lease_ms: UnixMs,
        limit: u32,
    },
    /// Fenced: changes nothing unless the delivery is still claimed under `lease`.
    Settle {
        delivery: i64,
        lease: u64,
        settlement: Settlement,
        now: Clock,
    },
    Retry {
        delivery: i64,
        now: UnixMs,
    },
    /// One bounded batch of the retention purge.
    Purge(PurgeStep),
    Discard {
        delivery: i64,
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
        now: Clock,
        ttl_ms: UnixMs,
    },
    ReleaseLeases {
        node: String,
    },
}

/// What a write produced; the variant matches the `Write` that asked for it.
#[derive(Debug)]
pub enum Written {
    Persisted(Vec<Persisted>),
    Claimed(Vec<ClaimedDelivery>),
    Delivery(Option<DeliveryRow>),
    Purged(PurgeBatch),
    Discarded(Discarded),
    Leases(Vec<PollLease>),
    Settled(Settled),
    Done,
}

/// The answer to a write that was asked for `what`, when it is not the expected
/// variant: a bug, reported instead of a panic.
pub fn unexpected(what: &str, written: Written) -> anyhow::Error {
    anyhow!("the event store answered {what} with {written:?}")
}

// Fenced by the claim's token and state: a claimant whose lease ran out, and
// which another claim or a retry has replaced since, changes nothing.
const COMPLETE: &str = "UPDATE deliveries SET state = 'delivered', claimed_until = NULL,
         last_error = NULL, updated_at = $2
     WHERE id = $1 AND claim_token = $3 AND state = 'pending'";

const FAIL: &str = "UPDATE deliveries SET state = $2, next_at = $3, claimed_until = NULL,
         last_error = $4, updated_at = $5
     WHERE id = $1 AND claim_token = $6 AND state = 'pending'";

const RETRY: &str = concat!(
    "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = $2,
         claimed_until = NULL, claim_token = claim_token + 1, updated_at = $2 WHERE id = $1
     RETURNING ",
    delivery_columns!()
);

const PUT_BACK: &str = "UPDATE deliveries SET attempts = attempts - 1, next_at = $3,
         claimed_until = NULL, updated_at = $4
     WHERE id = $1 AND claim_token = $2 AND state = 'pending'";

const DISCARD: &str = concat!(
    "DELETE FROM deliveries WHERE id = $1 AND state = 'dead' RETURNING ",
    delivery_columns!()
);

const DELIVERY_STATE: &str = "SELECT state FROM deliveries WHERE id = $1";

const RELEASE_LEASES: &str = "UPDATE poll_leases SET expires_at = 0 WHERE holder = $1";
const FORGET_WANTS: &str = "DELETE FROM poll_wants WHERE node = $1";

/// Whether a fenced update found its claim (one row) or not (none).
fn settled(rows: u64) -> Settled {
    if rows == 0 {
        Settled::Stale
    } else {
        Settled::Recorded
    }
}

/// Records `settlement` of `delivery` at `now`, fenced by `lease`.
async fn settle<C: Sql>(
    conn: &C,
    delivery: i64,
    lease: u64,
    settlement: &Settlement,
    now: UnixMs,
) -> Result<Settled> {
    let rows = match settlement {
        Settlement::Done => {
            let params = [delivery.into(), now.into(), lease.into()];
            conn.execute(COMPLETE, &params).await?
        }
        Settlement::Failed { error, after } => {
            let (state, next_at) = match after {
                AfterFailure::RetryIn(delay) => {
                    ("pending", now.saturating_add(delay.as_millis() as UnixMs))
                }
                AfterFailure::Dead => ("dead", now),
            };
            let params = [
                delivery.into(),
                state.into(),
                next_at.into(),
                error.into(),
                now.into(),
                lease.into(),
            ];
            conn.execute(FAIL, &params).await?
        }
        Settlement::PutBack { after } => {
            let params = [
                delivery.into(),
                lease.into(),
                now.saturating_add(after.as_millis() as UnixMs).into(),
                now.into(),
            ];
            conn.execute(PUT_BACK, &params).await?
        }
    };
    Ok(settled(rows))
}

pub async fn apply<C: Sql>(conn: &C, write: &Write) -> Result<Written> {
    Ok(match write {
        Write::Ingest(record) => Written::Persisted(persist(conn, record).await?),
        Write::Poll(record) => Written::Persisted(persist_poll(conn, record).await?),
        Write::Claim {
            handlers,
            now,
            lease_ms,
            limit,
        } => {
            let now = resolve(conn, *now).await?;
            let until = now.saturating_add(*lease_ms);
            Written::Claimed(claim(conn, handlers, now, until, *limit).await?)
        }
        Write::Settle {
            delivery,
            lease,
            settlement,
            now,
        } => {
            let now = resolve(conn, *now).await?;
            Written::Settled(settle(conn, *delivery, *lease, settlement, now).await?)
        }
        Write::Retry { delivery, now } => {
            let params = [(*delivery).into(), (*now).into()];
            Written::Delivery(query_opt(conn, RETRY, &params, delivery_from_row).await?)
        }
        Write::Purge(step) => Written::Purged(purge(conn, step).await?),
        Write::Discard { delivery } => Written::Discarded(discard(conn, *delivery).await?),
        Write::State {
            plugin,
            changes,
            now,
        } => {
            apply_state(conn, plugin, changes, *now).await??;
            Written::Done
        }
        Write::KeepLeases {
            node,
            plugins,
            now,
            ttl_ms,
        } => {
            let now = resolve(conn, *now).await?;
            Written::Leases(poll_share::keep(conn, node, plugins, now, *ttl_ms).await?)
        }
        Write::ReleaseLeases { node } => {
            conn.execute(RELEASE_LEASES, &[node.into()]).await?;
            conn.execute(FORGET_WANTS, &[node.into()]).await?;
            Written::Done
        }
    })
}

// SKIP LOCKED: a delivery another node is claiming right now is left to it; once
// that claim commits, its lease keeps the row out of this query. The claimed rows
// come back with their events, in one statement.
const CLAIM_WITH_EVENTS: &str = concat!(
    "WITH due AS (
         SELECT id FROM deliveries
         WHERE state = 'pending' AND next_at <= $1
           AND (claimed_until IS NULL OR claimed_until <= $1)
           AND plugin IN (SELECT jsonb_array_elements_text(CAST($4::text AS jsonb)))
         ORDER BY next_at LIMIT $3
         FOR UPDATE SKIP LOCKED),
     claimed AS (
         UPDATE deliveries d
         SET claimed_until = $2, attempts = d.attempts + 1,
             claim_token = d.claim_token + 1, updated_at = $1
         FROM due WHERE d.id = due.id
         RETURNING d.id, d.event_id, d.plugin, d.attempts, d.claim_token)
     SELECT claimed.id, claimed.plugin, claimed.attempts, claimed.claim_token, ",
    event_columns!(),
    " FROM claimed JOIN events e ON e.id = claimed.event_id
     ORDER BY claimed.id"
);

// SQLite has no data-modifying WITH, and its one writer needs no row locks: the
// claimed rows come back first, then their events one by one.
const CLAIM: &str = "UPDATE deliveries SET claimed_until = $2, attempts = attempts + 1,
         claim_token = claim_token + 1, updated_at = $1
     WHERE id IN (
         SELECT id FROM deliveries
         WHERE state = 'pending' AND next_at <= $1
           AND (claimed_until IS NULL OR claimed_until <= $1)
           AND plugin IN (SELECT value FROM json_each($4))
         ORDER BY next_at LIMIT $3)
     RETURNING id, event_id, plugin, attempts, claim_token";

const EVENT: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events e WHERE e.id = $1"
);

/// Leases up to `limit` due deliveries of `handlers` until `until` and counts
/// their attempts.
async fn claim<C: Sql>(
    conn: &C,
    handlers: &[String],
    now: UnixMs,
    until: UnixMs,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>> {
    let handlers = serde_json::to_string(handlers)?;
    let params = [
        now.into(),
        until.into(),
        i64::from(limit).into(),
        handlers.as_str().into(),
    ];
    if C::DIALECT == Dialect::Postgres {
        return conn
            .query(CLAIM_WITH_EVENTS, &params, |row| {
                Ok(ClaimedDelivery {
                    id: row.required_int(0)?,
                    plugin: row.required_text(1)?,
                    attempt: row.required_int(2)? as u32,
                    lease: row.required_int(3)? as u64,
                    event: event_from_row(row, 4)?,
                })
            })
            .await;
    }
    let claimed = conn
        .query(CLAIM, &params, |row| {
            Ok((
                row.required_int(0)?,
                row.required_int(1)?,
                row.required_text(2)?,
                row.required_int(3)? as u32,
                row.required_int(4)? as u64,
            ))
        })
        .await?;
    let mut out = Vec::with_capacity(claimed.len());
    for (id, event, plugin, attempt, lease) in claimed {
        let event = query_opt(conn, EVENT, &[event.into()], |row| event_from_row(row, 0))
            .await?
            .ok_or_else(|| anyhow!("delivery {id} is of event {event}, which is not stored"))?;
        out.push(ClaimedDelivery {
            id,
            plugin,
            attempt,
            lease,
            event,
        });
    }
    Ok(out)
}

/// Deletes `delivery` if it is dead; else says why not.
async fn discard<C: Sql>(conn: &C, delivery: i64) -> Result<Discarded> {
    let id = Param::from(delivery);
    if let Some(row) = query_opt(conn, DISCARD, &[id], delivery_from_row).await? {
        return Ok(Discarded::Gone(row));
    }
    let state = query_opt(conn, DELIVERY_STATE, &[id], |row| row.required_text(0)).await?;
    Ok(match state {
        Some(state) => Discarded::NotDead(
            DeliveryState::parse(&state)
                .ok_or_else(|| anyhow!("delivery {delivery} has the unknown state {state:?}"))?,
        ),
        None => Discarded::NotFound,
    })
}

// Each purge batch first fixes its window: the next `limit` rows past `after` that
// are older than the cutoff, in id order, so that rows kept by the rules below are
// passed over once per run instead of being looked at again by every batch. The
// unary `+` keeps SQLite from scanning `received_at`'s index and sorting the whole
// old range to find the first few ids; the primary key already has them in order.
// The statements then delete within the window (ids `> $2` and `<= $3`), rechecking
// every condition, which PostgreSQL re-evaluates on a row another transaction
// changed meanwhile.
const DEAD_LETTER_WINDOW: &str = "SELECT MAX(id), COUNT(*) FROM (
         SELECT id FROM deliveries
         WHERE id > $2 AND state = 'dead' AND +updated_at < $1
         ORDER BY id LIMIT $3) AS batch";

const PURGE_DEAD_LETTERS: &str = "DELETE FROM deliveries
     WHERE id > $2 AND id <= $3 AND state = 'dead' AND updated_at < $1";

const EVENT_WINDOW: &str = "SELECT MAX(id), COUNT(*) FROM (
         SELECT id FROM events WHERE id > $2 AND +received_at < $1
         ORDER BY id LIMIT $3) AS batch";

// Only events whose every delivery was delivered lose them: a pending or dead
// delivery is unfinished work, and keeps its event (and so its request) stored.
// On SQLite the `+` keeps the planner from walking every delivered delivery by
// `deliveries_due` instead of looking up this window's few by `event_id`.
const PURGE_DELIVERED: Dialected = Dialected {
    sqlite: "DELETE FROM deliveries
     WHERE +state = 'delivered' AND event_id IN (
         SELECT e.id FROM events e
         WHERE e.id > $2 AND e.id <= $3 AND e.received_at < $1
           AND NOT EXISTS (SELECT 1 FROM deliveries u
                           WHERE u.event_id = e.id AND u.state <> 'delivered'))",
    postgres: "DELETE FROM deliveries
     WHERE state = 'delivered' AND event_id IN (
         SELECT e.id FROM events e
         WHERE e.id > $2 AND e.id <= $3 AND e.received_at < $1
           AND NOT EXISTS (SELECT 1 FROM deliveries u
                           WHERE u.event_id = e.id AND u.state <> 'delivered'))",
};

const PURGE_EVENTS: &str = "DELETE FROM events
     WHERE id > $2 AND id <= $3 AND received_at < $1
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)";

const REQUEST_WINDOW: &str = "SELECT MAX(id), COUNT(*) FROM (
         SELECT id FROM requests WHERE id > $2 AND +received_at < $1
         ORDER BY id LIMIT $3) AS batch";

// A request stays while an event it brought is stored, so that an event kept for
// its unfinished delivery keeps its raw request too.
const PURGE_REQUESTS: &str = "DELETE FROM requests
     WHERE id > $2 AND id <= $3 AND received_at < $1
       AND NOT EXISTS (SELECT 1 FROM events e WHERE e.request_id = requests.id)";

/// One batch of the retention purge: see `PurgeStep` and the statements above.
async fn purge<C: Sql>(conn: &C, step: &PurgeStep) -> Result<PurgeBatch> {
    let window = match step.target {
        PurgeTarget::DeadLetters => DEAD_LETTER_WINDOW,
        PurgeTarget::Events => EVENT_WINDOW,
        PurgeTarget::Requests => REQUEST_WINDOW,
    };
    let cutoff = Param::from(step.cutoff);
    let after = Param::from(step.after);
    let limit = Param::from(i64::from(step.limit));
    let (last, seen) = query_one(conn, window, &[cutoff, after, limit], |row| {
        Ok((row.int(0)?, row.required_int(1)?))
    })
    .await?;
    let Some(last) = last.filter(|_| seen > 0) else {
        return Ok(PurgeBatch::default());
    };
    let within = [cutoff, after, Param::from(last)];
    let mut batch = PurgeBatch {
        last: Some(last),
        ..PurgeBatch::default()
    };
    match step.target {
        PurgeTarget::DeadLetters => {
            batch.removed = conn.execute(PURGE_DEAD_LETTERS, &within).await?;
        }
        PurgeTarget::Events => {
            let delivered = PURGE_DELIVERED.text(C::DIALECT);
            batch.deliveries = conn.execute(delivered, &within).await?;
            batch.removed = conn.execute(PURGE_EVENTS, &within).await?;
        }
        PurgeTarget::Requests => {
            batch.removed = conn.execute(PURGE_REQUESTS, &within).await?;
        }
    }
    Ok(batch)
}
