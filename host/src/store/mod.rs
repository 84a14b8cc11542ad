//! The store: what the host promises is on disk before it acknowledges a webhook
//! or a poll, the durable queue of deliveries to handler plugins, where polling
//! stands, and plugins' `state`.
//!
//! # Layout
//! - this file: the rows, and the store as narrow traits, one per part:
//!   `EventLog`, `DeliveryQueue`, `PollBook`, `StateStore`. A component takes the
//!   part it uses; `EventStore` is all of them on one database, plus its health and
//!   shutdown, which is what a backend implements and the host holds.
//! - `sql/`: the shared SQL core. Every statement, the logic of each write (an
//!   ingest, a poll save, a claim, state changes), the column lists and row
//!   decoding, listing filters, group commit's bounds and answers, and the
//!   implementation of the narrow traits, written once over a small `Sql`
//!   connection trait.
//! - `sqlite/`: the embedded backend (one file, one writer thread); `postgres/`: the
//!   one every node of a fleet shares (a pool, writer tasks, migrations, TLS, and
//!   the fleet's deployed `components`). Each holds only what its database needs.
//! - `backend`: picks one at startup; `kind_pattern`: the `prefix.*` rule.
//!
//! Nothing here imports the rest of the host. Delivery claiming works the same on
//! both backends: a claim sets a lease (`claimed_until`) instead of taking a lock,
//! which PostgreSQL takes with `SELECT ... FOR UPDATE SKIP LOCKED`, and a claimant
//! that dies simply lets its lease run out. Each claim also gets a fencing token
//! (`claim_token`), and completing or failing a delivery changes it only under
//! the token of its current claim, so a claimant that outlived its lease cannot
//! undo what the next one did. Leases run out by the database's clock
//! (`Clock::Database`), never a node's.

pub mod backend;
pub mod components;
pub mod kind_pattern;
pub mod postgres;
pub mod sql;
pub mod sqlite;

pub use sql::group::DEFAULT_WRITE_QUEUE;

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

/// Milliseconds since the Unix epoch.
pub type UnixMs = u64;

/// Which clock decides a write that compares times: whether a delivery is due,
/// whether a lease ran out, and when a new one does.
///
/// Nodes of a fleet disagree about the time (a node whose clock runs fast would
/// take leases others still hold), so the host always asks for `Database`: the
/// database's own clock, read inside the write's statement, after any wait for
/// a connection or a group commit. `At` fixes the time, for tests of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Database,
    At(UnixMs),
}

impl From<UnixMs> for Clock {
    fn from(at: UnixMs) -> Self {
        Clock::At(at)
    }
}

/// What became of a state change of a claimed delivery (see
/// `DeliveryQueue::settle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Recorded,
    /// The claim was no longer the caller's: its lease ran out and another claim
    /// (another node's, or this one's later attempt) or an operator's retry has
    /// taken the delivery since. Nothing changed.
    Stale,
}

/// The HTTP request a provider sent, kept byte for byte so that it can be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One event as a plugin emitted it, with the plugins subscribed to its kind.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The provider's id; unique per source plugin.
    pub event_id: String,
    pub kind: String,
    pub subject: Option<String>,
    /// A JSON document (validated before it gets here).
    pub payload: String,
    /// Handler plugins that get a delivery of this event if it is new.
    pub subscribers: Vec<String>,
}

/// Everything one accepted webhook (or poll) produced, persisted in one transaction.
#[derive(Debug, Clone)]
pub struct IngestRecord {
    pub plugin: String,
    pub received_at: UnixMs,
    /// `None` for a poll result, which has no request.
    pub request: Option<RawRequest>,
    pub events: Vec<NewEvent>,
}

/// What became of one event of an `IngestRecord`, in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted {
    /// Stored now under this host id; its deliveries were queued.
    New(i64),
    /// `(plugin, event id)` was already stored under this host id; nothing changed.
    Duplicate(i64),
}

/// A stored event as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEventRow {
    /// The host's id: increasing in the order events were stored.
    pub id: i64,
    pub plugin: String,
    pub event_id: String,
    pub kind: String,
    pub subject: Option<String>,
    pub payload: String,
    pub received_at: UnixMs,
}

/// Which events `list_events` returns. Newest first; `before` is the cursor (a host
/// id from the previous page), `kind` is an exact kind or a `prefix.*` pattern.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub plugin: Option<String>,
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub before: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Gave up after the plugin's attempt limit; only `retry` moves it again.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "dead" => Some(DeliveryState::Dead),
            _ => None,
        }
    }
}

/// One (event, handler plugin) pair and how its delivery is going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    /// The host id of the event.
    pub event: i64,
    pub plugin: String,
    pub state: DeliveryState,
    /// Attempts started so far (a crash during an attempt counts).
    pub attempts: u32,
    pub next_attempt_at: UnixMs,
    pub last_error: Option<String>,
    pub updated_at: UnixMs,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub plugin: Option<String>,
    pub state: Option<DeliveryState>,
    pub event: Option<i64>,
    pub before: Option<i64>,
    pub limit: u32,
}

/// A delivery handed to the dispatcher, with the event it carries. `attempt` is
/// this attempt's number, starting at 1.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub plugin: String,
    pub attempt: u32,
    /// The claim's fencing token: larger every time the delivery is claimed or
    /// retried. Settling the delivery under an older token changes nothing.
    pub lease: u64,
    pub event: StoredEventRow,
}

/// How an attempt at a claimed delivery ended: what `DeliveryQueue::settle`
/// records.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// Delivered.
    Done,
    /// The handler failed: the error is recorded and the delivery is due again
    /// or dead, as `after` says.
    Failed { error: String, after: AfterFailure },
    /// The handler never ran (no slot or instance was free): the attempt is
    /// uncounted and the delivery due again `after` from now.
    PutBack { after: Duration },
}

/// What to do with a delivery whose attempt failed.
#[derive(Debug, Clone, Copy)]
pub enum AfterFailure {
    /// Due again this long after the failure, by the clock that records it.
    RetryIn(Duration),
    Dead,
}

/// What one bounded batch of the retention purge looks at (see `EventLog::purge`).
/// Each batch covers the next `limit` rows of its table past `after` (an id) that
/// are older than `cutoff`, and removes those of them that may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeStep {
    pub target: PurgeTarget,
    pub cutoff: UnixMs,
    /// The `last` of the previous batch of the same run; 0 to start.
    pub after: i64,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeTarget {
    /// Dead deliveries that went dead before `cutoff` (`dead_letter_retention`).
    DeadLetters,
    /// Events stored before `cutoff` whose deliveries are all delivered, with those
    /// deliveries. An event with a pending or dead delivery stays, whatever its age.
    Events,
    /// Raw requests stored before `cutoff` that no stored event points at any more.
    Requests,
}

/// What one purge batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeBatch {
    /// The largest id the batch looked at: the next batch's `after`. `None` when
    /// no row past `after` is older than the cutoff: the run is over.
    pub last: Option<i64>,
    /// Rows of the target's table deleted (events, requests or dead deliveries).
    pub removed: u64,
    /// Delivered deliveries deleted with their events (`PurgeTarget::Events` only).
    pub deliveries: u64,
}

/// What `DeliveryQueue::discard` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discarded {
    /// The dead letter, as it was when it was deleted.
    Gone(DeliveryRow),
    /// Only a dead delivery can be discarded; this one is in this state.
    NotDead(DeliveryState),
    NotFound,
}

/// One poll's result: everything in it is saved in ONE transaction, so a crash can
/// neither skip items (cursor saved, events lost) nor double them (events saved,
/// cursor lost, so the same items come again and would be stored again were it not
/// for the dedup key).
///
/// The save is fenced twice, inside the same transaction: by the poll lease it ran
/// under (`lease`, several nodes with one poller per plugin at a time) and by the
/// cursor it started from (`from_cursor`), so a stale poll fails instead of
/// overwriting a newer one.
#[derive(Debug, Clone)]
pub struct PollRecord {
    pub plugin: String,
    pub polled_at: UnixMs,
    /// The cursor the poll was given. The save is refused, changing nothing, when
    /// the stored cursor is no longer this one.
    pub from_cursor: Option<String>,
    /// The cursor to save; `None` keeps the current one.
    pub cursor: Option<String>,
    /// The poll's events with their subscribers; stored and queued as by
    /// `persist_ingest` with no request.
    pub events: Vec<NewEvent>,
    /// The plugin's `state` writes made during the poll, in order.
    pub state: Vec<StateChange>,
    /// The fencing token of the poll lease the poll ran under. The save is refused,
    /// changing nothing, when the lease has since changed hands (its stored token is
    /// no longer this one), so a node that was paused or cut off past its lease can
    /// never write over what the new holder saved. `None` (a poll asked for through
    /// the API on a node that does not hold the lease) relies on `from_cursor` alone.
    pub lease: Option<u64>,
}

/// One node's hold on polling one plugin: while it lasts, only that node polls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollLease {
    pub plugin: String,
    /// Larger every time the lease changes hands (the fencing token).
    pub token: u64,
    pub expires_at: UnixMs,
}

/// Where a plugin's polling stands in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCursor {
    /// `None` until a poll returned a cursor.
    pub cursor: Option<String>,
    /// When the last successful poll was saved.
    pub polled_at: UnixMs,
}

/// One write to a plugin's key-value state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    Set(String, Vec<u8>),
    Delete(String),
}

impl StateChange {
    pub fn key(&self) -> &str {
        match self {
            StateChange::Set(key, _) | StateChange::Delete(key) => key,
        }
    }
}

/// Limits of one plugin's key-value state; every backend enforces them the same.
pub const STATE_MAX_KEY_BYTES: usize = 256;
pub const STATE_MAX_VALUE_BYTES: usize = 64 * 1024;
pub const STATE_MAX_KEYS: u64 = 1000;

/// Why a batch of state writes was refused (nothing of it was applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateRefused {
    #[error("plugin {plugin} would hold {would_hold} state keys; the limit is {STATE_MAX_KEYS}")]
    TooManyKeys { plugin: String, would_hold: u64 },
    #[error("the poll of {plugin} ran under lease token {token}, but the lease has since changed hands (token now {current:?})")]
    LeaseLost {
        plugin: String,
        token: u64,
        current: Option<u64>,
    },
    #[error("the poll of {plugin} started from cursor {started:?}, but the saved cursor is now {saved:?}")]
    CursorMoved {
        plugin: String,
        started: Option<String>,
        saved: Option<String>,
    },
}

/// Marks a store error as the database being unreachable or unable to take writes
/// for now (connection refused, pool timed out, the writer stopped), as opposed to
/// a failing query. Backends attach it with `.context(Unavailable)`; the API then
/// answers 503 with `Retry-After` instead of 500. Deeper contexts keep it findable
/// with `is_unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the database is unavailable")]
pub struct Unavailable;

/// Whether `error` says the database is unavailable (see `Unavailable`).
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    error.downcast_ref::<Unavailable>().is_some()
}

/// The events the host stored, with the requests they came in: what a webhook
/// writes, the API lists and retention purges. Every write returns only once it
/// is durable.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Stores the request and its new events, and queues their deliveries, in one
    /// transaction. Events already stored for this plugin are reported as duplicates
    /// and neither stored nor queued again; a record whose events are all duplicates
    /// stores nothing.
    async fn persist_ingest(&self, record: IngestRecord) -> Result<Vec<Persisted>>;

    async fn list_events(&self, filter: EventFilter) -> Result<Vec<StoredEventRow>>;

    /// The event and the raw request it came with (`None` for poll results).
    async fn get_event(&self, id: i64) -> Result<Option<(StoredEventRow, Option<RawRequest>)>>;

    /// Runs one bounded batch of the retention purge (see `PurgeStep`). It never
    /// deletes a pending delivery, nor a dead one younger than its cutoff, nor the
    /// event and request such a delivery needs.
    async fn purge(&self, step: PurgeStep) -> Result<PurgeBatch>;
}

/// The durable queue of deliveries to handler plugins: what the dispatcher claims
/// and settles, and the API lists and retries.
#[async_trait::async_trait]
pub trait DeliveryQueue: Send + Sync + 'static {
    async fn list_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<DeliveryRow>>;

    /// Leases up to `limit` pending deliveries of `handlers` due at `now` for
    /// `lease` and counts the attempt. A delivery whose lease ran out is due
    /// again. Deliveries of other plugins are left to the nodes that have them.
    async fn claim_due(
        &self,
        handlers: &[String],
        now: Clock,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>>;

    /// When the next pending, unleased delivery falls due, if any.
    async fn next_due(&self) -> Result<Option<UnixMs>>;

    /// How long from `now` until the next pending, unleased delivery of
    /// `handlers` falls due (zero if one is due), if any.
    async fn due_in(&self, handlers: &[String], now: Clock) -> Result<Option<Duration>>;

    /// Records how the attempt at the delivery claimed under `lease` ended
    /// (see `Settlement`), unless the claim is no longer that one
    /// (`Settled::Stale`, nothing changed).
    async fn settle(
        &self,
        delivery: i64,
        lease: u64,
        settlement: Settlement,
        now: Clock,
    ) -> Result<Settled>;

    /// Puts a delivery back in the queue, due now, with a fresh attempt count.
    /// `None` when there is no such delivery.
    async fn retry(&self, delivery: i64, now: UnixMs) -> Result<Option<DeliveryRow>>;

    /// Deletes a dead letter for good (an operator gave up on it). A delivery that
    /// is not dead is left alone: a pending one may be in flight.
    async fn discard(&self, delivery: i64) -> Result<Discarded>;
}

/// Where polling stands: each plugin's cursor, which node polls it (the leases),
/// and the save of a poll's result, fenced by both.
#[async_trait::async_trait]
pub trait PollBook: Send + Sync + 'static {
    /// Saves a poll's events (deduplicated, deliveries queued), its new cursor and
    /// its state writes in one transaction, or nothing at all. A refusal
    /// (`StateRefused` inside the error) also saves nothing.
    async fn persist_poll(&self, record: PollRecord) -> Result<Vec<Persisted>>;

    /// The saved cursor of `plugin`; `None` before its first successful poll.
    async fn poll_cursor(&self, plugin: &str) -> Result<Option<SavedCursor>>;

    /// One round of `node`'s poll leases, in one transaction: records that
    /// `node` is alive and can poll `plugins`; releases its leases of plugins no
    /// longer among them; renews the ones it holds and takes free or expired
    /// ones, each until `now + ttl`, but holds no more than its share while
    /// other live nodes that can poll them hold fewer (see `sql::poll_share`).
    /// Returns the leases `node` holds afterwards. A lease that changes hands
    /// gets a larger token than it ever had.
    async fn keep_poll_leases(
        &self,
        node: &str,
        plugins: &[String],
        now: Clock,
        ttl: Duration,
    ) -> Result<Vec<PollLease>>;

    /// Gives up every poll lease `node` holds (at shutdown), so that another node
    /// takes its plugins over at once instead of when the leases run out.
    async fn release_poll_leases(&self, node: &str) -> Result<()>;
}

/// Plugins' key-value `state`, kept under each plugin's id.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The value of `key` in `plugin`'s state.
    async fn state_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// How many keys `plugin`'s state holds.
    async fn state_len(&self, plugin: &str) -> Result<u64>;

    /// Applies `changes` to `plugin`'s state in one transaction; refused, changing
    /// nothing, when the plugin would then hold more than `STATE_MAX_KEYS` keys.
    async fn state_apply(
        &self,
        plugin: &str,
        changes: Vec<StateChange>,
        now: UnixMs,
    ) -> Result<Result<(), StateRefused>>;
}

/// The whole store, as a backend implements it and the host holds it: every part
/// above on one database, and that database's health and shutdown. Components are
/// given the part they use (an `Arc<dyn EventStore>` coerces to any of them).
#[async_trait::async_trait]
pub trait EventStore: EventLog + DeliveryQueue + PollBook + StateStore {
    /// `Ok` when the store can take writes now; else why not (for `/healthz`).
    async fn health(&self) -> Result<()>;

    /// Makes everything committed so far complete in the store's files and refuses
    /// later writes; called once at shutdown, after the last write was answered.
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

/// Shifts this node's clock (`now_ms`) by this many milliseconds, read once at
/// start. For tests only: it makes one node of a fleet run fast or slow, to show
/// that no lease depends on a node's clock. Not a setting; not documented for use.
pub const TEST_CLOCK_OFFSET_ENV: &str = "HOOKHOST_TEST_CLOCK_OFFSET_MS";

/// Now, by this node's clock: what it records (`received_at`, `updated_at`) and
/// how it times its own work. Leases and due times are decided by
/// `Clock::Database` instead.
pub fn now_ms() -> UnixMs {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let offset = *OFFSET.get_or_init(|| {
        std::env::var(TEST_CLOCK_OFFSET_ENV)
            .ok()
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    });
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    wall.saturating_add(offset).max(0) as UnixMs
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn unavailable_is_found_under_later_contexts_and_only_where_attached() {
        let down = Err::<(), _>(anyhow::anyhow!("connection refused"))
            .context(Unavailable)
            .context("renewing poll leases")
            .unwrap_err();
        assert!(is_unavailable(&down));
        assert_eq!(
            format!("{down:#}"),
            "renewing poll leases: the database is unavailable: connection refused"
        );
        let bug = anyhow::anyhow!("no such column: x").context("listing events");
        assert!(!is_unavailable(&bug));
    }
}
