//! The HTTP answer to a plugin call that did not return: it ran out of time,
//! trapped, emitted a kind its manifest does not declare, found every slot of the
//! plugin busy, or found the host's instance pool exhausted. One mapping for the webhook route, replays and manual polls. What a plugin
//! did return, its own `plugin-error`, is each route's business: a provider and an
//! operator asking for a poll are told different things (`ingress::webhook`,
//! `admin::poll`).

use axum::http::StatusCode;

use crate::http::error::ApiError;
use crate::plugins::loaded::CallError;

/// Seconds a caller should wait after every slot of a plugin, or every instance
/// of the host, was busy.
pub const BUSY_RETRY_AFTER: u32 = 1;

/// The status for a call that did not return.
pub fn call_failure_status(error: &CallError) -> StatusCode {
    match error {
        CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        // The plugin's bug, like a malformed outcome: a provider gets a 500 and so
        // retries, with the reason in the log only.
        CallError::Trap { .. } | CallError::UndeclaredKind { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        CallError::Busy { .. } | CallError::PoolExhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The error answer for a call that did not return, with the details logged.
pub fn call_failure(error: &CallError) -> ApiError {
    let status = call_failure_status(error);
    match error {
        CallError::Timeout { .. } => {
            tracing::error!("{error}");
            ApiError::new(status, "timeout", "the plugin did not answer in time")
        }
        CallError::Trap { .. } | CallError::UndeclaredKind { .. } => ApiError::internal(error),
        CallError::Busy { .. } => busy(
            error,
            status,
            "the plugin is handling as many requests as it may; retry shortly",
        ),
        CallError::PoolExhausted { .. } => busy(
            error,
            status,
            "the host is running as many plugin calls as it can; retry shortly",
        ),
    }
}

/// A `busy` answer, asking the sender to retry after `BUSY_RETRY_AFTER`; the
/// `error` is logged as a warning, since it is load, not a fault.
fn busy(error: &CallError, status: StatusCode, message: &str) -> ApiError {
    tracing::warn!("{error}");
    ApiError::new(status, "busy", message).with_retry_after(BUSY_RETRY_AFTER)
}
