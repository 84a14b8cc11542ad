//! How failures become HTTP responses: one JSON shape, `{"error": code, "message": text}`,
//! and never internal details in the body (they go to the log).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Seconds a client is told to wait (`Retry-After`) when the store failed.
pub const STORAGE_RETRY_AFTER: u32 = 5;

/// An error answered to an HTTP client, with a status, a stable machine code and
/// a message that is safe to show.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`), for 503s.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A failure whose details must stay in the log: logs `error` and answers a
    /// generic 500.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!("{error:#}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the details are in the host's log",
        )
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Lets handlers use `?` on anyhow results: a database that is unavailable for
/// now (`store::Unavailable`) is a 503 with `Retry-After`; anything else not
/// mapped to a specific status is an internal error.
impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        if crate::store::is_unavailable(&error) {
            tracing::warn!("{error:#}");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage",
                "the database is unavailable; retry later",
            )
            .with_retry_after(STORAGE_RETRY_AFTER);
        }
        Self::internal(&format!("{error:#}"))
    }
}
