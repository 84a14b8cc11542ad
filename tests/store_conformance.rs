//! The store's contract, run against both backends: the same case functions get a
//! SQLite store in a temp dir and a PostgreSQL store on a real throwaway server
//! (tests/common/postgres.rs). Then what only a shared database must do: several
//! store instances (nodes) on one database, and the database going away and
//! coming back under a running store.

mod common;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hookhost::store::postgres::{PostgresStore, SCHEMA_VERSION};
use hookhost::store::sqlite::{Commit, SqliteStore};
use hookhost::store::{
    AfterFailure, ClaimedDelivery, Clock, DeliveryFilter, DeliveryQueue, DeliveryRow,
    DeliveryState, Discarded, EventFilter, EventLog, EventStore, IngestRecord, NewEvent, Persisted,
    PollBook, PollLease, PollRecord, PurgeBatch, PurgeStep, PurgeTarget, RawRequest, SavedCursor,
    Settled, Settlement, StateChange, StateRefused, UnixMs, STATE_MAX_KEYS,
};

use common::postgres::Postgres;

/// Runs each case once per backend: `sqlite::<case>` and `postgres::<case>`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::SqliteStore::open(
                        &dir.path().join("events.sqlite3"),
                        super::Commit::Grouped,
                    )
                    .unwrap();
                    super::cases::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $case() {
                    let server = super::shared_server();
                    let url = server.create_database(&super::database_name());
                    let store = super::PostgresStore::open(&url).await.unwrap();
                    super::cases::$case(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

conformance!(
    a_retried_event_is_stored_once_and_queued_once,
    an_event_id_repeated_within_one_delivery_is_stored_once,
    concurrent_writes_all_land_and_the_raw_request_round_trips,
    listing_is_newest_first_with_a_cursor_and_filters,
    a_claimed_delivery_is_not_claimed_twice_until_its_lease_runs_out,
    a_failed_delivery_is_due_again_at_its_retry_time,
    purging_removes_old_events_with_their_requests_and_deliveries,
    purging_keeps_unfinished_deliveries_with_their_events_and_requests,
    a_dead_letter_goes_only_when_discarded_or_past_its_own_retention,
    the_purge_goes_in_bounded_batches_past_what_it_keeps,
    a_poll_saves_events_cursor_and_state_together_or_not_at_all,
    a_poll_lease_changes_hands_only_when_it_runs_out_and_fences_the_old_holder,
    a_claim_takes_only_deliveries_of_the_given_handlers_by_the_chosen_clock,
    poll_leases_are_spread_over_the_nodes_and_released_when_a_plugin_goes,
    state_is_per_plugin_and_a_refused_batch_changes_nothing,
    a_failing_write_does_not_fail_the_writes_committed_with_it,
    a_closed_store_refuses_writes,
);

/// One server for the PostgreSQL cases that run at the same time (each in its own
/// database); it stops when the last of them is done.
fn shared_server() -> Arc<Postgres> {
    static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = shared.upgrade() {
        return server;
    }
    let server = Arc::new(Postgres::start());
    *shared = Arc::downgrade(&server);
    server
}

/// A fresh database name on the shared server.
fn database_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("case_{n}")
}

fn record(event_ids: &[&str], subscribers: &[&str], at: UnixMs) -> IngestRecord {
    IngestRecord {
        plugin: "github".into(),
        received_at: at,
        request: Some(RawRequest {
            method: "POST".into(),
            path: "/".into(),
            query: "a=1".into(),
            headers: vec![("x-github-event".into(), "push".into())],
            body: b"{\"raw\":true}".to_vec(),
        }),
        events: event_ids
            .iter()
            .map(|id| NewEvent {
                event_id: id.to_string(),
                kind: "github.push".into(),
                subject: Some("acme/widgets".into()),
                payload: "{}".into(),
                subscribers: subscribers.iter().map(|s| s.to_string()).collect(),
            })
            .collect(),
    }
}

fn all(limit: u32) -> EventFilter {
    EventFilter {
        limit,
        ..EventFilter::default()
    }
}

/// The handler plugins the cases' claims are for: the subscriber of `record`'s
/// events.
fn handlers() -> Vec<String> {
    vec!["notify".to_string()]
}

fn all_deliveries() -> DeliveryFilter {
    DeliveryFilter {
        limit: 1000,
        ..Default::default()
    }
}

fn poll(from: Option<&str>, to: Option<&str>, ids: &[&str], state: Vec<StateChange>) -> PollRecord {
    PollRecord {
        plugin: "feed".into(),
        polled_at: 500,
        from_cursor: from.map(str::to_string),
        cursor: to.map(str::to_string),
        events: record(ids, &["notify"], 500).events,
        state,
        lease: None,
    }
}

/// Every batch of `target` older than `cutoff`, two rows at a time, as the host's
/// purge runs them; how many rows went.
/// Stores events `event_ids`, each queued for `subscribers`, received at `at`.
async fn ingest(
    store: &dyn EventStore,
    event_ids: &[&str],
    subscribers: &[&str],
    at: UnixMs,
) -> Vec<Persisted> {
    let record = record(event_ids, subscribers, at);
    store.persist_ingest(record).await.unwrap()
}

/// Claims up to `limit` deliveries to `handlers()` due at `now`, under `lease`.
async fn claim(
    store: &dyn EventStore,
    now: Clock,
    lease: Duration,
    limit: u32,
) -> Vec<ClaimedDelivery> {
    store
        .claim_due(&handlers(), now, lease, limit)
        .await
        .unwrap()
}

async fn purge_all(store: &dyn EventLog, target: PurgeTarget, cutoff: UnixMs) -> u64 {
    let mut after = 0;
    let mut removed = 0;
    loop {
        let step = PurgeStep {
            target,
            cutoff,
            after,
            limit: 2,
        };
        let batch = store.purge(step).await.unwrap();
        removed += batch.removed;
        match batch.last {
            Some(last) => {
                assert!(
                    last > after,
                    "a batch went backwards: {batch:?} after {after}"
                );
                after = last;
            }
            None => return removed,
        }
    }
}

/// The purge of events older than `cutoff` and then of their requests; how many
/// events went.
async fn purge_events(store: &dyn EventLog, cutoff: UnixMs) -> u64 {
    let events = purge_all(store, PurgeTarget::Events, cutoff).await;
    purge_all(store, PurgeTarget::Requests, cutoff).await;
    events
}

/// The settlement of a failed attempt that dead-letters the delivery.
fn dead_letter(error: &str) -> Settlement {
    Settlement::Failed {
        error: error.into(),
        after: AfterFailure::Dead,
    }
}

/// The settlement of a failed attempt that makes the delivery due again `ms`
/// after the failure.
fn retry_in(error: &str, ms: u64) -> Settlement {
    Settlement::Failed {
        error: error.into(),
        after: AfterFailure::RetryIn(Duration::from_millis(ms)),
    }
}

fn new_id(persisted: Persisted) -> i64 {
    match persisted {
        Persisted::New(id) => id,
        other => panic!("expected a new event, got {other:?}"),
    }
}

mod cases {
    use super::*;

    /// The cursor saved for `feed`'s polls; `None` when none is (or no poll is saved).
    async fn feed_cursor(store: &dyn EventStore) -> Option<String> {
        let saved = store.poll_cursor("feed").await.unwrap();
        saved.and_then(|saved| saved.cursor)
    }

    pub async fn a_retried_event_is_stored_once_and_queued_once(store: Arc<dyn EventStore>) {
        let first = ingest(&*store, &["a"], &["notify"], 1).await;
        let id = new_id(first[0]);
        let again = ingest(&*store, &["a", "b"], &["notify"], 2).await;
        assert_eq!(again[0], Persisted::Duplicate(id));
        assert!(matches!(again[1], Persisted::New(_)));
        // A retry of everything already stored is all duplicates.
        let retried = ingest(&*store, &["a", "b"], &["notify"], 3).await;
        assert!(retried.iter().all(|p| matches!(p, Persisted::Duplicate(_))));
        assert_eq!(store.list_events(all(10)).await.unwrap().len(), 2);
        let deliveries = store.list_deliveries(all_deliveries()).await.unwrap();
        assert_eq!(deliveries.len(), 2);
    }

    pub async fn an_event_id_repeated_within_one_delivery_is_stored_once(
        store: Arc<dyn EventStore>,
    ) {
        let outcome = ingest(&*store, &["a", "a"], &["notify"], 1).await;
        let id = new_id(outcome[0]);
        assert_eq!(outcome[1], Persisted::Duplicate(id));
        assert_eq!(store.list_events(all(10)).await.unwrap().len(), 1);
        assert_eq!(
            store.list_deliveries(all_deliveries()).await.unwrap().len(),
            1
        );
    }

    pub async fn concurrent_writes_all_land_and_the_raw_request_round_trips(
        store: Arc<dyn EventStore>,
    ) {
        let mut tasks = Vec::new();
        for n in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                ingest(&*store, &[&format!("e{n}")], &[], n).await
            }));
        }
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(new_id(task.await.unwrap()[0]));
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);
        let events = store.list_events(all(1000)).await.unwrap();
        assert_eq!(events.len(), 200);
        let (event, request) = store.get_event(events[0].id).await.unwrap().unwrap();
        assert_eq!(
            (event.id, &event.event_id, event.received_at),
            (events[0].id, &events[0].event_id, events[0].received_at)
        );
        assert_eq!(event.kind, "github.push");
        assert_eq!(event.subject.as_deref(), Some("acme/widgets"));
        assert_eq!(request, record(&[], &[], 0).request);
        assert!(store.get_event(i64::MAX).await.unwrap().is_none());
        // A poll result has no request.
        let polled = store
            .persist_poll(poll(None, None, &["p"], vec![]))
            .await
            .unwrap();
        let (_, request) = store.get_event(new_id(polled[0])).await.unwrap().unwrap();
        assert_eq!(request, None);
    }

    pub async fn listing_is_newest_first_with_a_cursor_and_filters(store: Arc<dyn EventStore>) {
        for n in 0..5 {
            ingest(&*store, &[&format!("e{n}")], &["notify"], n).await;
        }
        let mut other = record(&["x"], &["audit"], 9);
        other.plugin = "stripe".into();
        other.events[0].kind = "stripe.charge_succeeded".into();
        other.events[0].subject = Some("ch_1".into());
        store.persist_ingest(other).await.unwrap();

        let page = store
            .list_events(EventFilter {
                plugin: Some("github".into()),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = page.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["e4", "e3"]);
        let next = store
            .list_events(EventFilter {
                before: Some(page[1].id),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        let ids: Vec<&str> = next.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["e2", "e1", "e0"]);
        for (kind, expected) in [
            ("github.*", 5),
            ("github.push", 5),
            ("git.*", 0),
            ("github", 0),
            ("stripe.charge_*", 0),
            ("stripe.*", 1),
        ] {
            let found = store
                .list_events(EventFilter {
                    kind: Some(kind.into()),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(found.len(), expected, "{kind}");
        }
        let by_subject = store
            .list_events(EventFilter {
                subject: Some("ch_1".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_subject.len(), 1);
        assert_eq!(by_subject[0].plugin, "stripe");

        let deliveries = store.list_deliveries(all_deliveries()).await.unwrap();
        assert_eq!(deliveries.len(), 6);
        assert!(deliveries.windows(2).all(|w| w[0].id > w[1].id));
        let audit = store
            .list_deliveries(DeliveryFilter {
                plugin: Some("audit".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].event, by_subject[0].id);
        assert_eq!(audit[0].state, DeliveryState::Pending);
        assert_eq!(audit[0].attempts, 0);
        let of_event = store
            .list_deliveries(DeliveryFilter {
                event: Some(page[0].id),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(of_event.len(), 1);
        assert_eq!(of_event[0].plugin, "notify");
        let older = store
            .list_deliveries(DeliveryFilter {
                before: Some(deliveries[1].id),
                state: Some(DeliveryState::Pending),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        let older_ids: Vec<i64> = older.iter().map(|d| d.id).collect();
        assert_eq!(older_ids, [deliveries[2].id, deliveries[3].id]);
        assert!(store
            .list_deliveries(DeliveryFilter {
                state: Some(DeliveryState::Dead),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn a_claimed_delivery_is_not_claimed_twice_until_its_lease_runs_out(
        store: Arc<dyn EventStore>,
    ) {
        ingest(&*store, &["a"], &["notify"], 100).await;
        assert_eq!(store.next_due().await.unwrap(), Some(100));
        let lease = Duration::from_millis(1000);
        let claimed = claim(&*store, 100.into(), lease, 10).await;
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].attempt, 1);
        assert_eq!(claimed[0].plugin, "notify");
        assert_eq!(claimed[0].event.event_id, "a");
        assert_eq!(store.next_due().await.unwrap(), Some(1100));
        assert!(claim(&*store, 500.into(), lease, 10).await.is_empty());
        let again = claim(&*store, 1100.into(), lease, 10).await;
        assert_eq!(again[0].attempt, 2);
        let stale = store
            .settle(
                again[0].id,
                claimed[0].lease,
                dead_letter("late"),
                1150.into(),
            )
            .await
            .unwrap();
        assert_eq!(stale, Settled::Stale);
        store
            .settle(
                again[0].id,
                again[0].lease,
                dead_letter("boom"),
                1200.into(),
            )
            .await
            .unwrap();
        assert!(claim(&*store, 99_999.into(), lease, 10).await.is_empty());
        let dead = store
            .list_deliveries(DeliveryFilter {
                state: Some(DeliveryState::Dead),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].attempts, 2);
        assert_eq!(dead[0].last_error.as_deref(), Some("boom"));
        let retried = store.retry(again[0].id, 2000).await.unwrap().unwrap();
        assert_eq!(retried.state, DeliveryState::Pending);
        assert_eq!(retried.attempts, 0);
        assert_eq!(retried.next_attempt_at, 2000);
        assert_eq!(retried.last_error.as_deref(), Some("boom"));
        assert!(store.retry(i64::MAX, 2000).await.unwrap().is_none());
        let third = claim(&*store, 2000.into(), lease, 10).await;
        assert_eq!(third[0].attempt, 1);
        // The claim before the retry is fenced off too.
        assert_eq!(
            store
                .settle(third[0].id, again[0].lease, Settlement::Done, 2001.into())
                .await
                .unwrap(),
            Settled::Stale
        );
        store
            .settle(third[0].id, third[0].lease, Settlement::Done, 2001.into())
            .await
            .unwrap();
        assert_eq!(store.next_due().await.unwrap(), None);
        let done = store.list_deliveries(all_deliveries()).await.unwrap();
        assert_eq!(done[0].state, DeliveryState::Delivered);
        assert_eq!(done[0].last_error, None);
        assert_eq!(done[0].updated_at, 2001);
    }

    pub async fn a_failed_delivery_is_due_again_at_its_retry_time(store: Arc<dyn EventStore>) {
        ingest(&*store, &["a", "b", "c"], &["notify"], 100).await;
        let lease = Duration::from_secs(60);
        // The limit bounds one claim; the rest stay due.
        let first = claim(&*store, 100.into(), lease, 2).await;
        assert_eq!(first.len(), 2);
        let rest = claim(&*store, 100.into(), lease, 10).await;
        assert_eq!(rest.len(), 1);
        store
            .settle(
                first[0].id,
                first[0].lease,
                retry_in("later", 4800),
                200.into(),
            )
            .await
            .unwrap();
        assert!(claim(&*store, 4999.into(), lease, 10).await.is_empty());
        let retried = claim(&*store, 5000.into(), lease, 10).await;
        assert_eq!(retried.len(), 1);
        assert_eq!(retried[0].id, first[0].id);
        assert_eq!(retried[0].attempt, 2);
    }

    pub async fn purging_removes_old_events_with_their_requests_and_deliveries(
        store: Arc<dyn EventStore>,
    ) {
        ingest(&*store, &["old"], &["notify"], 100).await;
        ingest(&*store, &["new"], &["notify"], 900).await;
        // Only a delivered delivery lets its event go.
        let lease = Duration::from_secs(30);
        let claimed = claim(&*store, 100.into(), lease, 10).await;
        assert_eq!(claimed.len(), 1);
        store
            .settle(
                claimed[0].id,
                claimed[0].lease,
                Settlement::Done,
                150.into(),
            )
            .await
            .unwrap();
        assert_eq!(purge_events(store.as_ref(), 500).await, 1);
        let left = store.list_events(all(10)).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].event_id, "new");
        assert!(store
            .get_event(left[0].id)
            .await
            .unwrap()
            .unwrap()
            .1
            .is_some());
        let deliveries = store.list_deliveries(all_deliveries()).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        // The purged event may arrive again and is then new.
        let again = ingest(&*store, &["old"], &[], 1000).await;
        assert!(matches!(again[0], Persisted::New(_)));
        assert_eq!(purge_events(store.as_ref(), 500).await, 0);
    }

    pub async fn purging_keeps_unfinished_deliveries_with_their_events_and_requests(
        store: Arc<dyn EventStore>,
    ) {
        let ingest = |ids: &'static [&'static str], subscribers: &'static [&'static str], at| {
            let store = store.clone();
            async move { new_id(ingest(&*store, ids, subscribers, at).await[0]) }
        };
        let delivered = ingest(&["delivered"], &["notify"], 100).await;
        let dead = ingest(&["dead"], &["notify"], 100).await;
        let retrying = ingest(&["retrying"], &["notify", "audit"], 100).await;
        let unsubscribed = ingest(&["unsubscribed"], &[], 100).await;
        let recent = ingest(&["recent"], &["notify"], 900).await;
        let both = ["notify".to_string(), "audit".to_string()];
        let claimed = store
            .claim_due(&both, 100.into(), Duration::from_secs(30), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 4);
        let mut audit = None;
        for delivery in &claimed {
            let (id, lease) = (delivery.id, delivery.lease);
            let settled = match (delivery.event.id, delivery.plugin.as_str()) {
                (event, _) if event == delivered => {
                    store.settle(id, lease, Settlement::Done, 150.into()).await
                }
                (event, _) if event == dead => {
                    store
                        .settle(id, lease, dead_letter("gave up"), 150.into())
                        .await
                }
                (_, "notify") => store.settle(id, lease, Settlement::Done, 150.into()).await,
                _ => {
                    audit = Some((id, lease));
                    store
                        .settle(id, lease, retry_in("later", 9_850), 150.into())
                        .await
                }
            };
            assert_eq!(settled.unwrap(), Settled::Recorded);
        }

        assert_eq!(purge_events(store.as_ref(), 500).await, 2);
        let mut left: Vec<i64> = store
            .list_events(all(10))
            .await
            .unwrap()
            .iter()
            .map(|event| event.id)
            .collect();
        left.sort();
        assert_eq!(left, [dead, retrying, recent]);
        for kept in [dead, retrying] {
            let (_, request) = store.get_event(kept).await.unwrap().unwrap();
            assert!(request.is_some(), "event {kept} lost its request");
        }
        assert!(store.get_event(delivered).await.unwrap().is_none());
        assert!(store.get_event(unsubscribed).await.unwrap().is_none());
        let states = |deliveries: Vec<DeliveryRow>| {
            let mut states: Vec<(i64, String, DeliveryState)> = deliveries
                .into_iter()
                .map(|d| (d.event, d.plugin, d.state))
                .collect();
            states.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            states
        };
        let deliveries = store.list_deliveries(all_deliveries()).await.unwrap();
        assert_eq!(
            states(deliveries),
            [
                (dead, "notify".to_string(), DeliveryState::Dead),
                (retrying, "audit".to_string(), DeliveryState::Pending),
                (retrying, "notify".to_string(), DeliveryState::Delivered),
                (recent, "notify".to_string(), DeliveryState::Pending),
            ]
        );

        // Once its last delivery is delivered, the event goes at the next purge.
        let (audit, lease) = audit.expect("the audit delivery was claimed");
        store
            .settle(audit, lease, Settlement::Done, 10_000.into())
            .await
            .unwrap();
        assert_eq!(purge_events(store.as_ref(), 500).await, 1);
        assert!(store.get_event(retrying).await.unwrap().is_none());
        let deliveries = store.list_deliveries(all_deliveries()).await.unwrap();
        assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    }

    pub async fn a_dead_letter_goes_only_when_discarded_or_past_its_own_retention(
        store: Arc<dyn EventStore>,
    ) {
        for (id, at) in [("first", 100), ("second", 100), ("pending", 100)] {
            ingest(&*store, &[id], &["notify"], at).await;
        }
        let claimed = claim(&*store, 100.into(), Duration::from_secs(30), 10).await;
        let by_event = |name: &str| {
            claimed
                .iter()
                .find(|d| d.event.event_id == name)
                .unwrap()
                .clone()
        };
        let (first, second, pending) = (by_event("first"), by_event("second"), by_event("pending"));
        store
            .settle(first.id, first.lease, dead_letter("no"), 200.into())
            .await
            .unwrap();
        store
            .settle(second.id, second.lease, dead_letter("no"), 300.into())
            .await
            .unwrap();
        store
            .settle(
                pending.id,
                pending.lease,
                retry_in("later", 9_700),
                300.into(),
            )
            .await
            .unwrap();

        // Not dead: left alone, whatever its age. Unknown: said so.
        assert_eq!(
            store.discard(pending.id).await.unwrap(),
            Discarded::NotDead(DeliveryState::Pending)
        );
        assert_eq!(store.discard(999_999).await.unwrap(), Discarded::NotFound);
        // Past their own retention (counted from when they went dead), one by one.
        let dead_letters = |cutoff| purge_all(store.as_ref(), PurgeTarget::DeadLetters, cutoff);
        assert_eq!(dead_letters(200).await, 0);
        assert_eq!(dead_letters(250).await, 1);
        assert_eq!(dead_letters(10_000).await, 1);
        let again = ingest(&*store, &["third"], &["notify"], 100).await;
        let third_event = new_id(again[0]);
        let third = claim(&*store, 100.into(), Duration::from_secs(30), 10).await;
        assert_eq!(third.len(), 1);
        store
            .settle(third[0].id, third[0].lease, dead_letter("no"), 400.into())
            .await
            .unwrap();
        // Younger than its retention: kept; the event stays for it.
        assert_eq!(
            purge_all(store.as_ref(), PurgeTarget::DeadLetters, 400).await,
            0
        );
        assert_eq!(
            purge_events(store.as_ref(), 10_000).await,
            2,
            "first and second"
        );
        assert!(store.get_event(third_event).await.unwrap().is_some());
        // Discarded by an operator: gone as it was, and its event with the next purge.
        match store.discard(third[0].id).await.unwrap() {
            Discarded::Gone(row) => {
                assert_eq!(row.id, third[0].id);
                assert_eq!(row.state, DeliveryState::Dead);
                assert_eq!(row.last_error.as_deref(), Some("no"));
            }
            other => panic!("expected the dead letter to go, got {other:?}"),
        }
        assert_eq!(
            store.discard(third[0].id).await.unwrap(),
            Discarded::NotFound
        );
        assert_eq!(purge_events(store.as_ref(), 10_000).await, 1);
        assert!(store.get_event(third_event).await.unwrap().is_none());
        // The pending delivery kept its event through all of it.
        let left = store.list_deliveries(all_deliveries()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, pending.id);
        assert!(store.get_event(pending.event.id).await.unwrap().is_some());
    }

    pub async fn the_purge_goes_in_bounded_batches_past_what_it_keeps(store: Arc<dyn EventStore>) {
        let mut ids = Vec::new();
        for (name, subscribers) in [
            ("a", &[][..]),
            ("b", &["notify"][..]),
            ("c", &[][..]),
            ("d", &[][..]),
            ("e", &[][..]),
        ] {
            let persisted = ingest(&*store, &[name], subscribers, 100).await;
            ids.push(new_id(persisted[0]));
        }
        ingest(&*store, &["recent"], &[], 900).await;
        let step = |after| PurgeStep {
            target: PurgeTarget::Events,
            cutoff: 500,
            after,
            limit: 2,
        };
        let batch = |after| {
            let store = store.clone();
            async move { store.purge(step(after)).await.unwrap() }
        };
        // a and b (b's delivery is pending: kept), then c and d, then e, then done.
        let first = batch(0).await;
        assert_eq!(
            first,
            PurgeBatch {
                last: Some(ids[1]),
                removed: 1,
                deliveries: 0
            }
        );
        let second = batch(ids[1]).await;
        assert_eq!((second.last, second.removed), (Some(ids[3]), 2));
        let third = batch(ids[3]).await;
        assert_eq!((third.last, third.removed), (Some(ids[4]), 1));
        assert_eq!(batch(ids[4]).await, PurgeBatch::default());
        // A new run starts over and finds only what it keeps.
        assert_eq!(batch(0).await.removed, 0);
        let left = store.list_events(all(10)).await.unwrap();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    pub async fn a_poll_saves_events_cursor_and_state_together_or_not_at_all(
        store: Arc<dyn EventStore>,
    ) {
        assert_eq!(store.poll_cursor("feed").await.unwrap(), None);
        let etag = || vec![StateChange::Set("etag".into(), b"v1".to_vec())];
        let saved = store
            .persist_poll(poll(None, Some("2"), &["1", "2"], etag()))
            .await
            .unwrap();
        assert!(saved.iter().all(|p| matches!(p, Persisted::New(_))));
        assert_eq!(
            store.poll_cursor("feed").await.unwrap(),
            Some(SavedCursor {
                cursor: Some("2".into()),
                polled_at: 500
            })
        );
        assert_eq!(
            store.state_get("feed", "etag").await.unwrap(),
            Some(b"v1".to_vec())
        );

        // A poll that started from a cursor that is no longer saved changes nothing.
        let stale = vec![StateChange::Set("etag".into(), b"stale".to_vec())];
        let error = store
            .persist_poll(poll(None, Some("3"), &["3"], stale))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error.downcast_ref::<StateRefused>(),
                Some(StateRefused::CursorMoved { .. })
            ),
            "{error:#}"
        );
        // So does one whose state writes break the key limit.
        let too_many = (0..=STATE_MAX_KEYS)
            .map(|n| StateChange::Set(format!("k{n}"), vec![]))
            .collect();
        let error = store
            .persist_poll(poll(Some("2"), Some("3"), &["3"], too_many))
            .await
            .unwrap_err();
        assert!(format!("{error:#}").contains("state keys"), "{error:#}");
        assert_eq!(store.list_events(all(10)).await.unwrap().len(), 2);
        assert_eq!(feed_cursor(&*store).await.as_deref(), Some("2"));
        assert_eq!(
            store.state_get("feed", "etag").await.unwrap(),
            Some(b"v1".to_vec())
        );
        assert_eq!(store.state_len("feed").await.unwrap(), 1);

        // No cursor from the plugin keeps the saved one; repeated items are duplicates.
        let again = store
            .persist_poll(poll(Some("2"), None, &["2", "3"], vec![]))
            .await
            .unwrap();
        assert!(matches!(again[0], Persisted::Duplicate(_)));
        assert!(matches!(again[1], Persisted::New(_)));
        assert_eq!(feed_cursor(&*store).await.as_deref(), Some("2"));
        // The poll's events are queued for their subscribers like a webhook's.
        assert_eq!(
            store.list_deliveries(all_deliveries()).await.unwrap().len(),
            3
        );
    }

    pub async fn a_poll_lease_changes_hands_only_when_it_runs_out_and_fences_the_old_holder(
        store: Arc<dyn EventStore>,
    ) {
        let plugins = vec!["feed".to_string()];
        let ttl = Duration::from_millis(1000);
        let a = store
            .keep_poll_leases("a", &plugins, 0.into(), ttl)
            .await
            .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].plugin, "feed");
        assert_eq!(a[0].expires_at, 1000);
        assert!(store
            .keep_poll_leases("b", &plugins, 500.into(), ttl)
            .await
            .unwrap()
            .is_empty());
        // Renewing keeps the token, so a's poll in flight stays valid.
        let renewed = store
            .keep_poll_leases("a", &plugins, 900.into(), ttl)
            .await
            .unwrap();
        assert_eq!(renewed[0].token, a[0].token);
        assert_eq!(renewed[0].expires_at, 1900);
        // a stops renewing (paused); b takes over once the lease ran out.
        let b = store
            .keep_poll_leases("b", &plugins, 1900.into(), ttl)
            .await
            .unwrap();
        assert!(b[0].token > a[0].token);
        // a comes back: the lease is b's now.
        assert!(store
            .keep_poll_leases("a", &plugins, 2000.into(), ttl)
            .await
            .unwrap()
            .is_empty());
        let fenced = PollRecord {
            lease: Some(a[0].token),
            ..poll(None, Some("old"), &["1"], vec![])
        };
        let error = store.persist_poll(fenced).await.unwrap_err();
        assert!(
            matches!(
                error.downcast_ref::<StateRefused>(),
                Some(StateRefused::LeaseLost { .. })
            ),
            "{error:#}"
        );
        assert_eq!(store.poll_cursor("feed").await.unwrap(), None);
        assert!(store.list_events(all(10)).await.unwrap().is_empty());
        let current = PollRecord {
            lease: Some(b[0].token),
            ..poll(None, Some("new"), &["1"], vec![])
        };
        store.persist_poll(current).await.unwrap();
        // A poll under a lease no node ever held is refused too.
        let unknown = PollRecord {
            plugin: "other".into(),
            lease: Some(1),
            ..poll(None, Some("x"), &[], vec![])
        };
        let error = store.persist_poll(unknown).await.unwrap_err();
        assert!(
            matches!(
                error.downcast_ref::<StateRefused>(),
                Some(StateRefused::LeaseLost { current: None, .. })
            ),
            "{error:#}"
        );
        // Released at shutdown, the lease is free at once.
        store.release_poll_leases("b").await.unwrap();
        let c = store
            .keep_poll_leases("c", &plugins, 2000.into(), ttl)
            .await
            .unwrap();
        assert!(c[0].token > b[0].token);
    }

    pub async fn a_claim_takes_only_deliveries_of_the_given_handlers_by_the_chosen_clock(
        store: Arc<dyn EventStore>,
    ) {
        ingest(&*store, &["a"], &["notify", "audit"], 100).await;
        let lease = Duration::from_secs(3600);
        // A node without `audit` loaded leaves its delivery alone.
        let claimed = claim(&*store, 100.into(), lease, 10).await;
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].plugin, "notify");
        assert!(store
            .claim_due(&["other".to_string()], 100.into(), lease, 10)
            .await
            .unwrap()
            .is_empty());
        let audit = vec!["audit".to_string()];
        assert_eq!(
            store.due_in(&audit, 40.into()).await.unwrap(),
            Some(Duration::from_millis(60))
        );
        assert_eq!(
            store
                .due_in(&["other".to_string()], 40.into())
                .await
                .unwrap(),
            None
        );
        // By the database's clock (now, far past 100) it is due, and once claimed
        // it is leased for an hour by that clock, whatever the caller's says.
        let by_database = store
            .claim_due(&audit, Clock::Database, lease, 10)
            .await
            .unwrap();
        assert_eq!(by_database.len(), 1);
        assert_eq!(by_database[0].plugin, "audit");
        assert!(by_database[0].lease > 0);
        assert!(store
            .claim_due(&audit, Clock::Database, lease, 10)
            .await
            .unwrap()
            .is_empty());
        let wait = store
            .due_in(&audit, Clock::Database)
            .await
            .unwrap()
            .unwrap();
        assert!(wait > Duration::from_secs(3000), "{wait:?}");
        assert_eq!(
            store
                .settle(
                    by_database[0].id,
                    by_database[0].lease,
                    Settlement::Done,
                    Clock::Database
                )
                .await
                .unwrap(),
            Settled::Recorded
        );
    }

    pub async fn poll_leases_are_spread_over_the_nodes_and_released_when_a_plugin_goes(
        store: Arc<dyn EventStore>,
    ) {
        let plugins: Vec<String> = (1..=4).map(|n| format!("p{n}")).collect();
        let ttl = Duration::from_millis(1000);
        let names = |leases: Vec<PollLease>| -> Vec<String> {
            leases.into_iter().map(|lease| lease.plugin).collect()
        };
        // Alone, a takes every lease.
        let a = store
            .keep_poll_leases("a", &plugins, 0.into(), ttl)
            .await
            .unwrap();
        assert_eq!(names(a), plugins);
        // b joins: everything is held, so it gets nothing yet...
        let b = store
            .keep_poll_leases("b", &plugins, 100.into(), ttl)
            .await
            .unwrap();
        assert!(b.is_empty());
        // ...a hands over what b should hold, and keeps its share...
        let a = store
            .keep_poll_leases("a", &plugins, 200.into(), ttl)
            .await
            .unwrap();
        assert_eq!(names(a), ["p3", "p4"]);
        // ...which b takes at its next round.
        let b = store
            .keep_poll_leases("b", &plugins, 300.into(), ttl)
            .await
            .unwrap();
        assert_eq!(names(b), ["p1", "p2"]);
        // p4 is removed from a: its lease is released, and b takes it at once.
        let a = store
            .keep_poll_leases("a", &plugins[..3], 400.into(), ttl)
            .await
            .unwrap();
        assert_eq!(names(a), ["p3"]);
        let b = store
            .keep_poll_leases("b", &plugins, 500.into(), ttl)
            .await
            .unwrap();
        assert_eq!(names(b), ["p1", "p2", "p4"]);
        // b stops (releases at shutdown): a, the only node left, takes what it can poll.
        store.release_poll_leases("b").await.unwrap();
        let a = store
            .keep_poll_leases("a", &plugins[..3], 600.into(), ttl)
            .await
            .unwrap();
        assert_eq!(names(a), ["p1", "p2", "p3"]);
    }

    pub async fn state_is_per_plugin_and_a_refused_batch_changes_nothing(
        store: Arc<dyn EventStore>,
    ) {
        let set = |key: &str| StateChange::Set(key.into(), key.as_bytes().to_vec());
        store
            .state_apply("a", vec![set("x")], 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.state_get("b", "x").await.unwrap(), None);
        assert_eq!(
            store.state_get("a", "x").await.unwrap(),
            Some(b"x".to_vec())
        );
        let batch: Vec<StateChange> = (0..STATE_MAX_KEYS).map(|n| set(&format!("k{n}"))).collect();
        let refused = store.state_apply("a", batch, 2).await.unwrap().unwrap_err();
        assert!(
            matches!(refused, StateRefused::TooManyKeys { would_hold, .. } if would_hold == STATE_MAX_KEYS + 1)
        );
        assert_eq!(store.state_len("a").await.unwrap(), 1);
        // Up to the limit is fine, and overwriting a key does not count twice.
        let batch: Vec<StateChange> = (1..STATE_MAX_KEYS)
            .map(|n| set(&format!("k{n}")))
            .chain([set("x")])
            .collect();
        store.state_apply("a", batch, 3).await.unwrap().unwrap();
        assert_eq!(store.state_len("a").await.unwrap(), STATE_MAX_KEYS);
        store
            .state_apply(
                "a",
                vec![
                    StateChange::Delete("x".into()),
                    StateChange::Delete("nope".into()),
                ],
                4,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.state_len("a").await.unwrap(), STATE_MAX_KEYS - 1);
        assert_eq!(store.state_get("a", "x").await.unwrap(), None);
    }

    /// Group commit puts concurrent writes in one transaction; a write that fails
    /// there must take nothing else down with it, and leave nothing of itself.
    pub async fn a_failing_write_does_not_fail_the_writes_committed_with_it(
        store: Arc<dyn EventStore>,
    ) {
        let mut tasks = Vec::new();
        for n in 0..60u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                if n % 3 == 0 {
                    let too_many = (0..=STATE_MAX_KEYS)
                        .map(|k| StateChange::Set(format!("{n}-{k}"), vec![1]))
                        .collect();
                    let refused = store.state_apply("greedy", too_many, n).await.unwrap();
                    assert!(refused.is_err());
                } else {
                    let saved = ingest(&*store, &[&format!("e{n}")], &["notify"], n).await;
                    new_id(saved[0]);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.list_events(all(100)).await.unwrap().len(), 40);
        assert_eq!(
            store.list_deliveries(all_deliveries()).await.unwrap().len(),
            40
        );
        assert_eq!(store.state_len("greedy").await.unwrap(), 0);
    }

    pub async fn a_closed_store_refuses_writes(store: Arc<dyn EventStore>) {
        ingest(&*store, &["a"], &[], 1).await;
        store.health().await.unwrap();
        store.close().await.unwrap();
        assert!(store.persist_ingest(record(&["b"], &[], 2)).await.is_err());
    }
}

// What only a database that several nodes share must do.

async fn open(url: &str) -> Arc<PostgresStore> {
    Arc::new(PostgresStore::open(url).await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let server = shared_server();
    let url = server.create_database("migrations");
    let opening: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::open(&url).await })
        })
        .collect();
    for node in opening {
        node.await.unwrap().unwrap();
    }
    let client = connect(&url).await;
    let version: i32 = client
        .query_one("SELECT version FROM hookhost_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, SCHEMA_VERSION);
    let rows = client
        .query("SELECT version FROM hookhost_schema", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    client
        .execute(
            "UPDATE hookhost_schema SET version = $1",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let error = PostgresStore::open(&url).await.err().unwrap();
    assert!(format!("{error:#}").contains("newer"), "{error:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_sent_to_two_nodes_at_once_is_stored_once_and_both_get_its_id() {
    let server = shared_server();
    let url = server.create_database("cross_node_dedup");
    let (a, b) = (open(&url).await, open(&url).await);
    let mut tasks = Vec::new();
    for n in 0..100 {
        for node in [a.clone(), b.clone()] {
            tasks.push(tokio::spawn(async move {
                let saved = node
                    .persist_ingest(record(&[&format!("e{n}"), "shared"], &["notify"], n))
                    .await
                    .unwrap();
                (n, saved)
            }));
        }
    }
    let mut ids = std::collections::BTreeMap::<u64, Vec<Persisted>>::new();
    let mut shared = Vec::new();
    for task in tasks {
        let (n, saved) = task.await.unwrap();
        ids.entry(n).or_default().push(saved[0]);
        shared.push(saved[1]);
    }
    let id_of = |p: &Persisted| match p {
        Persisted::New(id) | Persisted::Duplicate(id) => *id,
    };
    for (n, outcomes) in &ids {
        assert_eq!(id_of(&outcomes[0]), id_of(&outcomes[1]), "e{n}");
        let new = outcomes
            .iter()
            .filter(|p| matches!(p, Persisted::New(_)))
            .count();
        assert_eq!(new, 1, "e{n}: {outcomes:?}");
    }
    assert_eq!(
        shared
            .iter()
            .filter(|p| matches!(p, Persisted::New(_)))
            .count(),
        1
    );
    assert!(shared.iter().all(|p| id_of(p) == id_of(&shared[0])));
    assert_eq!(a.list_events(all(1000)).await.unwrap().len(), 101);
    assert_eq!(
        b.list_deliveries(all_deliveries()).await.unwrap().len(),
        101
    );
}

/// PostgreSQL persists a group's webhook writes in one statement; one write the
/// database refuses (a NUL in text, which PostgreSQL cannot store) must fail alone,
/// and the others must keep their dedup: `shared` is new for exactly one of them.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_write_the_database_refuses_fails_alone() {
    let server = shared_server();
    let url = server.create_database("refused_alone");
    let store = open(&url).await;
    let mut tasks = Vec::new();
    for n in 0..90u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let own = if n % 9 == 0 {
                format!("bad\0{n}")
            } else {
                format!("e{n}")
            };
            let saved = store
                .persist_ingest(record(&[&own, "shared"], &["notify"], n))
                .await;
            (n, saved)
        }));
    }
    let mut shared = Vec::new();
    for task in tasks {
        let (n, saved) = task.await.unwrap();
        if n % 9 == 0 {
            assert!(saved.is_err(), "write {n} should have been refused");
            continue;
        }
        let saved = saved.unwrap();
        assert!(matches!(saved[0], Persisted::New(_)), "e{n}: {saved:?}");
        shared.push(saved[1]);
    }
    let id_of = |p: &Persisted| match p {
        Persisted::New(id) | Persisted::Duplicate(id) => *id,
    };
    let new = shared
        .iter()
        .filter(|p| matches!(p, Persisted::New(_)))
        .count();
    assert_eq!(new, 1, "{shared:?}");
    assert!(shared.iter().all(|p| id_of(p) == id_of(&shared[0])));
    assert_eq!(store.list_events(all(1000)).await.unwrap().len(), 81);
    assert_eq!(
        store.list_deliveries(all_deliveries()).await.unwrap().len(),
        81
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_claiming_at_once_never_get_the_same_delivery() {
    let server = shared_server();
    let url = server.create_database("skip_locked");
    let (a, b) = (open(&url).await, open(&url).await);
    for n in 0..30 {
        let ids: Vec<String> = (0..10).map(|k| format!("e{n}-{k}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        a.persist_ingest(record(&ids, &["notify"], 100))
            .await
            .unwrap();
    }
    let claim_all = |node: Arc<PostgresStore>| async move {
        let mut claimed = Vec::new();
        loop {
            let batch = node
                .claim_due(&handlers(), 1000.into(), Duration::from_secs(60), 7)
                .await
                .unwrap();
            if batch.is_empty() {
                return claimed;
            }
            claimed.extend(batch.into_iter().map(|d| d.id));
        }
    };
    let (from_a, from_b) = tokio::join!(
        tokio::spawn(claim_all(a.clone())),
        tokio::spawn(claim_all(b.clone()))
    );
    let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
    assert!(!from_a.is_empty() && !from_b.is_empty());
    let mut every: Vec<i64> = from_a.iter().chain(&from_b).copied().collect();
    every.sort();
    let claimed = every.len();
    every.dedup();
    assert_eq!(every.len(), claimed, "a delivery was claimed twice");
    assert_eq!(claimed, 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_starting_leaves_the_claims_and_leases_of_running_nodes_alone() {
    let server = shared_server();
    let url = server.create_database("leases_kept");
    let a = open(&url).await;
    a.persist_ingest(record(&["x"], &["notify"], 100))
        .await
        .unwrap();
    let claimed = a
        .claim_due(&handlers(), 100.into(), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let plugins = vec!["feed".to_string()];
    let lease = a
        .keep_poll_leases("a", &plugins, 100.into(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(lease.len(), 1);

    let b = open(&url).await;
    assert!(b
        .claim_due(&handlers(), 200.into(), Duration::from_secs(60), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .keep_poll_leases("b", &plugins, 200.into(), Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    // Node a dies: once its claim runs out, b completes the delivery.
    drop(a);
    let taken = b
        .claim_due(
            &handlers(),
            (100 + 60_000).into(),
            Duration::from_secs(60),
            10,
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, claimed[0].id);
    assert_eq!(taken[0].attempt, 2);
}

/// The database stops under a running store: writes and `health()` fail within
/// seconds (never hang), nothing of a failed write is stored, and once the
/// database is back the same store instance writes again.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_survives_its_database_going_away_and_coming_back() {
    let mut server = Postgres::start();
    let url = server.url();
    let store = open(&url).await;
    ingest(&*store, &["before"], &["notify"], 1).await;
    store.health().await.unwrap();

    server.stop();
    // Bounded only so that a hang fails the test instead of stalling it.
    let bound = Duration::from_secs(30);
    let started = Instant::now();
    let failed = tokio::time::timeout(
        bound,
        store.persist_ingest(record(&["during-1", "during-2"], &["notify"], 2)),
    )
    .await
    .expect("a write hung while the database was down");
    assert!(failed.is_err());
    let health = tokio::time::timeout(bound, store.health())
        .await
        .expect("health() hung while the database was down");
    let error = health.unwrap_err();
    assert!(
        format!("{error:#}").contains(&format!("127.0.0.1:{}", server.port())),
        "the error names the database: {error:#}"
    );
    let read = tokio::time::timeout(bound, store.list_events(all(10)))
        .await
        .expect("a read hung while the database was down");
    assert!(read.is_err());
    eprintln!(
        "with the database down, a write, health() and a read failed within {:?}",
        started.elapsed()
    );

    server.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store
            .persist_ingest(record(&["after"], &["notify"], 3))
            .await
        {
            Ok(saved) => {
                new_id(saved[0]);
                break;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "writes still fail after the database came back: {error:#}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    store.health().await.unwrap();
    let ids: Vec<String> = store
        .list_events(all(10))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, ["after", "before"]);
    // Nothing of the failed write either: no request, no delivery.
    let client = connect(&url).await;
    let requests: i64 = client
        .query_one("SELECT COUNT(*) FROM requests", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(requests, 2);
    assert_eq!(
        store.list_deliveries(all_deliveries()).await.unwrap().len(),
        2
    );
}

/// The harness itself: a cluster keeps its data across a stop and a start on the
/// same port, and refuses connections while stopped.
#[tokio::test(flavor = "multi_thread")]
async fn the_test_server_keeps_its_data_across_a_restart_on_the_same_port() {
    let mut server = Postgres::start();
    let url = server.url();
    let client = connect(&url).await;
    client
        .batch_execute("CREATE TABLE kept (n INT); INSERT INTO kept VALUES (7);")
        .await
        .unwrap();
    drop(client);
    server.stop();
    assert!(tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .is_err());
    server.start_again();
    let client = connect(&url).await;
    let row = client.query_one("SELECT n FROM kept", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}
