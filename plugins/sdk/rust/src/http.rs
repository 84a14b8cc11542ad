//! A blocking HTTP client over `wasi:http/outgoing-handler`, the host's outbound
//! HTTP (which reaches only the plugin's `allowed_hosts`). A plugin call makes one
//! request at a time, so blocking is all it needs.
//!
//! ```ignore
//! let response = http::Request::get(&url).header("accept", "application/json").send()
//!     .map_err(|e| e.into_plugin_error(&format!("GET {url}")))?
//!     .require_success(&format!("GET {url}"))?;
//! ```
//!
//! Bounds: `timeout` (connecting, the first response byte and each gap between
//! bytes; unset, only the host's bounds apply, and the call's own deadline ends a
//! stalled request) and `max_response_bytes` (default
//! [`DEFAULT_MAX_RESPONSE_BYTES`]; a longer body is an error, read no further than
//! the limit, so a large answer cannot exhaust the plugin's memory).
//!
//! Why not `wstd`'s client: it sends the request body while it waits for the
//! response and reports whichever fails first, so a request the host refuses
//! (`HTTP-request-denied`) shows up as "connection reset" from the body stream.
//! Here the body is written first and the response's error code wins, so a plugin
//! can tell "not in allowed_hosts" from "the server went away".

use std::fmt;
use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    http_error_code, ErrorCode, Fields, IncomingResponse, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

pub use wasip2::http::types::Method;

use super::PluginError;

/// The response body a request reads at most unless it says otherwise.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 << 20;
/// wasi's limit for one `blocking-write-and-flush`.
const WRITE_CHUNK: usize = 4096;
const READ_CHUNK: usize = 64 * 1024;

/// One outbound request, built up and then [`send`](Request::send)ed.
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    max_response_bytes: usize,
}

/// A whole response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Every header as received (names lowercase), values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum Error {
    /// The request could not be built (not an http(s) URL, a bad header).
    Request(String),
    /// wasi:http said why the request or its response failed.
    Http(ErrorCode),
    /// A body stream broke without an HTTP error code.
    Stream(String),
    /// The response body is longer than the request's `max_response_bytes`.
    TooLarge(usize),
}

impl Request {
    /// A request with no headers, an empty body, no timeout of its own and the
    /// default response size limit.
    pub fn new(method: Method, url: &str) -> Self {
        Request {
            method,
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    pub fn get(url: &str) -> Self {
        Self::new(Method::Get, url)
    }

    pub fn post(url: &str) -> Self {
        Self::new(Method::Post, url)
    }

    /// Adds a header (a name given twice is sent twice).
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Bounds connecting, the first response byte and each gap between bytes (the
    /// host caps each too). Below the call's own deadline, a stalled server ends
    /// as this request's error rather than as an interrupted call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The longest response body to read; a longer one is [`Error::TooLarge`].
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let url = &self.url;
        let (scheme, authority, path) = split_url(url)
            .ok_or_else(|| Error::Request(format!("{url:?} is not an http(s) URL")))?;
        let fields = Fields::from_list(&self.headers)
            .map_err(|e| Error::Request(format!("bad request header: {e:?}")))?;
        let request = OutgoingRequest::new(fields);
        let bad = |what: &str| Error::Request(format!("bad {what} in {url:?}"));
        request
            .set_method(&self.method)
            .map_err(|()| bad("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| bad("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| bad("authority"))?;
        request
            .set_path_with_query(Some(&path))
            .map_err(|()| bad("path"))?;
        let outgoing = request.body().expect("a new request's body is taken once");
        let options = RequestOptions::new();
        if let Some(timeout) = self.timeout {
            let nanos = Some(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
            // Each setter fails only when the host does not support that timeout.
            let _ = options.set_connect_timeout(nanos);
            let _ = options.set_first_byte_timeout(nanos);
            let _ = options.set_between_bytes_timeout(nanos);
        }

        let future = outgoing_handler::handle(request, Some(options)).map_err(Error::Http)?;
        // When the host refused the request, this write fails too; the response
        // below says why, so its error is reported first.
        let written = write_body(outgoing, &self.body);
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(Error::Http(code)),
            Some(Err(())) | None => {
                return Err(Error::Stream("the response was already taken".into()))
            }
        };
        written?;
        read_response(&response, self.max_response_bytes)
    }
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), Error> {
    {
        // The stream is a child of the body: it must be gone before `finish`.
        let stream = outgoing.write().expect("a body's stream is taken once");
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| Error::Stream(format!("writing the request body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(Error::Http)
}

fn read_response(response: &IncomingResponse, limit: usize) -> Result<Response, Error> {
    let status = response.status();
    // The headers are a child of the response, dropped at the end of the statement.
    let headers = response.headers().entries();
    let announced = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok()?.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > limit as u64) {
        return Err(Error::TooLarge(limit));
    }
    let incoming = response.consume().expect("a response's body is taken once");
    // A child of the body: declared after it, so dropped before it.
    let stream = incoming.stream().expect("a body's stream is taken once");
    let mut body = Vec::new();
    loop {
        // One byte past the limit at most, to tell "exactly the limit" from "more".
        let wanted = limit
            .saturating_sub(body.len())
            .saturating_add(1)
            .min(READ_CHUNK);
        match stream.blocking_read(wanted as u64) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(match http_error_code(&error) {
                    Some(code) => Error::Http(code),
                    None => Error::Stream(format!(
                        "reading the response body: {}",
                        error.to_debug_string()
                    )),
                })
            }
        }
        if body.len() > limit {
            return Err(Error::TooLarge(limit));
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `https://host:port/path?query` -> (scheme, `host:port`, `/path?query`).
fn split_url(url: &str) -> Option<(Scheme, &str, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return None;
    }
    let path = match path.chars().next() {
        None => "/".to_string(),
        Some('?') => format!("/{path}"),
        Some(_) => path.to_string(),
    };
    Some((scheme, authority, path))
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name`, whatever its case, when it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// The response if its status is 2xx; else `unavailable`, saying that
    /// `request` (such as `GET https://...`) answered that status, with the start
    /// of the body, which usually says why.
    pub fn require_success(self, request: &str) -> Result<Self, PluginError> {
        if self.is_success() {
            return Ok(self);
        }
        let excerpt: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(200)
            .collect();
        Err(PluginError::Unavailable(format!(
            "{request} answered HTTP {}: {excerpt}",
            self.status
        )))
    }
}

impl Error {
    /// The variant name of the wasi:http error code, such as `HttpRequestDenied`.
    pub fn code_name(&self) -> Option<String> {
        let Error::Http(code) = self else {
            return None;
        };
        let debug = format!("{code:?}");
        let name = debug.strip_prefix("ErrorCode::").unwrap_or(&debug);
        Some(
            name.split(['(', ' ', '{'])
                .next()
                .unwrap_or(name)
                .to_string(),
        )
    }

    /// Whether the host refused the request: its host is not in `allowed_hosts`.
    pub fn is_denied(&self) -> bool {
        matches!(self, Error::Http(ErrorCode::HttpRequestDenied))
    }

    /// The plugin error for `request` (such as `GET https://...`) having failed: a
    /// request that could not be built or that the host refused is `internal`
    /// (retrying cannot help until the operator changes the config); anything else
    /// is `unavailable`, for the host to retry later.
    pub fn into_plugin_error(self, request: &str) -> PluginError {
        let message = format!("{request} failed: {self}");
        if matches!(self, Error::Request(_)) || self.is_denied() {
            PluginError::Internal(message)
        } else {
            PluginError::Unavailable(message)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Request(message) | Error::Stream(message) => f.write_str(message),
            Error::Http(ErrorCode::HttpRequestDenied) => f.write_str(
                "http-request-denied: the host refused the request (its host is not in allowed_hosts)",
            ),
            Error::Http(code) => write!(f, "{code:?}"),
            Error::TooLarge(limit) => write!(f, "the response body is over {limit} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_splits_into_scheme_authority_and_path() {
        let split = |url| split_url(url).map(|(s, a, p)| (matches!(s, Scheme::Https), a, p));
        assert_eq!(
            split("https://api.example.com:8443/v1/x?y=1"),
            Some((true, "api.example.com:8443", "/v1/x?y=1".to_string()))
        );
        assert_eq!(split("HTTP://h"), Some((false, "h", "/".to_string())));
        assert_eq!(split("http://h?q"), Some((false, "h", "/?q".to_string())));
        for bad in ["ftp://h/", "http:///x", "h/x", ""] {
            assert!(split(bad).is_none(), "{bad:?}");
        }
    }
}
