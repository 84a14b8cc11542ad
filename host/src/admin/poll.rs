//! `POST /api/plugins/{id}/poll`: polls a plugin now (after any poll of it already
//! running) and answers with the outcome.
//!
//! 200: `{plugin, version, events: [{id, event_id, kind, duplicate}], cursor,
//! next_poll_seconds, next_poll_at}`. A failed poll answers `{error, message,
//! next_poll_at}` with 503 (plugin said `unavailable`, the store failed, or, with
//! several nodes, `lease_lost`: another node took the poll lease over during the
//! poll), 502 (another plugin error), 504 (timeout) or 500 (trap, malformed
//! outcome). A 503 for want of capacity (`busy`, `pool_exhausted`) or for the store
//! (`storage`, `lease_lost`) says when to retry (`Retry-After`). 404: no such plugin; 409: the plugin does not poll (a conflict with the
//! plugin's manifest, not a malformed request).
//!
//! The poll runs under this node's poll lease when it holds it; on another node
//! it relies on the saved cursor: the save is refused (503 `storage`) when a
//! poll was saved since this one read the cursor.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::http::call_failure::{call_failure_status, BUSY_RETRY_AFTER};
use crate::http::error::{ApiError, STORAGE_RETRY_AFTER};
use crate::schedule::poll::PollFailure;
use crate::schedule::{PollNowError, Scheduler};

pub fn routes<S: Clone + Send + Sync + 'static>(scheduler: Scheduler) -> Router<S> {
    Router::new()
        .route("/api/plugins/{id}/poll", post(poll_now))
        .with_state(scheduler)
}

async fn poll_now(State(scheduler): State<Scheduler>, Path(id): Path<String>) -> Response {
    let (result, next_at) = match scheduler.poll_now(&id).await {
        Ok(done) => done,
        Err(error @ PollNowError::NotFound(_)) => {
            return ApiError::not_found(error.to_string()).into_response()
        }
        Err(error @ PollNowError::NotPolling(_)) => {
            return ApiError::new(StatusCode::CONFLICT, "not_polling", error.to_string())
                .into_response()
        }
    };
    let next_poll_at = humantime::format_rfc3339_millis(next_at).to_string();
    match result {
        Ok(report) => {
            let mut body = json!(report);
            body["next_poll_at"] = json!(next_poll_at);
            Json(body).into_response()
        }
        Err(failure) => {
            let mut response = (
                status(&failure),
                Json(json!({
                    "error": failure.code(),
                    "message": failure.summary(),
                    "next_poll_at": next_poll_at,
                })),
            )
                .into_response();
            if let Some(seconds) = retry_after(&failure) {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

/// When a failed poll may be asked for again: after a capacity or store failure,
/// which clear by themselves.
fn retry_after(failure: &PollFailure) -> Option<u32> {
    match failure {
        PollFailure::Call(error) if error.is_capacity() => Some(BUSY_RETRY_AFTER),
        PollFailure::Storage(_) | PollFailure::LeaseLost(_) => Some(STORAGE_RETRY_AFTER),
        _ => None,
    }
}

/// The status a failed poll answers with: the plugin's own failure is a bad
/// gateway (it failed to reach its provider), unless it said it is unavailable.
fn status(failure: &PollFailure) -> StatusCode {
    match failure {
        PollFailure::Plugin {
            unavailable: true, ..
        } => StatusCode::SERVICE_UNAVAILABLE,
        PollFailure::Plugin { .. } => StatusCode::BAD_GATEWAY,
        PollFailure::Unloaded(_) => StatusCode::NOT_FOUND,
        PollFailure::Call(error) => call_failure_status(error),
        PollFailure::Invalid { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        PollFailure::Storage(_) | PollFailure::LeaseLost(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
