//! HTTP plumbing under every route.

pub mod body;
pub mod body_deadline;
pub mod call_failure;
pub mod connections;
pub mod error;
pub mod listener;
pub mod unread_body;

/// A header map of `pairs`, in order, for tests of code that reads requests.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
    let mut map = axum::http::HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, axum::http::HeaderValue::from_str(value).unwrap());
    }
    map
}
