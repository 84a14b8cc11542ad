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

use hookhost_sdk::http::{Request, Response};
use hookhost_sdk::prelude::*;
use serde_json::Value;

/// How often the host polls unless `[plugins.feed] poll_interval` says otherwise.
const POLL_INTERVAL_SECONDS: u32 = 300;
const ETAG_KEY: &str = "etag";

struct Feed;

impl Plugin for Feed {
    const MANIFEST: StaticManifest = StaticManifest::named("Feed")
        .description("Polls a JSON feed (config `url`), one event per new item")
        .emits(&["feed.item"])
        .polls_every(POLL_INTERVAL_SECONDS);

    fn poll(cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        let url = config::required("url")?;
        let etag = state::get(ETAG_KEY)?.and_then(|etag| String::from_utf8(etag).ok());
        let Some(response) = fetch(&url, etag)? else {
            return Ok(PollOutcome::new(vec![], None));
        };
        let etag = response.header("etag").map(str::to_string);
        let feed: Value = serde_json::from_slice(&response.body)
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
                subject: item.get("url").and_then(Value::as_str).map(str::to_string),
                ..Event::new(id, "feed.item", item.to_string())
            });
        }
        let newest = new.first().map(|event| event.id.clone());
        // Oldest first, as the host stores them.
        new.reverse();
        match etag {
            Some(etag) => state::set(ETAG_KEY, etag.as_bytes())?,
            None => state::delete(ETAG_KEY)?,
        }
        Ok(PollOutcome::new(new, newest))
    }
}

/// GETs `url`; `None` when it answered 304 Not Modified, else its 2xx response.
fn fetch(url: &str, etag: Option<String>) -> Result<Option<Response>, PluginError> {
    let what = format!("GET {url}");
    let mut request = Request::get(url).header("accept", "application/json");
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let response = request.send().map_err(|e| e.into_plugin_error(&what))?;
    if response.status == 304 {
        return Ok(None);
    }
    response.require_success(&what).map(Some)
}

fn unexpected(url: &str, what: &str) -> PluginError {
    PluginError::Unavailable(format!("{url} is not a feed: {what}"))
}

hookhost_sdk::export!(Feed);
