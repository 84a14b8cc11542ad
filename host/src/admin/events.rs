//! The event log's HTTP API: stored events (list, one with its raw request, replay)
//! and handler deliveries (list, retry a dead one, discard a dead one).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::admin::auth::AdminAuth;
use crate::config::public_url::{request_url, PublicUrl};
use crate::http::error::ApiError;
use crate::ingress::containment::without_admin_credentials;
use crate::ingress::webhook::call_webhook;
use crate::live::{Change, LiveFeed};
use crate::plugins::bindings::WebhookRequest;
use crate::plugins::registry::Registry;
use crate::store::{
    now_ms, DeliveryFilter, DeliveryRow, DeliveryState, Discarded, EventFilter, EventStore,
    RawRequest, StoredEventRow, UnixMs,
};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// What the event log's routes use.
#[derive(Clone)]
pub struct EventsApi {
    pub store: Arc<dyn EventStore>,
    /// Replay runs the plugin's current version.
    pub registry: Arc<Registry>,
    /// Replay strips the admin's credentials from stored requests.
    pub admin: Arc<AdminAuth>,
    /// Woken when a delivery is put back in the queue.
    pub wake_dispatcher: Arc<Notify>,
    pub live: LiveFeed,
    /// Replay rebuilds each request's `url` from it (see `config::public_url`).
    pub public_url: Option<PublicUrl>,
}

pub fn routes<S: Clone + Send + Sync + 'static>(api: EventsApi) -> Router<S> {
    Router::new()
        .route("/api/events", get(list_events))
        .route("/api/events/{id}", get(get_event))
        .route("/api/events/{id}/replay", post(replay_event))
        .route("/api/deliveries", get(list_deliveries))
        .route("/api/deliveries/{id}/retry", post(retry_delivery))
        .route("/api/deliveries/{id}", delete(discard_delivery))
        .with_state(api)
}

/// `after` is the cursor: the `next` of the previous page. Pages run newest first,
/// so it asks for events stored before that one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    plugin: Option<String>,
    kind: Option<String>,
    subject: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        n => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("limit must be between 1 and {MAX_LIMIT}, not {n}"),
        )),
    }
}

/// One page of a listing: its `rows` under `field`, each as `to_json` puts it, and
/// `next`, the cursor for the next page: the last `id`, when the page was full.
fn page<T>(
    field: &str,
    rows: &[T],
    limit: u32,
    id: impl Fn(&T) -> i64,
    to_json: impl Fn(&T) -> Value,
) -> Json<Value> {
    let next = match rows.last() {
        Some(last) if rows.len() == limit as usize => json!(id(last).to_string()),
        _ => Value::Null,
    };
    Json(json!({
        field: rows.iter().map(to_json).collect::<Vec<_>>(),
        "next": next,
    }))
}

async fn list_events(
    State(state): State<EventsApi>,
    Query(query): Query<EventQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(query.limit)?;
    let events = state
        .store
        .list_events(EventFilter {
            plugin: query.plugin,
            kind: query.kind,
            subject: query.subject,
            before: query.after,
            limit,
        })
        .await?;
    Ok(page("events", &events, limit, |e| e.id, event_json))
}

fn time_json(at: UnixMs) -> Value {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at);
    json!(humantime::format_rfc3339_millis(time).to_string())
}

fn event_json(event: &StoredEventRow) -> Value {
    json!({
        "id": event.id.to_string(),
        "plugin": event.plugin,
        "event_id": event.event_id,
        "kind": event.kind,
        "subject": event.subject,
        // Validated as JSON before it was stored.
        "payload": serde_json::from_str::<Value>(&event.payload).unwrap_or(Value::Null),
        "received_at": time_json(event.received_at),
    })
}

fn request_json(request: &RawRequest) -> Value {
    let mut value = json!({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
    });
    match std::str::from_utf8(&request.body) {
        Ok(text) => value["body"] = json!(text),
        Err(_) => value["body_hex"] = json!(hex::encode(&request.body)),
    }
    value
}

fn delivery_json(delivery: &DeliveryRow) -> Value {
    json!({
        "id": delivery.id.to_string(),
        "event": delivery.event.to_string(),
        "plugin": delivery.plugin,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": (delivery.state == DeliveryState::Pending)
            .then(|| time_json(delivery.next_attempt_at)),
        "last_error": delivery.last_error,
        "updated_at": time_json(delivery.updated_at),
    })
}

fn parse_id(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no {what} with id {text:?}")))
}

/// The stored event `id` with its raw request (none for a poll result), or 404.
async fn stored_event(
    state: &EventsApi,
    id: i64,
) -> Result<(StoredEventRow, Option<RawRequest>), ApiError> {
    state
        .store
        .get_event(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event with id {id}")))
}

async fn get_event(
    State(state): State<EventsApi>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "event")?;
    let (event, request) = stored_event(&state, id).await?;
    let deliveries = state
        .store
        .list_deliveries(DeliveryFilter {
            event: Some(id),
            limit: MAX_LIMIT,
            ..DeliveryFilter::default()
        })
        .await?;
    let mut value = event_json(&event);
    value["request"] = request.as_ref().map(request_json).unwrap_or(Value::Null);
    value["deliveries"] = deliveries.iter().map(delivery_json).collect();
    Ok(Json(value))
}

/// Runs the stored request through the plugin's current version and shows what it
/// does now beside what was stored. Nothing is stored and nothing is delivered.
async fn replay_event(
    State(state): State<EventsApi>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "event")?;
    let (event, request) = stored_event(&state, id).await?;
    let request = request.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_request",
            "this event came from a poll, so there is no request to replay",
        )
    })?;
    let plugin = state.registry.get(&event.plugin).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_loaded",
            format!("plugin {} is not loaded", event.plugin),
        )
    })?;
    // The stored path is the one below the mount, already percent-decoded: the
    // URL is rebuilt from it, as close to the original as the row allows.
    let mount = match request.path.as_str() {
        "/" => format!("/hooks/{}", event.plugin),
        below => format!("/hooks/{}{below}", event.plugin),
    };
    let host = request
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map(|(_, value)| value.as_str());
    let url = request_url(state.public_url.as_ref(), host, &mount, &request.query);
    let replay = match call_webhook(
        &plugin,
        Arc::new(WebhookRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            url,
            // Rows stored before credentials were stripped on the way in may hold them.
            headers: without_admin_credentials(request.headers, &state.admin),
            body: request.body,
        }),
    )
    .await
    {
        Ok(accepted) => json!({
            "status": accepted.status.as_u16(),
            "body": String::from_utf8_lossy(&accepted.body),
            "events": accepted.events.iter().map(|e| json!({
                "event_id": e.id,
                "kind": e.kind,
                "subject": e.subject,
                "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or(Value::Null),
            })).collect::<Vec<_>>(),
        }),
        Err(error) => json!({
            "status": error.status.as_u16(),
            "error": { "error": error.code, "message": error.message },
        }),
    };
    Ok(Json(json!({
        "plugin_version": plugin.manifest.version,
        "stored": event_json(&event),
        "replay": replay,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    plugin: Option<String>,
    state: Option<String>,
    event: Option<i64>,
    after: Option<i64>,
    limit: Option<u32>,
}

async fn list_deliveries(
    State(state): State<EventsApi>,
    Query(query): Query<DeliveryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(query.limit)?;
    let delivery_state = query
        .state
        .map(|text| {
            DeliveryState::parse(&text).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("state must be pending, delivered or dead, not {text:?}"),
                )
            })
        })
        .transpose()?;
    let deliveries = state
        .store
        .list_deliveries(DeliveryFilter {
            plugin: query.plugin,
            state: delivery_state,
            event: query.event,
            before: query.after,
            limit,
        })
        .await?;
    Ok(page(
        "deliveries",
        &deliveries,
        limit,
        |d| d.id,
        delivery_json,
    ))
}

async fn retry_delivery(
    State(state): State<EventsApi>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "delivery")?;
    let delivery = state
        .store
        .retry(id, now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery with id {id}")))?;
    state.wake_dispatcher.notify_one();
    state.live.publish(Change::Delivery {
        id: delivery.id.to_string(),
        state: delivery.state.as_str(),
    });
    Ok(Json(delivery_json(&delivery)))
}

/// `DELETE /api/deliveries/{id}`: an operator gives up on a dead letter. It is
/// deleted for good (its event then goes with the next purge past `retention`);
/// 409 for a delivery that is not dead, which may be in flight, or delivered.
async fn discard_delivery(
    State(state): State<EventsApi>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "delivery")?;
    match state.store.discard(id).await? {
        Discarded::Gone(delivery) => {
            tracing::info!(
                delivery = delivery.id,
                event = delivery.event,
                plugin = %delivery.plugin,
                "a dead letter was discarded"
            );
            state.live.publish(Change::Delivery {
                id: delivery.id.to_string(),
                state: "discarded",
            });
            let mut body = delivery_json(&delivery);
            body["discarded"] = json!(true);
            Ok(Json(body))
        }
        Discarded::NotDead(current) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead",
            format!(
                "delivery {id} is {}; only a dead delivery can be discarded",
                current.as_str()
            ),
        )),
        Discarded::NotFound => Err(ApiError::not_found(format!("no delivery with id {id}"))),
    }
}
