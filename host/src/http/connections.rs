//! Which connections one listener holds open, which of them are idle or stalled,
//! and which to close: the connection cap (`max_connections`) and the bookkeeping
//! behind the idle and send timeouts. `listener` asks `admit` for a slot for
//! every accepted socket and tells the slot what happens on it (requests start and
//! finish, responses wait on the peer, writes block); the slot tells the
//! connection's task when it should close.
//!
//! A connection is busy while a request on it is in flight (from the moment its
//! head has arrived until hyper is done with its response, streamed responses such
//! as `/api/stream` until they end) or while hyper has bytes the socket will not
//! take. Otherwise it is idle: before its first request has fully arrived
//! (protocol detection, a partial HTTP/2 preface, a request head still coming in),
//! between keep-alive requests, on HTTP/2 while no stream is open.
//!
//! A connection is waiting on its peer while a write to the socket cannot proceed
//! or a response has handed hyper a frame that hyper has not passed on (on HTTP/2,
//! a peer that opens no flow-control window never takes it). However busy, a
//! connection that waits on its peer too long is closed: a client that stops
//! reading cannot hold its slot.
//!
//! At the cap a new connection waits (the listener stops accepting; later clients
//! wait in the kernel's backlog) and the connection that has been idle longest is
//! closed to make room. So idle sockets, however many an attacker opens, cannot
//! keep a client with a request to send out for long: only busy connections hold
//! their slots, and each request is bounded by the body deadline, the plugin's
//! timeout and the send timeout. Closing an idle connection is what HTTP/1.1
//! keep-alive and HTTP/2 clients already expect a server to do at any time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::{ConnectionMetrics, HostClose};

/// The open connections of one listener.
pub struct Connections {
    /// The config key the listener comes from (`listen`), for the log.
    listener: &'static str,
    max: usize,
    metrics: ConnectionMetrics,
    inner: Mutex<Inner>,
    /// Wakes the accept loop (its only waiter) while it waits for a slot: a
    /// connection closed or went idle.
    slot_freed: Notify,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<u64, SlotState>,
    /// Idle connections by the order in which they went idle: the first entry is
    /// the one idle longest, the next to evict.
    idle: BTreeMap<u64, u64>,
    next_connection: u64,
    next_idle_turn: u64,
    /// Evicted connections that have not closed yet; while there are any, no
    /// other is evicted, so one waiting client evicts one connection.
    evictions_pending: usize,
    /// Whether a new connection has had to wait for a slot since open connections
    /// were last at three quarters of the cap or fewer with none waiting: the log
    /// says so once per such episode, not once per connection.
    at_cap: bool,
    /// Whether `admit` is waiting for a slot (there is one accept loop).
    waiting: bool,
}

#[derive(Default)]
struct SlotState {
    /// Requests whose head has arrived and whose response hyper is not done with.
    in_flight: usize,
    next_request: u64,
    /// Responses (by request number) that handed hyper a frame it has not passed
    /// on yet, and since when.
    awaiting_peer: HashMap<u64, Instant>,
    /// Since when hyper's writes to the socket have not proceeded; `None` while
    /// the last one went through.
    write_blocked_since: Option<Instant>,
    /// Since when the connection has been idle; `None` while it is busy.
    idle_since: Option<Instant>,
    /// Its key in `Inner::idle` while it is a candidate for eviction: idle and not
    /// evicted already.
    idle_turn: Option<u64>,
    evicted: bool,
    /// Wakes the connection's task (its only waiter) when its status changed.
    changed: Arc<Notify>,
}

impl SlotState {
    fn busy(&self) -> bool {
        self.in_flight > 0 || self.write_blocked_since.is_some()
    }
}

/// What a connection's task should know to decide when to close it, read by
/// `Slot::status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotStatus {
    /// Since when the connection has been idle; `None` while it is busy.
    pub idle_since: Option<Instant>,
    /// Since when it has been waiting on its peer to take data; `None` while it
    /// is not.
    pub waiting_on_peer_since: Option<Instant>,
    /// The listener needs its slot for a new connection: close it.
    pub evicted: bool,
}

impl Connections {
    pub fn new(listener: &'static str, max: usize, metrics: ConnectionMetrics) -> Arc<Self> {
        assert!(max > 0, "max_connections is at least 1 (checked by config)");
        Arc::new(Connections {
            listener,
            max,
            metrics,
            inner: Mutex::new(Inner::default()),
            slot_freed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent at every unlock; a panic elsewhere while
        // holding it leaves nothing half-done.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection just accepted. At the cap it waits until one
    /// closes, evicting the connection idle longest to make room.
    pub async fn admit(self: &Arc<Self>) -> Slot {
        let mut waited = false;
        loop {
            let freed = self.slot_freed.notified();
            {
                let mut inner = self.lock();
                if inner.slots.len() < self.max {
                    inner.waiting = false;
                    return self.open_slot(&mut inner);
                }
                inner.waiting = true;
                if !waited {
                    waited = true;
                    self.metrics.waited_for_slot();
                }
                if !inner.at_cap {
                    inner.at_cap = true;
                    tracing::warn!(
                        listener = self.listener,
                        max_connections = self.max,
                        "connection cap reached: new connections wait for a slot and \
                         idle connections are closed to make room (logged once until \
                         the count falls to three quarters of the cap)"
                    );
                }
                if inner.evictions_pending == 0 {
                    self.evict_longest_idle(&mut inner);
                }
            }
            freed.await;
        }
    }

    fn open_slot(self: &Arc<Self>, inner: &mut Inner) -> Slot {
        let id = inner.next_connection;
        inner.next_connection += 1;
        let changed = Arc::new(Notify::new());
        inner.slots.insert(
            id,
            SlotState {
                changed: changed.clone(),
                ..SlotState::default()
            },
        );
        self.update_idle(inner, id);
        self.metrics.opened();
        Slot(Arc::new(SlotHandle {
            id,
            connections: self.clone(),
            changed,
        }))
    }

    fn evict_longest_idle(&self, inner: &mut Inner) {
        let Some((_, id)) = inner.idle.pop_first() else {
            // Every connection is busy; one will finish or stall.
            return;
        };
        let slot = inner.slots.get_mut(&id).expect("idle connections are open");
        slot.idle_turn = None;
        slot.evicted = true;
        slot.changed.notify_one();
        inner.evictions_pending += 1;
        self.metrics.closed_by_host(HostClose::Evicted);
    }

    /// Applies `change` to slot `id`, then brings its idle state in line.
    fn with_slot(&self, id: u64, change: impl FnOnce(&mut SlotState)) {
        let mut inner = self.lock();
        let slot = inner
            .slots
            .get_mut(&id)
            .expect("a slot is open while anything holds it");
        change(slot);
        slot.changed.notify_one();
        self.update_idle(&mut inner, id);
    }

    /// Marks slot `id` idle (and a candidate for eviction) or busy, after what
    /// happened on it.
    fn update_idle(&self, inner: &mut Inner, id: u64) {
        let turn = inner.next_idle_turn;
        let slot = inner.slots.get_mut(&id).expect("the slot is open");
        match (slot.busy(), slot.idle_since.is_some()) {
            (true, true) => {
                slot.idle_since = None;
                slot.changed.notify_one();
                if let Some(turn) = slot.idle_turn.take() {
                    inner.idle.remove(&turn);
                }
            }
            (false, false) => {
                slot.idle_since = Some(Instant::now());
                slot.changed.notify_one();
                // An evicted connection is closing already: not a candidate again.
                if !slot.evicted {
                    slot.idle_turn = Some(turn);
                    inner.next_idle_turn += 1;
                    inner.idle.insert(turn, id);
                }
                if inner.at_cap {
                    self.slot_freed.notify_one();
                }
            }
            _ => {}
        }
    }

    fn status(&self, id: u64) -> SlotStatus {
        let inner = self.lock();
        let slot = inner
            .slots
            .get(&id)
            .expect("a slot is open while anything holds it");
        let awaiting = slot.awaiting_peer.values().min().copied();
        SlotStatus {
            idle_since: slot.idle_since,
            waiting_on_peer_since: match (awaiting, slot.write_blocked_since) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            evicted: slot.evicted,
        }
    }

    fn close(&self, id: u64) {
        let mut inner = self.lock();
        let slot = inner.slots.remove(&id).expect("a slot closes once");
        if let Some(turn) = slot.idle_turn {
            inner.idle.remove(&turn);
        }
        if slot.evicted {
            inner.evictions_pending -= 1;
        }
        // While a connection waits, an eviction's close is no end of the episode.
        if inner.at_cap && !inner.waiting && inner.slots.len() <= self.max * 3 / 4 {
            inner.at_cap = false;
            tracing::info!(
                listener = self.listener,
                open = inner.slots.len(),
                "open connections are well below the cap again"
            );
        }
        self.metrics.closed();
        self.slot_freed.notify_one();
    }
}

/// One open connection's place under the cap. Clones share it; it is freed when
/// the last clone and the last `InFlight` of its requests are gone (on HTTP/2 a
/// request's task may outlive the connection's by a little).
#[derive(Clone)]
pub struct Slot(Arc<SlotHandle>);

struct SlotHandle {
    id: u64,
    connections: Arc<Connections>,
    changed: Arc<Notify>,
}

impl Slot {
    /// A request's head has arrived; it is in flight until the guard is dropped.
    pub fn request_started(&self) -> InFlight {
        let mut request = 0;
        self.0.connections.with_slot(self.0.id, |slot| {
            slot.in_flight += 1;
            request = slot.next_request;
            slot.next_request += 1;
        });
        InFlight {
            slot: self.0.clone(),
            request,
            awaiting_peer: false,
        }
    }

    /// A write to the socket could not proceed (`true`), or went through again
    /// (`false`). Call on changes only: each call takes the listener's lock.
    pub fn write_blocked(&self, blocked: bool) {
        self.0.connections.with_slot(self.0.id, |slot| {
            slot.write_blocked_since = blocked.then(Instant::now);
        });
    }

    pub fn status(&self) -> SlotStatus {
        self.0.connections.status(self.0.id)
    }

    /// Resolves when the status may have changed since the last call.
    pub async fn changed(&self) {
        self.0.changed.notified().await;
    }

    /// The connection's task closes it, for `why`.
    pub fn closing(&self, why: HostClose) {
        self.0.connections.metrics.closed_by_host(why);
    }
}

impl Drop for SlotHandle {
    fn drop(&mut self) {
        self.connections.close(self.id);
    }
}

/// A request in flight on a connection; see `Slot::request_started`. Its
/// response body reports through it whether hyper has passed on what it handed
/// over.
pub struct InFlight {
    slot: Arc<SlotHandle>,
    request: u64,
    /// Mirrors whether this request is in its slot's `awaiting_peer`, so that
    /// only changes take the lock.
    awaiting_peer: bool,
}

impl InFlight {
    /// The response handed hyper a frame (`true`), or hyper came back for more
    /// or finished (`false`).
    pub fn awaiting_peer(&mut self, awaiting: bool) {
        if self.awaiting_peer == awaiting {
            return;
        }
        self.awaiting_peer = awaiting;
        let request = self.request;
        self.slot.connections.with_slot(self.slot.id, |slot| {
            if awaiting {
                slot.awaiting_peer.insert(request, Instant::now());
            } else {
                slot.awaiting_peer.remove(&request);
            }
        });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let request = self.request;
        self.slot.connections.with_slot(self.slot.id, |slot| {
            slot.awaiting_peer.remove(&request);
            slot.in_flight -= 1;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::Metrics;

    fn connections(max: usize) -> (Arc<Connections>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        (
            Connections::new("listen", max, metrics.connections("listen")),
            metrics,
        )
    }

    /// Admits one more connection in the background.
    fn admit_later(connections: &Arc<Connections>) -> tokio::task::JoinHandle<Slot> {
        let connections = connections.clone();
        tokio::spawn(async move { connections.admit().await })
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn at_the_cap_the_connection_idle_longest_is_evicted() {
        let (connections, metrics) = connections(2);
        let first = connections.admit().await;
        let second = connections.admit().await;
        assert!(!first.status().evicted && !second.status().evicted);

        let third = admit_later(&connections);
        settle().await;
        assert!(!third.is_finished(), "waits while both slots are taken");
        assert!(first.status().evicted, "the one idle longest goes");
        assert!(
            !second.status().evicted,
            "one waiting connection evicts one"
        );

        drop(first);
        let third = third.await.unwrap();
        assert!(!third.status().evicted);
        let text = metrics.encode();
        assert!(
            text.contains(r#"hookhost_connections_open{listener="listen"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"hookhost_connections_closed_by_host_total{listener="listen",reason="evicted"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"hookhost_connections_waited_total{listener="listen"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn connections_with_requests_in_flight_are_never_evicted() {
        let (connections, _) = connections(1);
        let busy = connections.admit().await;
        let request = busy.request_started();
        assert_eq!(busy.status().idle_since, None);

        let waiting = admit_later(&connections);
        settle().await;
        assert!(!waiting.is_finished());
        assert!(!busy.status().evicted, "a busy connection keeps its slot");

        // Once its request is done it is idle, and so the one to make room.
        drop(request);
        settle().await;
        assert!(busy.status().evicted);
        assert!(busy.status().idle_since.is_some());
        drop(busy);
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn a_connection_is_idle_from_its_last_request_on() {
        let (connections, _) = connections(4);
        let slot = connections.admit().await;
        assert!(
            slot.status().idle_since.is_some(),
            "idle from the accept on"
        );
        let one = slot.request_started();
        let two = slot.request_started();
        drop(one);
        assert_eq!(
            slot.status().idle_since,
            None,
            "one request is still in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before_the_last = Instant::now();
        drop(two);
        assert!(slot.status().idle_since.unwrap() >= before_the_last);
    }

    #[tokio::test]
    async fn a_slot_is_freed_when_its_last_request_is_done() {
        let (connections, _) = connections(1);
        let slot = connections.admit().await;
        let request = slot.request_started();
        drop(slot);
        let waiting = admit_later(&connections);
        settle().await;
        assert!(!waiting.is_finished(), "the request still holds the slot");
        drop(request);
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn blocked_writes_keep_a_connection_busy_and_count_as_waiting_on_the_peer() {
        let (connections, _) = connections(1);
        let slot = connections.admit().await;
        // A response was handed over whole and hyper is still writing it.
        drop(slot.request_started());
        slot.write_blocked(true);
        let status = slot.status();
        assert_eq!(status.idle_since, None, "not idle while bytes wait");
        assert!(status.waiting_on_peer_since.is_some());

        let waiting = admit_later(&connections);
        settle().await;
        assert!(
            !slot.status().evicted,
            "a connection with bytes to write keeps its slot"
        );

        slot.write_blocked(false);
        let status = slot.status();
        assert!(status.idle_since.is_some());
        assert_eq!(status.waiting_on_peer_since, None);
        settle().await;
        assert!(slot.status().evicted, "idle now, so the one to make room");
        drop(slot);
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn a_response_frame_not_passed_on_counts_as_waiting_on_the_peer() {
        let (connections, _) = connections(4);
        let slot = connections.admit().await;
        let mut first = slot.request_started();
        let mut second = slot.request_started();
        first.awaiting_peer(true);
        let since_first = slot.status().waiting_on_peer_since.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        second.awaiting_peer(true);
        assert_eq!(
            slot.status().waiting_on_peer_since,
            Some(since_first),
            "the longest wait counts"
        );
        first.awaiting_peer(false);
        assert!(slot.status().waiting_on_peer_since.unwrap() > since_first);
        drop(second);
        assert_eq!(slot.status().waiting_on_peer_since, None);
        drop(first);
        assert!(slot.status().idle_since.is_some());
    }

    #[tokio::test]
    async fn an_idle_connection_that_became_busy_again_is_not_the_next_to_go() {
        let (connections, _) = connections(2);
        let first = connections.admit().await;
        let second = connections.admit().await;
        // `first` serves a request and goes idle again: now `second` is idle longest.
        drop(first.request_started());
        let third = admit_later(&connections);
        settle().await;
        assert!(second.status().evicted);
        assert!(!first.status().evicted);
        drop(second);
        third.await.unwrap();
    }
}
