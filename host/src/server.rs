//! The HTTP surface: `/hooks/{id}[/{*rest}]` into plugins, `/healthz`, `/metrics`,
//! and `/api/*` (the event log's routes live in `api`, the live stream in `live`), the
//! dashboard, all but the first three behind `admin_auth`. `router` builds one
//! listener's routes (`Surface`: all of them, or the webhook and admin halves when
//! the admin has its own listener) from shared state; `app` builds them all, so
//! tests can drive them without a socket.
//!
//! Plugins and the admin's origin are kept apart at this boundary
//! (`plugin_boundary`): every response under `/hooks/` is contained, and a
//! webhook's request loses the admin's credentials before a plugin or the store
//! sees it.
//!
//! A webhook's way through: plugin call -> outcome checked -> request and events
//! persisted (awaiting the commit) -> the plugin's response. A 2xx therefore means
//! the events are on disk; when persisting fails the provider gets 503 and retries.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::admin::auth::{AdminAuth, AdminGuard};
use crate::admin::health::HealthLog;
use crate::deploy::reload::Reloader;
use crate::http::body_deadline::{self, BodyDeadlineElapsed};
use crate::http::error::ApiError;
use crate::ingress::containment::without_admin_credentials;
use crate::live::{Change, LiveFeed};
use crate::metrics::Metrics;
use crate::node::NodeId;
use crate::plugins::bindings::{Event, PluginError, WebhookOutcome, WebhookRequest};
use crate::plugins::loaded::{CallError, LoadedPlugin};
use crate::plugins::registry::{is_valid_plugin_id, Registry};
use crate::schedule::Scheduler;
use crate::store::components::ComponentStore;
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
    /// Poll timers and status; `/api/plugins` shows it, the poll route drives it.
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    /// Decides who may use everything but `/hooks`, `/healthz` and `/metrics`.
    pub admin: Arc<AdminAuth>,
    /// Where the webhook path and the API say what changed, for the dashboard.
    pub live: LiveFeed,
    /// This process among the nodes sharing the store (`/healthz` shows it).
    pub node: NodeId,
    /// Whether `/healthz` found the store failing, so that it logs why once per outage.
    pub health_log: Arc<HealthLog>,
    /// Loads and swaps plugins; `PUT /api/plugins/{id}` makes a deploy current with it.
    pub reloader: Reloader,
    /// The component store a fleet shares (PostgreSQL); `None` on one node, where a
    /// deploy goes into the plugins directory only.
    pub components: Option<Arc<dyn ComponentStore>>,
}

/// Which of the host's routes one listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything, on the one listener there is without `admin_listen`.
    All,
    /// `listen` beside an `admin_listen`: only what providers and load balancers
    /// need, `/hooks/*` and `/healthz`; everything else is 404. `/metrics` is not
    /// here: it names every plugin and counts its traffic and failures, which is the
    /// operator's business, and the scraper is in the operator's network, where the
    /// admin listener is.
    Webhooks,
    /// `admin_listen`: everything but `/hooks/*`, so that no plugin's response is
    /// ever served from the admin's origin.
    Admin,
}

/// Every route on one listener, for driving without a socket (tests, the fuzz
/// target): the host name's port is not checked.
pub fn app(state: AppState) -> Router {
    router(state, Surface::All, None)
}

/// The routes of `surface`, for a listener on `port` (the open admin's `Host` check
/// wants it; `None` accepts any port).
pub fn router(state: AppState, surface: Surface, port: Option<u16>) -> Router {
    let hooks = Router::new()
        .route("/hooks/{id}", any(webhook_at_root))
        .route("/hooks/{id}/{*rest}", any(webhook_below_root))
        .layer(map_response(crate::ingress::containment::contain_response));
    let health = Router::new().route("/healthz", get(crate::admin::health::healthz));
    if surface == Surface::Webhooks {
        return hooks
            .merge(health)
            .fallback(not_on_this_listener)
            .with_state(state);
    }
    let admin = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/plugins", get(list_plugins))
        .merge(crate::admin::events::routes())
        .merge(crate::admin::poll::routes())
        .merge(crate::admin::deploy::routes())
        .merge(crate::live::routes())
        .merge(crate::admin::dashboard::routes())
        .merge(crate::admin::auth::routes())
        .merge(health);
    let routes = match surface {
        Surface::Admin => admin,
        _ => admin.merge(hooks),
    };
    let guard = AdminGuard {
        auth: state.admin.clone(),
        port,
    };
    routes
        // Outermost, so that it also guards paths no route matches.
        .layer(from_fn_with_state(guard, crate::admin::auth::require_admin))
        .with_state(state)
}

/// The webhook listener's answer to everything but `/hooks/*` and `/healthz`. It
/// does not say where the admin surface is.
async fn not_on_this_listener() -> ApiError {
    ApiError::not_found("only /hooks/* and /healthz are served on this address")
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        state.metrics.encode(),
    )
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
                item["sources"] = json!(plugin.sources);
                item["sha256"] = json!(plugin.sha256);
                item["loaded_at"] = json!(humantime::format_rfc3339_millis(plugin.loaded_at).to_string());
            }
            if let Some(poll) = state.scheduler.status(&id) {
                item["poll"] = poll.to_json();
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
    id: Result<Path<String>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(path_rejection)?;
    webhook(state, id, String::new(), method, uri, headers, body).await
}

async fn webhook_below_root(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((id, rest)) = path.map_err(path_rejection)?;
    webhook(state, id, rest, method, uri, headers, body).await
}

/// A path axum cannot decode (percent-encoded bytes that are not UTF-8): the
/// same JSON error shape as every other refusal, without axum's own text.
fn path_rejection(_: PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "path",
        "the request path is not valid percent-encoded UTF-8",
    )
}

async fn webhook(
    state: AppState,
    id: String,
    rest: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let plugin = is_valid_plugin_id(&id)
        .then(|| state.registry.get(&id))
        .flatten()
        .ok_or_else(|| ApiError::not_found(format!("no plugin is loaded at /hooks/{id}")))?;
    let started = std::time::Instant::now();
    let response = deliver_webhook(&state, &plugin, rest, method, uri, headers, body).await;
    let status = match &response {
        Ok(response) => response.status(),
        Err(error) => error.status,
    };
    state
        .metrics
        .webhook_finished(plugin.id(), status.as_u16(), started.elapsed());
    response
}

/// Everything after the plugin lookup: the call, the checks, the commit.
async fn deliver_webhook(
    state: &AppState,
    plugin: &LoadedPlugin,
    rest: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(body, &headers, state.max_body_bytes).await?;

    let headers = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    // One request goes to the plugin and into the store, so neither sees them.
    let request = WebhookRequest {
        method: method.as_str().to_string(),
        path: format!("/{rest}"),
        query: uri.query().unwrap_or_default().to_string(),
        headers: without_admin_credentials(headers, &state.admin),
        body: body.to_vec(),
    };

    let received_at = now_ms();
    let accepted = call_webhook(plugin, request.clone()).await?;
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
            .map(|event| {
                let subscribers = state.registry.subscribers(&event.kind, plugin.id());
                NewEvent::emitted(event, subscribers)
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
        .with_retry_after(crate::http::error::STORAGE_RETRY_AFTER)
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

/// Reads a request's body, at most `limit` bytes (413), within the request's body
/// deadline (408; the listener sets it, see `body_deadline`).
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(match body_deadline::elapsed_in(&*error) {
            Some(elapsed) => body_deadline_response(elapsed),
            None => ApiError::new(
                StatusCode::BAD_REQUEST,
                "body",
                "could not read the request body",
            ),
        }),
    }
}

/// 408 for a body that missed its deadline, in the API's error shape.
pub(crate) fn body_deadline_response(elapsed: &BodyDeadlineElapsed) -> ApiError {
    ApiError::new(StatusCode::REQUEST_TIMEOUT, "body", elapsed.to_string())
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
        // A spoofed kind is the plugin's fault like a malformed outcome: 500, so
        // the provider retries, with the reason in the log only.
        Err(error @ (CallError::Trap { .. } | CallError::UndeclaredKind { .. })) => {
            Err(ApiError::internal(&error))
        }
        Err(error @ CallError::Busy { .. }) => {
            tracing::warn!("{error}");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the plugin is handling as many requests as it may; retry shortly",
            )
            .with_retry_after(1))
        }
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
    let limits = &plugin.limits;
    if outcome.response.body.len() > limits.max_response_bytes {
        return Err(fail(format!(
            "a response body of {} bytes, above max_response_bytes = {}",
            outcome.response.body.len(),
            limits.max_response_bytes
        )));
    }
    for event in &outcome.events {
        check_event(event, limits.max_event_bytes).map_err(fail)?;
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

/// Checks one event a plugin emitted (by webhook or poll): a non-empty id and kind
/// and a JSON payload. The error completes "plugin X returned ...".
pub fn check_event(event: &Event, max_event_bytes: usize) -> Result<(), String> {
    if event.payload.len() > max_event_bytes {
        return Err(format!(
            "event {:?} with a payload of {} bytes, above max_event_bytes = {max_event_bytes}",
            event.id,
            event.payload.len(),
        ));
    }
    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&event.payload) {
        return Err(format!(
            "event {:?} with a payload that is not JSON: {error}",
            event.id
        ));
    }
    if event.id.is_empty() || event.kind.is_empty() {
        return Err("an event with an empty id or kind".into());
    }
    Ok(())
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
