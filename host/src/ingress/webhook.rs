//! `/hooks/{id}[/{*rest}]`: a webhook into its plugin. Its way through: plugin
//! call -> outcome checked (`plugins::outcome`) -> request and events persisted
//! (`ingest`, awaiting the commit) -> the plugin's response. A 2xx therefore means
//! the events are on disk; when persisting fails the provider gets 503 and retries.
//!
//! Plugins and the admin's origin are kept apart here (`containment`): every
//! response under `/hooks/` is contained, and a webhook's request loses the
//! admin's credentials before a plugin or the store sees it.
//!
//! This is also where a plugin's failure becomes an HTTP answer for the provider
//! (`call_webhook`); the replay route shows the same answer.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::admin::auth::AdminAuth;
use crate::config::public_url::{request_url, PublicUrl};
use crate::http::body::read_body;
use crate::http::call_failure::call_failure;
use crate::http::error::{ApiError, STORAGE_RETRY_AFTER};
use crate::ingest::{Arrival, Ingest, IngestError};
use crate::ingress::containment::{contain_response, without_admin_credentials};
use crate::metrics::Metrics;
use crate::plugins::bindings::{PluginError, WebhookRequest};
use crate::plugins::id::is_valid_plugin_id;
use crate::plugins::loaded::LoadedPlugin;
use crate::plugins::outcome::{check_webhook, Accepted};
use crate::plugins::plugin_error;
use crate::plugins::registry::Registry;
use crate::store::{now_ms, RawRequest};

/// What the webhook route uses.
#[derive(Clone)]
pub struct Webhooks {
    pub registry: Arc<Registry>,
    pub max_body_bytes: usize,
    /// Whose credentials are taken out of webhook requests.
    pub admin: Arc<AdminAuth>,
    pub metrics: Arc<Metrics>,
    pub ingest: Ingest,
    /// Where providers reach this host, for each request's `url` (see
    /// `public_url`).
    pub public_url: Option<PublicUrl>,
}

/// `/hooks/{id}` and `/hooks/{id}/{*rest}`, every response contained.
pub fn routes<S: Clone + Send + Sync + 'static>(webhooks: Webhooks) -> Router<S> {
    Router::new()
        .route("/hooks/{id}", any(webhook_at_root))
        .route("/hooks/{id}/{*rest}", any(webhook_below_root))
        .layer(map_response(contain_response))
        // One `Arc` for the route's state: axum clones the state for every
        // request, and the fields' own `Arc`s would each be counted up and down.
        .with_state(Arc::new(webhooks))
}

async fn webhook_at_root(
    State(state): State<Arc<Webhooks>>,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(path_rejection)?;
    webhook(&state, id, String::new(), request).await
}

async fn webhook_below_root(
    State(state): State<Arc<Webhooks>>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Path((id, rest)) = path.map_err(path_rejection)?;
    webhook(&state, id, rest, request).await
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
    state: &Webhooks,
    id: String,
    rest: String,
    request: Request,
) -> Result<Response, ApiError> {
    let plugin = is_valid_plugin_id(&id)
        .then(|| state.registry.get(&id))
        .flatten()
        .ok_or_else(|| ApiError::not_found(format!("no plugin is loaded at /hooks/{id}")))?;
    let started = std::time::Instant::now();
    let response = receive_webhook(state, &plugin, rest, request).await;
    let status = match &response {
        Ok(response) => response.status(),
        Err(error) => error.status,
    };
    state
        .metrics
        .webhook_finished(plugin.id(), status.as_u16(), started.elapsed());
    response
}

/// Everything after the plugin lookup: the body, the call, the checks, the commit.
async fn receive_webhook(
    state: &Webhooks,
    plugin: &LoadedPlugin,
    rest: String,
    request: Request,
) -> Result<Response, ApiError> {
    let (head, body) = request.into_parts();
    let body = read_body(body, &head.headers, state.max_body_bytes).await?;

    let headers = head
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let query = head.uri.query().unwrap_or_default();
    // HTTP/2 carries the host in the URI (`:authority`) rather than in `Host`.
    let host = match head.headers.get(header::HOST) {
        Some(value) => value.to_str().ok(),
        None => head.uri.authority().map(|authority| authority.as_str()),
    };
    let url = request_url(state.public_url.as_ref(), host, head.uri.path(), query);
    // One request goes to the plugin and into the store, so neither sees them.
    // It is shared with the call rather than copied, and is the store's again
    // once the call (and with it the instance) is over.
    let request = Arc::new(WebhookRequest {
        method: head.method.as_str().to_string(),
        path: format!("/{rest}"),
        query: query.to_string(),
        url,
        headers: without_admin_credentials(headers, &state.admin),
        body: Vec::from(body),
    });

    let received_at = now_ms();
    let accepted = call_webhook(plugin, request.clone()).await?;
    let request = Arc::unwrap_or_clone(request);
    let arrival = Arrival::Webhook {
        received_at,
        request: RawRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
        },
    };
    state
        .ingest
        .ingest(plugin.id(), accepted.events, arrival)
        .await
        .map_err(|error| match error {
            IngestError::Storage(_) | IngestError::LeaseLost => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage",
                "the delivery could not be stored; retry later",
            )
            .with_retry_after(STORAGE_RETRY_AFTER),
        })?;
    Ok((accepted.status, accepted.headers, accepted.body).into_response())
}

/// Calls the plugin's `handle-webhook` and checks what it returned; every way it
/// can fail is already the `ApiError` the provider should get. The call holds its
/// share of `request` only while it runs.
pub async fn call_webhook(
    plugin: &LoadedPlugin,
    request: Arc<WebhookRequest>,
) -> Result<Accepted, ApiError> {
    match plugin.handle_webhook(request).await {
        // A malformed outcome is the plugin's bug: the provider gets a 500 and so
        // retries, with the reason in the log only.
        Ok(Ok(outcome)) => check_webhook(outcome, &plugin.limits).map_err(|what| {
            ApiError::internal(&format!(
                "plugin {} {} returned {what}",
                plugin.id(),
                plugin.manifest.version
            ))
        }),
        Ok(Err(error)) => Err(plugin_error_response(plugin, error)),
        Err(error) => Err(call_failure(&error)),
    }
}

/// The provider's answer when the plugin refused its webhook.
fn plugin_error_response(plugin: &LoadedPlugin, error: PluginError) -> ApiError {
    let id = plugin.id();
    let version = &plugin.manifest.version;
    let refused = plugin_error::describe(&error);
    let answer = match error {
        PluginError::Unauthorized(message) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
        PluginError::BadRequest(message) => {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
        }
        PluginError::Unavailable(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the plugin is temporarily unavailable",
        )
        .with_retry_after(30),
        PluginError::Internal(_) => {
            return ApiError::internal(&format!("plugin {id} {version} failed: {refused}"));
        }
    };
    tracing::warn!(plugin = id, version, "webhook refused: {refused}");
    answer
}
