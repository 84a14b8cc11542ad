//! The one path from a plugin's accepted events to a durable record, for webhooks
//! and polls alike: find each event's subscribers, persist (with the request, or
//! with the poll's cursor and `state` writes, in one commit), wake the dispatcher
//! when deliveries were queued, and publish the new events to `live`.
//!
//! The outcome was checked before this (`plugins::outcome`), so that a malformed
//! one is refused before anything is saved. Errors are typed: the webhook route and
//! the poll runner each decide what a failure means for their caller.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::live::{Change, LiveFeed};
use crate::plugins::bindings::Event;
use crate::plugins::registry::Registry;
use crate::store::{
    EventStore, IngestRecord, NewEvent, Persisted, PollRecord, RawRequest, StateChange,
    StateRefused, UnixMs,
};

/// What ingest needs, cloned into the webhook route and the poll runner.
#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn EventStore>,
    registry: Arc<Registry>,
    /// Wakes the delivery dispatcher (its only waiter) when new events have
    /// subscribers.
    wake_dispatcher: Arc<Notify>,
    live: LiveFeed,
}

/// How the events arrived, and what is saved with them.
pub enum Arrival {
    /// A webhook, stored with its request.
    Webhook {
        received_at: UnixMs,
        request: RawRequest,
    },
    /// A poll: its cursor and `state` writes are saved with the events, or nothing
    /// is (see `PollRecord`).
    Poll {
        polled_at: UnixMs,
        from_cursor: Option<String>,
        cursor: Option<String>,
        state: Vec<StateChange>,
        lease: Option<u64>,
    },
}

impl Arrival {
    fn noun(&self) -> &'static str {
        match self {
            Arrival::Webhook { .. } => "webhook",
            Arrival::Poll { .. } => "poll",
        }
    }
}

/// Why nothing was saved.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The poll lease changed hands during the poll: another node polls the plugin
    /// now.
    #[error("the poll lease changed hands")]
    LeaseLost,
    /// The store failed (already logged, with the plugin's id).
    #[error("storing the events failed: {0:#}")]
    Storage(anyhow::Error),
}

impl Ingest {
    pub fn new(
        store: Arc<dyn EventStore>,
        registry: Arc<Registry>,
        wake_dispatcher: Arc<Notify>,
        live: LiveFeed,
    ) -> Ingest {
        Ingest {
            store,
            registry,
            wake_dispatcher,
            live,
        }
    }

    /// Stores `events`, which `plugin` emitted and which passed the outcome checks,
    /// with what `arrival` saves beside them; returns what became of each event, in
    /// order. Nothing is acknowledged before this returns: the commit is awaited.
    /// The events are moved into the record: their payloads are not copied.
    pub async fn ingest(
        &self,
        plugin: &str,
        events: Vec<Event>,
        arrival: Arrival,
    ) -> Result<Vec<Persisted>, IngestError> {
        let noun = arrival.noun();
        // What the log line of each event names, kept before the events move.
        let named: Vec<EventName> = events.iter().map(EventName::of).collect();
        let new_events: Vec<NewEvent> = events
            .into_iter()
            .map(|event| {
                let subscribers = self.registry.subscribers(&event.kind, plugin);
                new_event(event, subscribers)
            })
            .collect();
        let has_subscribers = new_events.iter().any(|e| !e.subscribers.is_empty());
        let persisted = match arrival {
            Arrival::Webhook {
                received_at,
                request,
            } => {
                self.store
                    .persist_ingest(IngestRecord {
                        plugin: plugin.to_string(),
                        received_at,
                        request: Some(request),
                        events: new_events,
                    })
                    .await
            }
            Arrival::Poll {
                polled_at,
                from_cursor,
                cursor,
                state,
                lease,
            } => {
                self.store
                    .persist_poll(PollRecord {
                        plugin: plugin.to_string(),
                        polled_at,
                        from_cursor,
                        cursor,
                        events: new_events,
                        state,
                        lease,
                    })
                    .await
            }
        };
        let persisted = persisted.map_err(|error| {
            if let Some(StateRefused::LeaseLost { .. }) = error.downcast_ref::<StateRefused>() {
                return IngestError::LeaseLost;
            }
            tracing::error!(plugin, "storing a {noun}'s events: {error:#}");
            IngestError::Storage(error)
        })?;
        let mut new_ids = Vec::new();
        for (event, persisted) in named.iter().zip(&persisted) {
            let (stored_as, duplicate) = match persisted {
                Persisted::New(id) => (*id, false),
                Persisted::Duplicate(id) => (*id, true),
            };
            if !duplicate {
                new_ids.push(stored_as.to_string());
            }
            tracing::info!(
                plugin,
                event_id = %event.id,
                kind = %event.kind,
                subject = event.subject.as_deref().unwrap_or(""),
                stored_as,
                duplicate,
                "event {}",
                if noun == "poll" { "polled" } else { "received" }
            );
        }
        if has_subscribers {
            self.wake_dispatcher.notify_one();
        }
        if !new_ids.is_empty() {
            self.live.publish(Change::Events {
                plugin: plugin.to_string(),
                ids: new_ids,
                deliveries_queued: has_subscribers,
            });
        }
        Ok(persisted)
    }
}

/// `event` as a plugin emitted it, to be delivered to `subscribers`.
fn new_event(event: Event, subscribers: Vec<String>) -> NewEvent {
    NewEvent {
        event_id: event.id,
        kind: event.kind,
        subject: event.subject,
        payload: event.payload,
        subscribers,
    }
}

/// An event's id, kind and subject, for its log line: everything but the payload.
struct EventName {
    id: String,
    kind: String,
    subject: Option<String>,
}

impl EventName {
    fn of(event: &Event) -> EventName {
        EventName {
            id: event.id.clone(),
            kind: event.kind.clone(),
            subject: event.subject.clone(),
        }
    }
}
