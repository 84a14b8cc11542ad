//! `GET /api/stream`: the `LiveFeed` as server-sent events, which the dashboard
//! follows to know when to fetch a list again.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};

use crate::live::{LiveFeed, Update};

/// Comment lines on an idle stream, so that proxies do not time it out and a
/// vanished client is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes<S: Clone + Send + Sync + 'static>(live: LiveFeed) -> Router<S> {
    Router::new()
        .route("/api/stream", get(stream_changes))
        .with_state(live)
}

/// `text/event-stream` of changes; a `ready` event first, so that the page knows
/// the stream is up and fetches everything once (nothing it fetched before can
/// have been missed after that).
async fn stream_changes(
    State(live): State<LiveFeed>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ready = stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    let updates = futures_util::StreamExt::map(live.subscribe(), |update| {
        Ok(match update {
            Update::Change(change) => Event::default()
                .event(change.name())
                .json_data(&change)
                .unwrap_or_else(|_| Event::default().event("resync").data("{}")),
            Update::Missed => Event::default().event("resync").data("{}"),
        })
    });
    Sse::new(futures_util::StreamExt::chain(ready, updates))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
