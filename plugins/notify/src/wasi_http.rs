//! A blocking HTTP client over `wasi:http/outgoing-handler`, the host's outbound
//! HTTP (which reaches only the plugin's `allowed_hosts`). A plugin call makes one
//! request at a time, so blocking is all it needs.
//!
//! Why not `wstd`'s client: it sends the request body while it waits for the
//! response and reports whichever fails first, so a request the host refuses
//! (`HTTP-request-denied`) shows up as "connection reset" from the body stream.
//! Here the body is written first and the response's error code wins, so a plugin
//! can tell "not in allowed_hosts" from "the server went away".
//!
//! The test plugin `fetcher` compiles this same file.

use std::fmt;
use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    http_error_code, ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};
use wasip2::io::streams::StreamError;

/// wasi's limit for one `blocking-write-and-flush`.
const WRITE_CHUNK: usize = 4096;
const READ_CHUNK: u64 = 64 * 1024;

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum Failure {
    /// The request could not be built (not an http(s) URL, a bad header).
    Request(String),
    /// wasi:http said why the request or its response failed.
    Http(ErrorCode),
    /// A body stream broke without an HTTP error code.
    Stream(String),
}

impl Failure {
    /// The variant name of the wasi:http error code, such as `HttpRequestDenied`.
    pub fn code_name(&self) -> Option<String> {
        let Failure::Http(code) = self else {
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

    pub fn is_denied(&self) -> bool {
        matches!(self, Failure::Http(ErrorCode::HttpRequestDenied))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Request(message) | Failure::Stream(message) => f.write_str(message),
            Failure::Http(ErrorCode::HttpRequestDenied) => f.write_str(
                "http-request-denied: the host refused the request (its host is not in allowed_hosts)",
            ),
            Failure::Http(code) => write!(f, "{code:?}"),
        }
    }
}

/// Sends one request and reads the whole response. `timeout` bounds connecting,
/// the first response byte and each gap between bytes (the host caps each too).
pub fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<Response, Failure> {
    let (scheme, authority, path) =
        split_url(url).ok_or_else(|| Failure::Request(format!("{url:?} is not an http(s) URL")))?;
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_vec()))
        .collect();
    let fields = Fields::from_list(&entries)
        .map_err(|e| Failure::Request(format!("bad request header: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let bad = |what: &str| Failure::Request(format!("bad {what} in {url:?}"));
    request.set_method(&method).map_err(|()| bad("method"))?;
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
    if let Some(timeout) = timeout {
        let nanos = Some(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
        // Each setter fails only when the host does not support that timeout.
        let _ = options.set_connect_timeout(nanos);
        let _ = options.set_first_byte_timeout(nanos);
        let _ = options.set_between_bytes_timeout(nanos);
    }

    let future = outgoing_handler::handle(request, Some(options)).map_err(Failure::Http)?;
    // When the host refused the request, this write fails too; the response below
    // says why, so its error is reported first.
    let written = write_body(outgoing, body);
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(Failure::Http(code)),
        Some(Err(())) | None => {
            return Err(Failure::Stream("the response was already taken".into()))
        }
    };
    written?;
    let status = response.status();
    let incoming = response.consume().expect("a response's body is taken once");
    let stream = incoming.stream().expect("a body's stream is taken once");
    let mut data = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(match http_error_code(&error) {
                    Some(code) => Failure::Http(code),
                    None => Failure::Stream(format!(
                        "reading the response body: {}",
                        error.to_debug_string()
                    )),
                })
            }
        }
    }
    Ok(Response { status, body: data })
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), Failure> {
    {
        // The stream is a child of the body: it must be gone before `finish`.
        let stream = outgoing.write().expect("a body's stream is taken once");
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| Failure::Stream(format!("writing the request body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(Failure::Http)
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
