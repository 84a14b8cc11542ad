//! Live updates for the dashboard: a broadcast of what just changed (events stored,
//! a delivery's state, a plugin (re)loaded). `GET /api/stream` (`admin::stream`)
//! relays it as server-sent events.
//!
//! A change names what changed, not its new contents: the page fetches the list it
//! shows again through the ordinary API. That keeps the hooks in ingest, the
//! dispatcher and the reload task down to one cheap `publish`, and the page
//! can never show a state the API would not.

use std::sync::Arc;

use futures_util::stream::{self, Stream};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// How many changes a slow subscriber may fall behind before it is told to fetch
/// everything again (`resync`) instead.
const BACKLOG: usize = 256;

/// One thing that changed. On the wire the variant is the SSE event name
/// (`events`, `delivery`, `plugin`) and the fields are its JSON data.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Change {
    /// A webhook or a poll stored new events (duplicates are not news); `deliveries_queued`
    /// when any of them has subscribers.
    Events {
        plugin: String,
        ids: Vec<String>,
        deliveries_queued: bool,
    },
    /// A delivery was attempted, finished, dead-lettered, put back in the queue,
    /// or discarded (`state` is then `discarded`).
    Delivery { id: String, state: &'static str },
    /// A plugin was loaded, failed to load, or was unloaded.
    Plugin { id: String },
}

impl Change {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Events { .. } => "events",
            Change::Delivery { .. } => "delivery",
            Change::Plugin { .. } => "plugin",
        }
    }
}

/// The broadcast of changes. Cloned into every place that publishes; each
/// `/api/stream` request holds a receiver.
#[derive(Clone)]
pub struct LiveFeed {
    /// Sent to by `ingest` (webhooks and polls), the retry API (`admin::events`),
    /// `dispatch` and the reload task; received by each open `/api/stream`.
    changes: broadcast::Sender<Change>,
    /// Set once by `close` when the host shuts down; every open stream ends on it,
    /// since a graceful shutdown waits for responses in flight and a stream
    /// never finishes by itself.
    closed: Arc<watch::Sender<bool>>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed {
            changes: broadcast::channel(BACKLOG).0,
            closed: Arc::new(watch::channel(false).0),
        }
    }
}

/// What a subscriber gets: a change, or word that it missed some.
#[derive(Debug, PartialEq, Eq)]
pub enum Update {
    Change(Change),
    /// The subscriber fell behind and changes were dropped: fetch everything again.
    Missed,
}

impl LiveFeed {
    /// Tells every subscriber; costs next to nothing when there is none.
    pub fn publish(&self, change: Change) {
        // An error only means that nobody is listening.
        let _ = self.changes.send(change);
    }

    /// Ends every stream, now and for later subscribers.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Changes from now on, until `close`.
    pub fn subscribe(&self) -> impl Stream<Item = Update> + Send + 'static {
        let state = (self.changes.subscribe(), self.closed.subscribe());
        stream::unfold(state, |(mut changes, mut closed)| async move {
            if *closed.borrow_and_update() {
                return None;
            }
            let update = tokio::select! {
                received = changes.recv() => match received {
                    Ok(change) => Update::Change(change),
                    Err(broadcast::error::RecvError::Lagged(_)) => Update::Missed,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                // Closed, or the feed itself is gone: either way the stream ends.
                _ = closed.changed() => return None,
            };
            Some((update, (changes, closed)))
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn plugin(id: &str) -> Change {
        Change::Plugin { id: id.into() }
    }

    #[tokio::test]
    async fn subscribers_get_changes_in_order_and_streams_end_on_close() {
        let feed = LiveFeed::default();
        feed.publish(plugin("before"));
        let mut updates = Box::pin(feed.subscribe());
        feed.publish(plugin("a"));
        feed.publish(plugin("b"));
        assert_eq!(updates.next().await, Some(Update::Change(plugin("a"))));
        assert_eq!(updates.next().await, Some(Update::Change(plugin("b"))));
        feed.close();
        assert_eq!(updates.next().await, None);
        assert_eq!(Box::pin(feed.subscribe()).next().await, None);
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_to_resync() {
        let feed = LiveFeed::default();
        let mut updates = Box::pin(feed.subscribe());
        for n in 0..BACKLOG + 10 {
            feed.publish(plugin(&n.to_string()));
        }
        assert_eq!(updates.next().await, Some(Update::Missed));
        assert!(matches!(updates.next().await, Some(Update::Change(_))));
    }

    #[test]
    fn changes_serialize_as_their_fields() {
        let change = Change::Delivery {
            id: "7".into(),
            state: "dead",
        };
        assert_eq!(change.name(), "delivery");
        assert_eq!(
            serde_json::to_value(&change).unwrap(),
            serde_json::json!({"id": "7", "state": "dead"})
        );
    }
}
