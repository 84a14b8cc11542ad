//! The HTTP surface: `/hooks/{id}[/{*rest}]` into plugins, `/healthz`, and `/api/*`
//! (the event log's routes live in `api`, the live stream in `live`), the dashboard,
//! all behind `admin_auth`. `app` builds the router from shared state so tests can
//! drive it without a socket.
//!
//! A webhook's way through: plugin call -> outcome checked -> request and events
//! persisted (awaiting the commit) -> the plugin's response. A 2xx therefore means
//! the events are on disk; when persisting fails the provider gets 503 and retries.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::admin_auth::AdminAuth;
use crate::bindings::{Event, PluginError, WebhookOutcome, WebhookRequest};
use crate::error::ApiError;
use crate::live::{Change, LiveFeed};
use crate::plugin::{CallError, LoadedPlugin};
use crate::registry::{is_valid_plugin_id, Registry};
use crate::store::{now_ms, EventStore, IngestRecord, NewEvent, Persisted, RawRequest};

/// What every handler can reach. Built once by `run`.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub max_body_bytes: usize,
    pub store: Arc<dyn EventStore>,
    /// Wakes the delivery dispatcher (its only waiter) when new events have
    /// subscribers or a delivery is re-queued.
    pub wake_dispatcher: Arc<Notify>,
    /// Decides who may use everything but `/hooks`, `/healthz` and `/metrics`.
    pub admin: Arc<AdminAuth>,
    /// Where the webhook path and the API say what changed, for the dashboard.
    pub live: LiveFeed,
}

pub fn app(state: AppState) -> Router {
    let hooks = Router::new()
        .route("/hooks/{id}", any(webhook_at_root))
        .route("/hooks/{id}/{*rest}", any(webhook_below_root))
        .layer(DefaultBodyLimit::max(state.max_body_bytes));
    Router::new()
        .merge(hooks)
        .route("/healthz", get(healthz))
        .route("/api/plugins", get(list_plugins))
        .merge(crate::api::routes())
        .merge(crate::live::routes())
        .merge(crate::dashboard::routes())
        .merge(crate::admin_auth::routes())
        // Outermost, so that it also guards paths no route matches.
        .layer(from_fn_with_state(
            state.admin.clone(),
            crate::admin_auth::require_admin,
        ))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn list_plugins(State(state): State<AppState>) -> Json<Value> {
    let plugins: Vec<Value> = state
        .registry
        .snapshot()
        .into_iter()
        .map(|(id, entry)| {
            let mut item = json!({ "id": id, "status": if entry.failure.is_some() { "failed" } else { "ok" } });
            if let Some(plugin) = &entry.current {
                item["name"] = json!(plugin.manifest.name);
                item["version"] = json!(plugin.manifest.version);
                item["description"] = json!(plugin.manifest.description);
                item["emits"] = json!(plugin.manifest.emits);
                item["poll_interval_seconds"] = json!(plugin.manifest.poll_interval_seconds);
                item["subscriptions"] = json!(plugin.manifest.subscriptions);
                item["sha256"] = json!(plugin.sha256);
                item["loaded_at"] = json!(humantime::format_rfc3339_millis(plugin.loaded_at).to_string());
            }
            if let Some(failure) = &entry.failure {
                item["error"] = json!({
                    "message": failure.message,
                    "at": humantime::format_rfc3339_millis(failure.at).to_string(),
                });
            }
            item
        })
        .collect();
    Json(json!({ "plugins": plugins }))
}

async fn webhook_at_root(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    webhook(state, id, String::new(), method, uri, headers, body).await
}

async fn webhook_below_root(
    State(state): State<AppState>,
    Path((id, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    webhook(state, id, rest, method, uri, headers, body).await
}

async fn webhook(
    state: AppState,
    id: String,
    rest: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let plugin = is_valid_plugin_id(&id)
        .then(|| state.registry.get(&id))
        .flatten()
        .ok_or_else(|| ApiError::not_found(format!("no plugin is loaded at /hooks/{id}")))?;
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "request body is larger than the limit of {} bytes",
                state.max_body_bytes
            )
        } else {
            "could not read the request body".to_string()
        };
        ApiError::new(status, "body", message)
    })?;

    let request = WebhookRequest {
        method: method.as_str().to_string(),
        path: format!("/{rest}"),
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };

    let received_at = now_ms();
    let accepted = call_webhook(&plugin, request.clone()).await?;
    let record = IngestRecord {
        plugin: plugin.id().to_string(),
        received_at,
        request: Some(RawRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
        }),
        events: accepted
            .events
            .iter()
            .map(|event| NewEvent {
                event_id: event.id.clone(),
                kind: event.kind.clone(),
                subject: event.subject.clone(),
                payload: event.payload.clone(),
                subscribers: state.registry.subscribers(&event.kind),
            })
            .collect(),
    };
    let has_subscribers = record.events.iter().any(|e| !e.subscribers.is_empty());
    let persisted = state.store.persist_ingest(record).await.map_err(|error| {
        tracing::error!(
            plugin = plugin.id(),
            "storing a webhook's events: {error:#}"
        );
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage",
            "the delivery could not be stored; retry later",
        )
        .with_retry_after(5)
    })?;
    let mut new_ids = Vec::new();
    for (event, persisted) in accepted.events.iter().zip(&persisted) {
        let (stored_as, duplicate) = match persisted {
            Persisted::New(id) => (*id, false),
            Persisted::Duplicate(id) => (*id, true),
        };
        if !duplicate {
            new_ids.push(stored_as.to_string());
        }
        tracing::info!(
            plugin = plugin.id(),
            event_id = %event.id,
            kind = %event.kind,
            subject = event.subject.as_deref().unwrap_or(""),
            stored_as,
            duplicate,
            "event received"
        );
    }
    if has_subscribers {
        state.wake_dispatcher.notify_one();
    }
    if !new_ids.is_empty() {
        state.live.publish(Change::Events {
            plugin: plugin.id().to_string(),
            ids: new_ids,
            deliveries_queued: has_subscribers,
        });
    }
    Ok((accepted.status, accepted.headers, accepted.body).into_response())
}

/// A webhook the plugin accepted, with an outcome that passed every check.
pub struct Accepted {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub events: Vec<Event>,
}

/// Calls the plugin's `handle-webhook` and checks what it returned; every way it
/// can fail is already the `ApiError` the provider should get.
pub async fn call_webhook(
    plugin: &LoadedPlugin,
    request: WebhookRequest,
) -> Result<Accepted, ApiError> {
    match plugin.handle_webhook(request).await {
        Ok(Ok(outcome)) => accept_outcome(plugin, outcome),
        Ok(Err(error)) => Err(plugin_error_response(plugin, error)),
        Err(error @ CallError::Timeout { .. }) => {
            tracing::error!("{error}");
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the plugin did not answer in time",
            ))
        }
        Err(error @ CallError::Trap { .. }) => Err(ApiError::internal(&error)),
    }
}

/// Checks what the plugin returned. A malformed outcome is the plugin's bug: the
/// provider gets a 500 and so retries.
fn accept_outcome(plugin: &LoadedPlugin, outcome: WebhookOutcome) -> Result<Accepted, ApiError> {
    let fail = |what: String| {
        ApiError::internal(&format!(
            "plugin {} {} returned {what}",
            plugin.id(),
            plugin.manifest.version
        ))
    };
    for event in &outcome.events {
        if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&event.payload) {
            return Err(fail(format!(
                "event {:?} with a payload that is not JSON: {error}",
                event.id
            )));
        }
        if event.id.is_empty() || event.kind.is_empty() {
            return Err(fail("an event with an empty id or kind".into()));
        }
    }
    let response = outcome.response;
    let status = StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| fail(format!("the invalid HTTP status {}", response.status)))?;
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| fail(format!("the invalid header name {name:?}")))?;
        let value = HeaderValue::try_from(value)
            .map_err(|_| fail(format!("an invalid value for header {name}")))?;
        headers.append(name, value);
    }
    Ok(Accepted {
        status,
        headers,
        body: response.body,
        events: outcome.events,
    })
}

fn plugin_error_response(plugin: &LoadedPlugin, error: PluginError) -> ApiError {
    let id = plugin.id();
    let version = &plugin.manifest.version;
    match error {
        PluginError::Unauthorized(message) => {
            tracing::warn!(plugin = id, version, "rejected as unauthorized: {message}");
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
        PluginError::BadRequest(message) => {
            tracing::warn!(plugin = id, version, "rejected as a bad request: {message}");
            ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
        }
        PluginError::Unavailable(message) => {
            tracing::warn!(plugin = id, version, "unavailable: {message}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the plugin is temporarily unavailable",
            )
            .with_retry_after(30)
        }
        PluginError::Internal(message) => {
            ApiError::internal(&format!("plugin {id} {version} failed: {message}"))
        }
    }
}
