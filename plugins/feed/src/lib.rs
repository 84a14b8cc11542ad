//! A JSON feed poller: fetches config `url` (which must be in the plugin's
//! `allowed_hosts`) and emits one `feed.item` event per item it has not seen.
//!
//! The feed is either a JSON array of items or an object with an `items` array (a
//! JSON Feed), newest first. Each item is an object with an `id` (string or
//! number); the event id is that id, the subject the item's `url` when it is a
//! string, and the payload the item. The cursor is the newest id seen: the items
//! before it in the list are new, and when it is no longer in the list every item
//! is offered (the host drops the ones it already stored).
//!
//! The response's `ETag` is kept in `state` (key `etag`) and sent back as
//! `If-None-Match`, so an unchanged feed costs a 304 and no parsing. A non-2xx
//! answer, a failed request or a body that is not such a feed is
//! `plugin-error::unavailable`: the host keeps the cursor and backs off.

wit_bindgen::generate!({ world: "plugin", path: "../../wit" });

use exports::hookhost::plugin::guest::{
    Guest, Manifest, PluginError, PollOutcome, StoredEvent, WebhookOutcome, WebhookRequest,
};
use hookhost::plugin::types::Event;
use hookhost::plugin::{config, state};
use serde_json::Value;
use wstd::http::{Body, Client, Request, StatusCode};

/// How often the host polls unless `[plugins.feed] poll_interval` says otherwise.
const POLL_INTERVAL_SECONDS: u32 = 300;
const ETAG_KEY: &str = "etag";

struct Feed;

impl Guest for Feed {
    fn describe() -> Manifest {
        Manifest {
            name: "Feed".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Polls a JSON feed (config `url`), one event per new item".into(),
            emits: vec!["feed.item".into()],
            poll_interval_seconds: Some(POLL_INTERVAL_SECONDS),
            subscriptions: vec![],
        }
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        Err(PluginError::BadRequest(
            "the feed plugin polls; it takes no webhooks".into(),
        ))
    }

    fn poll(cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        let url = config::get("url")
            .filter(|url| !url.is_empty())
            .ok_or_else(|| PluginError::Internal("config `url` is not set".into()))?;
        let etag = state::get(ETAG_KEY)
            .map_err(state_error)?
            .and_then(|etag| String::from_utf8(etag).ok());
        let fetched = wstd::runtime::block_on(fetch(&url, etag.as_deref()))?;
        let Some((body, etag)) = fetched else {
            return Ok(PollOutcome {
                events: vec![],
                cursor: None,
                next_poll_seconds: None,
            });
        };
        let feed: Value = serde_json::from_slice(&body)
            .map_err(|e| PluginError::Unavailable(format!("{url} did not answer JSON: {e}")))?;
        let items = match &feed {
            Value::Array(items) => items,
            Value::Object(object) => match object.get("items") {
                Some(Value::Array(items)) => items,
                _ => return Err(unexpected(&url, "an object without an `items` array")),
            },
            _ => return Err(unexpected(&url, "neither an array nor an object")),
        };
        let mut new = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let id = match item.get("id") {
                Some(Value::String(id)) if !id.is_empty() => id.clone(),
                Some(Value::Number(id)) => id.to_string(),
                _ => return Err(unexpected(&url, &format!("item {index} without an id"))),
            };
            if cursor.as_deref() == Some(id.as_str()) {
                break;
            }
            new.push(Event {
                id,
                kind: "feed.item".into(),
                subject: item.get("url").and_then(Value::as_str).map(str::to_string),
                payload: item.to_string(),
            });
        }
        let newest = new.first().map(|event| event.id.clone());
        // Oldest first, as the host stores them.
        new.reverse();
        match etag {
            Some(etag) => state::set(ETAG_KEY, etag.as_bytes()).map_err(state_error)?,
            None => state::delete(ETAG_KEY).map_err(state_error)?,
        }
        Ok(PollOutcome {
            events: new,
            cursor: newest,
            next_poll_seconds: None,
        })
    }

    fn on_event(_event: StoredEvent) -> Result<(), PluginError> {
        Err(PluginError::Internal("feed subscribes to no events".into()))
    }
}

/// GETs `url`; `None` when it answered 304 Not Modified, else the body and ETag.
async fn fetch(url: &str, etag: Option<&str>) -> Result<Option<(Vec<u8>, Option<String>)>, PluginError> {
    let mut request = Request::get(url).header("accept", "application/json");
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let request = request
        .body(Body::empty())
        .map_err(|e| PluginError::Internal(format!("config `url` {url:?} is not usable: {e}")))?;
    let mut response = Client::new()
        .send(request)
        .await
        .map_err(|e| PluginError::Unavailable(format!("GET {url}: {e}")))?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(PluginError::Unavailable(format!("GET {url} answered {status}")));
    }
    let etag = response
        .headers()
        .get("etag")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body = response
        .body_mut()
        .contents()
        .await
        .map_err(|e| PluginError::Unavailable(format!("reading the body of {url}: {e}")))?
        .to_vec();
    Ok(Some((body, etag)))
}

fn unexpected(url: &str, what: &str) -> PluginError {
    PluginError::Unavailable(format!("{url} is not a feed: {what}"))
}

fn state_error(error: state::StateError) -> PluginError {
    PluginError::Unavailable(format!("plugin state: {error:?}"))
}

export!(Feed);
