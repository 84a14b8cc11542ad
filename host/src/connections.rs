//! Which connections one listener holds open, which of them are idle, and which
//! to close: the connection cap (`max_connections`) and the idle timeout's
//! bookkeeping. `http_server` asks `admit` for a slot for every accepted socket
//! and tells the slot when requests start and finish; the slot tells the
//! connection's task when it should close.
//!
//! A connection is idle while no request on it is in flight: before its first
//! request has fully arrived (protocol detection, a partial HTTP/2 preface, a
//! request head still coming in), between keep-alive requests, and on HTTP/2
//! while no stream is open. A request is in flight from the moment its head has
//! arrived until its response has been handed to the socket (streamed responses,
//! `/api/stream`, until they end).
//!
//! At the cap a new connection waits (the listener stops accepting; later clients
//! wait in the kernel's backlog) and the connection that has been idle longest is
//! closed to make room. So idle sockets, however many an attacker opens, cannot
//! keep a client with a request to send out for long: only connections busy with
//! requests hold their slots, and each request is bounded by the body deadline and
//! the plugin's timeout. Closing an idle connection is what HTTP/1.1 keep-alive
//! and HTTP/2 clients already expect a server to do at any time.

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

struct SlotState {
    in_flight: usize,
    /// Since when no request has been in flight; `None` while one is.
    idle_since: Option<Instant>,
    /// Its key in `Inner::idle` while it is a candidate for eviction: idle and not
    /// evicted already.
    idle_turn: Option<u64>,
    evicted: bool,
    /// Wakes the connection's task (its only waiter) when it went idle, got busy
    /// or was evicted.
    changed: Arc<Notify>,
}

/// What a connection's task should do about being idle, read by `Slot::status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotStatus {
    /// Since when no request has been in flight; `None` while one is.
    pub idle_since: Option<Instant>,
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
        let turn = inner.take_idle_turn();
        inner.idle.insert(turn, id);
        let changed = Arc::new(Notify::new());
        inner.slots.insert(
            id,
            SlotState {
                in_flight: 0,
                idle_since: Some(Instant::now()),
                idle_turn: Some(turn),
                evicted: false,
                changed: changed.clone(),
            },
        );
        self.metrics.opened();
        Slot(Arc::new(SlotHandle {
            id,
            connections: self.clone(),
            changed,
        }))
    }

    fn evict_longest_idle(&self, inner: &mut Inner) {
        let Some((_, id)) = inner.idle.pop_first() else {
            // Every connection has a request in flight; one will finish.
            return;
        };
        let slot = inner.slots.get_mut(&id).expect("idle connections are open");
        slot.idle_turn = None;
        slot.evicted = true;
        slot.changed.notify_one();
        inner.evictions_pending += 1;
        self.metrics.closed_by_host(HostClose::Evicted);
    }

    fn request_started(&self, id: u64) {
        let mut inner = self.lock();
        let slot = inner
            .slots
            .get_mut(&id)
            .expect("a slot is open while it serves");
        slot.in_flight += 1;
        if slot.idle_since.take().is_some() {
            slot.changed.notify_one();
        }
        if let Some(turn) = slot.idle_turn.take() {
            inner.idle.remove(&turn);
        }
    }

    fn request_finished(&self, id: u64) {
        let mut inner = self.lock();
        let turn = inner.take_idle_turn();
        let slot = inner
            .slots
            .get_mut(&id)
            .expect("a slot is open while it serves");
        slot.in_flight -= 1;
        if slot.in_flight > 0 {
            return;
        }
        slot.idle_since = Some(Instant::now());
        slot.changed.notify_one();
        // An evicted connection is closing already: not a candidate again.
        if !slot.evicted {
            slot.idle_turn = Some(turn);
            inner.idle.insert(turn, id);
        }
        if inner.at_cap {
            self.slot_freed.notify_one();
        }
    }

    fn status(&self, id: u64) -> SlotStatus {
        let inner = self.lock();
        let slot = inner
            .slots
            .get(&id)
            .expect("a slot is open while it serves");
        SlotStatus {
            idle_since: slot.idle_since,
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

impl Inner {
    fn take_idle_turn(&mut self) -> u64 {
        let turn = self.next_idle_turn;
        self.next_idle_turn += 1;
        turn
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
        self.0.connections.request_started(self.0.id);
        InFlight(self.0.clone())
    }

    pub fn status(&self) -> SlotStatus {
        self.0.connections.status(self.0.id)
    }

    /// Resolves when the status may have changed since the last call.
    pub async fn changed(&self) {
        self.0.changed.notified().await;
    }

    /// The connection's task closes it for having been idle too long.
    pub fn closing_idle(&self) {
        self.0
            .connections
            .metrics
            .closed_by_host(HostClose::IdleTimeout);
    }
}

impl Drop for SlotHandle {
    fn drop(&mut self) {
        self.connections.close(self.id);
    }
}

/// A request in flight on a connection; see `Slot::request_started`.
pub struct InFlight(Arc<SlotHandle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.connections.request_finished(self.0.id);
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
