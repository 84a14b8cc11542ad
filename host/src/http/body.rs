//! Reading a request's body: at most a limit (413), within the body deadline the
//! listener set (408, see `body_deadline`).

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::http::body_deadline::{self, BodyDeadlineElapsed};
use crate::http::error::ApiError;

/// Reads a request's body, at most `limit` bytes (413), within the request's body
/// deadline (408; the listener sets it, see `body_deadline`).
pub async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
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
pub fn body_deadline_response(elapsed: &BodyDeadlineElapsed) -> ApiError {
    ApiError::new(StatusCode::REQUEST_TIMEOUT, "body", elapsed.to_string())
}
