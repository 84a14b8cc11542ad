//! The webhook writes (`Write::Ingest`) of one group, persisted together in two
//! statements instead of a savepoint and three or more statements each: one query
//! finds which of the group's events are already stored, one statement inserts every
//! request, event and delivery the group adds (arrays unnested, data-modifying
//! CTEs). A group of N webhooks costs 2 round trips (find, insert; 4 with BEGIN and
//! COMMIT when the group holds other writes too) instead of 2 + 5N, and the server
//! parses and plans two statements, not 5N.
//!
//! What each caller gets is what `sql::records::persist` gives it, write by write in
//! the group's order: an event already stored, or added by an earlier write of the
//! same group, is a `Duplicate` of that id; a write whose events are all duplicates
//! stores nothing, not even its request; deliveries are queued only for new events.
//! An event that another transaction (another node) inserted meanwhile is found
//! once that transaction has committed (the insert waits for it), as in `persist`.
//!
//! The statement fails or succeeds as a whole: the writer then rolls the group
//! back and runs it again a savepoint per write (`writer`), so a write that fails
//! fails alone, exactly as before. Events are inserted in key order, so that two
//! nodes' groups that share events take their locks in the same order instead of
//! deadlocking.
//!
//! A group of webhook writes only runs without BEGIN and COMMIT, in two round
//! trips: the insert is a transaction of its own, committed (and flushed, as
//! `synchronous_commit` says) before the server's ready-for-query ends its
//! answer, so no caller is answered before its rows are durable. The lookup
//! before it reads committed rows either way (read committed takes a snapshot
//! per statement), so it needs no transaction. If anything fails after the insert
//! committed (the second lookup, below), the group fails although its rows are
//! stored; a provider's retry then finds them as duplicates, as after a commit
//! whose answer was lost.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Context, Result};
use deadpool_postgres::GenericClient;

use crate::store::sql::rows::headers_to_json;
use crate::store::{IngestRecord, Persisted};

/// The ids of stored events among the keys given as two arrays (plugins, event
/// ids); NULL for a key not stored. A lookup per key, never a join: a join's plan,
/// made while the table was small, may scan the whole table on every call once
/// it has grown (the statement is prepared once per connection).
const FIND_EVENTS: &str = "SELECT k.plugin, k.event_id,
         (SELECT e.id FROM events e WHERE e.plugin = k.plugin AND e.event_id = k.event_id)
     FROM unnest($1::text[], $2::text[]) AS k(plugin, event_id)";

// `request_rows` is materialized once (nextval is volatile), so each request gets
// one id, which its events refer to. Deliveries are due at once by the database's
// clock, as `QUEUE_DELIVERY` in `sql::records` says why.
const INSERT_ALL: &str = "WITH request_rows AS (
    SELECT nextval(pg_get_serial_sequence('requests', 'id')) AS id, r.*
    FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::bytea[])
      AS r(ord, plugin, received_at, method, path, query, headers, body)
), requests_in AS (
    INSERT INTO requests (id, plugin, received_at, method, path, query, headers, body)
    SELECT id, plugin, received_at, method, path, query, headers, body FROM request_rows
), events_in AS (
    INSERT INTO events (plugin, event_id, kind, subject, payload, received_at, request_id)
    SELECT e.plugin, e.event_id, e.kind, e.subject, e.payload, e.received_at, request_rows.id
    FROM unnest($9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                $15::bigint[])
      AS e(request, plugin, event_id, kind, subject, payload, received_at)
    LEFT JOIN request_rows ON request_rows.ord = e.request
    ORDER BY e.plugin, e.event_id
    ON CONFLICT (plugin, event_id) DO NOTHING
    RETURNING plugin, event_id, id
), deliveries_in AS (
    INSERT INTO deliveries (event_id, plugin, state, next_at, updated_at)
    SELECT events_in.id, d.subscriber, 'pending',
           LEAST(d.received_at, (extract(epoch FROM clock_timestamp()) * 1000)::bigint),
           d.received_at
    FROM unnest($16::text[], $17::text[], $18::text[], $19::bigint[])
      AS d(plugin, event_id, subscriber, received_at)
    JOIN events_in ON events_in.plugin = d.plugin AND events_in.event_id = d.event_id
    ON CONFLICT (event_id, plugin) DO NOTHING
)
SELECT plugin, event_id, id FROM events_in";

/// An event's dedup key: (plugin, event id).
type Key<'r> = (&'r str, &'r str);

/// What became of one event of a write, before the ids of the group's new events
/// are known.
enum Planned<'r> {
    /// Stored before this group: this id.
    Stored(i64),
    /// Inserted by this write, unless another transaction got there first.
    Inserted(Key<'r>),
    /// Inserted (or found) by an earlier write of this group, or earlier in this one.
    SameAs(Key<'r>),
}

/// The statement's parameters: one array per column, one row per array index.
#[derive(Default)]
struct Rows<'r> {
    request_ord: Vec<i64>,
    request_plugin: Vec<&'r str>,
    request_received_at: Vec<i64>,
    request_method: Vec<&'r str>,
    request_path: Vec<&'r str>,
    request_query: Vec<&'r str>,
    request_headers: Vec<String>,
    request_body: Vec<&'r [u8]>,
    event_request: Vec<Option<i64>>,
    event_plugin: Vec<&'r str>,
    event_id: Vec<&'r str>,
    event_kind: Vec<&'r str>,
    event_subject: Vec<Option<&'r str>>,
    event_payload: Vec<&'r str>,
    event_received_at: Vec<i64>,
    delivery_plugin: Vec<&'r str>,
    delivery_event_id: Vec<&'r str>,
    delivery_subscriber: Vec<&'r str>,
    delivery_received_at: Vec<i64>,
}

/// Persists `records` through `tx` (a transaction, or a connection outside one:
/// then the insert commits by itself), each as `sql::records::persist` would, in
/// order. The inner `Err` is one write's own failure (it stored nothing); the outer
/// one is the statement's, after which a transaction must be rolled back.
pub async fn persist(
    tx: &impl GenericClient,
    records: &[&IngestRecord],
) -> Result<Vec<Result<Vec<Persisted>>>> {
    let stored = find(tx, records.iter().flat_map(|record| keys(record))).await?;

    let mut rows = Rows::default();
    let mut claimed = HashSet::new();
    let mut plans = Vec::with_capacity(records.len());
    for record in records {
        plans.push(plan(record, &stored, &mut claimed, &mut rows));
    }

    let mut inserted = HashMap::with_capacity(claimed.len());
    if !rows.request_ord.is_empty() || !rows.event_id.is_empty() {
        let statement = tx
            .prepare_cached(INSERT_ALL)
            .await
            .context("preparing the group's insert")?;
        let found = tx
            .query(
                &statement,
                &[
                    &rows.request_ord,
                    &rows.request_plugin,
                    &rows.request_received_at,
                    &rows.request_method,
                    &rows.request_path,
                    &rows.request_query,
                    &rows.request_headers,
                    &rows.request_body,
                    &rows.event_request,
                    &rows.event_plugin,
                    &rows.event_id,
                    &rows.event_kind,
                    &rows.event_subject,
                    &rows.event_payload,
                    &rows.event_received_at,
                    &rows.delivery_plugin,
                    &rows.delivery_event_id,
                    &rows.delivery_subscriber,
                    &rows.delivery_received_at,
                ],
            )
            .await
            .context("inserting the group's requests, events and deliveries")?;
        for row in &found {
            let key: (String, String) = (row.try_get(0)?, row.try_get(1)?);
            inserted.insert(key, row.try_get::<_, i64>(2)?);
        }
    }

    // Claimed keys the insert skipped: another transaction inserted them first and
    // has committed (the insert waited for it), so they can be found now.
    let raced: Vec<Key<'_>> = claimed
        .iter()
        .filter(|key| !inserted.contains_key(&owned(**key)))
        .copied()
        .collect();
    let found_late = if raced.is_empty() {
        HashMap::new()
    } else {
        find(tx, raced.into_iter()).await?
    };
    let id_of = |key: Key<'_>| -> Result<(i64, bool)> {
        let key_owned = owned(key);
        if let Some(id) = inserted.get(&key_owned) {
            return Ok((*id, true));
        }
        match found_late.get(&key_owned) {
            Some(id) => Ok((*id, false)),
            None => bail!(
                "event {:?} of plugin {:?} was neither inserted nor found",
                key.1,
                key.0
            ),
        }
    };

    let mut outcomes = Vec::with_capacity(plans.len());
    for plan in plans {
        let events = match plan {
            Ok(events) => events,
            Err(error) => {
                outcomes.push(Err(error));
                continue;
            }
        };
        let mut persisted = Vec::with_capacity(events.len());
        for event in events {
            persisted.push(match event {
                Planned::Stored(id) => Persisted::Duplicate(id),
                Planned::Inserted(key) => match id_of(key)? {
                    (id, true) => Persisted::New(id),
                    (id, false) => Persisted::Duplicate(id),
                },
                Planned::SameAs(key) => Persisted::Duplicate(id_of(key)?.0),
            });
        }
        outcomes.push(Ok(persisted));
    }
    Ok(outcomes)
}

fn keys(record: &IngestRecord) -> impl Iterator<Item = Key<'_>> {
    record
        .events
        .iter()
        .map(|event| (record.plugin.as_str(), event.event_id.as_str()))
}

fn owned((plugin, event_id): Key<'_>) -> (String, String) {
    (plugin.to_string(), event_id.to_string())
}

/// The ids of the stored events among `keys`.
async fn find<'k>(
    tx: &impl GenericClient,
    keys: impl Iterator<Item = Key<'k>>,
) -> Result<HashMap<(String, String), i64>> {
    let (plugins, event_ids): (Vec<&str>, Vec<&str>) = keys.unzip();
    let mut stored = HashMap::with_capacity(plugins.len());
    if plugins.is_empty() {
        return Ok(stored);
    }
    let statement = tx
        .prepare_cached(FIND_EVENTS)
        .await
        .context("preparing the search for stored events")?;
    for row in tx
        .query(&statement, &[&plugins, &event_ids])
        .await
        .context("looking for stored events")?
    {
        if let Some(id) = row.try_get::<_, Option<i64>>(2)? {
            stored.insert((row.try_get(0)?, row.try_get(1)?), id);
        }
    }
    Ok(stored)
}

/// Decides what `record` adds to the group's rows and what each of its events
/// becomes; `claimed` holds the keys that earlier writes of the group insert.
fn plan<'r>(
    record: &'r IngestRecord,
    stored: &HashMap<(String, String), i64>,
    claimed: &mut HashSet<Key<'r>>,
    rows: &mut Rows<'r>,
) -> Result<Vec<Planned<'r>>> {
    let plugin = record.plugin.as_str();
    let known = |key: Key<'r>, claimed: &HashSet<Key<'r>>| {
        stored
            .get(&owned(key))
            .map(|id| Planned::Stored(*id))
            .or_else(|| claimed.contains(&key).then_some(Planned::SameAs(key)))
    };
    // A provider's retry of something fully stored changes nothing, not even the
    // request log.
    if !record.events.is_empty() && keys(record).all(|key| known(key, claimed).is_some()) {
        return Ok(keys(record).filter_map(|key| known(key, claimed)).collect());
    }
    let received_at = record.received_at as i64;
    let request = match &record.request {
        Some(request) => {
            let headers = headers_to_json(&request.headers)?;
            let ord = rows.request_ord.len() as i64;
            rows.request_ord.push(ord);
            rows.request_plugin.push(plugin);
            rows.request_received_at.push(received_at);
            rows.request_method.push(&request.method);
            rows.request_path.push(&request.path);
            rows.request_query.push(&request.query);
            rows.request_headers.push(headers);
            rows.request_body.push(&request.body);
            Some(ord)
        }
        None => None,
    };
    let mut planned = Vec::with_capacity(record.events.len());
    for event in &record.events {
        let key = (plugin, event.event_id.as_str());
        if let Some(known) = known(key, claimed) {
            planned.push(known);
            continue;
        }
        claimed.insert(key);
        rows.event_request.push(request);
        rows.event_plugin.push(plugin);
        rows.event_id.push(&event.event_id);
        rows.event_kind.push(&event.kind);
        rows.event_subject.push(event.subject.as_deref());
        rows.event_payload.push(&event.payload);
        rows.event_received_at.push(received_at);
        for subscriber in &event.subscribers {
            rows.delivery_plugin.push(plugin);
            rows.delivery_event_id.push(&event.event_id);
            rows.delivery_subscriber.push(subscriber);
            rows.delivery_received_at.push(received_at);
        }
        planned.push(Planned::Inserted(key));
    }
    Ok(planned)
}
