//! The SQLite store's own behaviour; what every backend must do is in
//! `tests/store_conformance.rs`.

use std::time::Duration;

use rusqlite::Connection;

use super::{Commit, SqliteStore, SCHEMA_VERSION};
use crate::store::{
    ClaimedDelivery, Clock, DeliveryQueue, EventLog, EventStore, IngestRecord, NewEvent, Settled,
    Settlement, UnixMs,
};

fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("events.sqlite3"), Commit::Grouped).unwrap()
}

/// An ingest of events `event_ids`, each queued for `subscribers`; these tests look
/// at nothing else of it.
fn record(event_ids: &[&str], subscribers: &[&str], at: UnixMs) -> IngestRecord {
    let event = |id: &&str| NewEvent {
        event_id: id.to_string(),
        kind: "test.event".into(),
        subject: None,
        payload: "{}".into(),
        subscribers: subscribers.iter().map(|s| s.to_string()).collect(),
    };
    IngestRecord {
        plugin: "test".into(),
        received_at: at,
        request: None,
        events: event_ids.iter().map(event).collect(),
    }
}

/// Stores event `a`, received at 100, with a delivery to `notify`.
async fn ingest_a_for_notify(store: &SqliteStore) {
    let record = record(&["a"], &["notify"], 100);
    store.persist_ingest(record).await.unwrap();
}

/// Claims what is due for `notify` at `now` (ten at the most) under `lease`.
async fn claim_notify(store: &SqliteStore, now: UnixMs, lease: Duration) -> Vec<ClaimedDelivery> {
    let handlers = ["notify".to_string()];
    let claimed = store.claim_due(&handlers, Clock::At(now), lease, 10).await;
    claimed.unwrap()
}

#[tokio::test]
async fn leases_of_a_previous_run_are_released_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store(&dir);
        ingest_a_for_notify(&store).await;
        let claimed = claim_notify(&store, 100, Duration::from_secs(3600)).await;
        assert_eq!(claimed.len(), 1);
    }
    let store = store(&dir);
    assert_eq!(claim_notify(&store, 101, Duration::ZERO).await.len(), 1);
}

#[tokio::test]
async fn closing_empties_the_wal_into_the_file_and_refuses_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    store
        .persist_ingest(record(&["a", "b"], &[], 1))
        .await
        .unwrap();
    let wal = dir.path().join("events.sqlite3-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    store.close().await.unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    let refused = store.persist_ingest(record(&["c"], &[], 2)).await;
    assert!(refused.is_err());
    // What was committed is in the database file alone.
    std::fs::remove_file(&wal).unwrap();
    let conn = Connection::open(dir.path().join("events.sqlite3")).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(&dir);
    let path = dir.path().join("events.sqlite3");
    let error = SqliteStore::open(&path, Commit::Grouped).err().unwrap();
    assert!(format!("{error:#}").contains("in use"), "{error:#}");
    drop(first);
    SqliteStore::open(&path, Commit::Grouped).unwrap();
}

#[tokio::test]
async fn a_store_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite3");
    drop(store(&dir));
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let error = SqliteStore::open(&path, Commit::Grouped).err().unwrap();
    assert!(format!("{error:#}").contains("newer"), "{error:#}");
}

#[tokio::test]
async fn a_put_back_delivery_is_due_again_with_its_attempt_uncounted_unless_claimed_since() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    ingest_a_for_notify(&store).await;
    let lease = Duration::from_secs(60);
    let claimed = claim_notify(&store, 100, lease).await;
    let first = &claimed[0];
    assert_eq!(first.attempt, 1);
    let put_back = |ms| Settlement::PutBack {
        after: Duration::from_millis(ms),
    };
    let recorded = store
        .settle(first.id, first.lease, put_back(399), Clock::At(101))
        .await;
    assert_eq!(recorded.unwrap(), Settled::Recorded);
    assert!(claim_notify(&store, 499, lease).await.is_empty());
    let again = claim_notify(&store, 500, lease).await;
    assert_eq!(again[0].attempt, 1, "the put-back attempt was not counted");

    // A put-back under an older claim changes nothing: the first claim is not this one.
    let stale = store
        .settle(again[0].id, first.lease, put_back(99), Clock::At(501))
        .await;
    assert_eq!(stale.unwrap(), Settled::Stale);
    assert!(claim_notify(&store, 600, lease).await.is_empty());
}

#[tokio::test]
async fn a_write_that_finds_the_database_locked_past_the_busy_timeout_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let other = Connection::open(dir.path().join("events.sqlite3")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let error = store
        .persist_ingest(record(&["a"], &[], 100))
        .await
        .unwrap_err();
    assert!(crate::store::is_unavailable(&error), "{error:#}");
    other.execute_batch("ROLLBACK").unwrap();
    store
        .persist_ingest(record(&["a"], &[], 100))
        .await
        .unwrap();
}
