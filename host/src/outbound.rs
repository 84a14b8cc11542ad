//! Outbound HTTP for plugins, through the standard `wasi:http/outgoing-handler` so
//! that each language's usual client works. Deny by default: a request leaves only
//! when its host is in the plugin's `allowed_hosts`; anything else is refused
//! before a connection is made, and logged. Every request is bounded in time and
//! in response size, and what it holds in the host is charged to the call's host
//! memory budget until its response body and connection are dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{default_send_request, Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::host_memory::{Charge, ChargedBody};
use crate::limits;

/// Connect, first-byte and between-bytes timeouts when the plugin asks for none
/// (or for longer): a provider that hangs must not hold a call forever.
pub const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body a plugin may receive.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// The outbound policy of one plugin, for one call.
pub struct OutboundPolicy {
    pub plugin: Arc<str>,
    /// `host` (the scheme's default port) or `host:port` entries.
    pub allowed_hosts: Arc<[String]>,
    /// The budget charge of the request being handed to `send_request`, put here
    /// by the `handle` wrapper (`http_budget`) just before; the send keeps it.
    pub in_flight: Option<Charge>,
}

impl OutboundPolicy {
    /// Whether `uri` may be requested.
    pub fn permits(&self, uri: &http::Uri) -> bool {
        let Some(host) = uri.host() else { return false };
        let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTP) {
            80
        } else {
            443
        };
        let port = uri.port_u16().unwrap_or(default_port);
        self.allowed_hosts.iter().any(|entry| {
            let (entry_host, entry_port) = match entry.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || entry.starts_with('[') => {
                    match p.parse::<u16>() {
                        Ok(p) => (h, p),
                        Err(_) => (entry.as_str(), default_port),
                    }
                }
                _ => (entry.as_str(), default_port),
            };
            entry_host
                .trim_matches(['[', ']'])
                .eq_ignore_ascii_case(host.trim_matches(['[', ']']))
                && entry_port == port
        })
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        // Held until the send fails, or else until both the response body and the
        // connection task are dropped.
        let charge = self.in_flight.take().map(Arc::new);
        if !self.permits(request.uri()) {
            tracing::warn!(
                plugin = %self.plugin,
                uri = %request.uri(),
                "outbound request refused: host is not in [plugins.{}] allowed_hosts",
                self.plugin
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let bound = |asked: Option<Duration>| {
            Some(asked.map_or(OUTBOUND_TIMEOUT, |t| t.min(OUTBOUND_TIMEOUT)))
        };
        let options = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: bound(options.connect_timeout),
            first_byte_timeout: bound(options.first_byte_timeout),
            between_bytes_timeout: bound(options.between_bytes_timeout),
        };
        tracing::debug!(plugin = %self.plugin, uri = %request.uri(), "outbound request");
        Box::new(async move {
            let (response, io) = default_send_request(request, Some(options)).await?;
            if response.body().size_hint().lower() > MAX_RESPONSE_BYTES {
                return Err(Error::HttpResponseBodySize(Some(MAX_RESPONSE_BYTES)));
            }
            let body_charge = charge.clone();
            let response = response.map(|body| {
                let capped = CappedBody {
                    inner: body.boxed_unsync(),
                    remaining: MAX_RESPONSE_BYTES,
                };
                ChargedBody::new(capped, body_charge).boxed_unsync()
            });
            let io = async move {
                let _charge = charge;
                io.await
            };
            Ok((
                response,
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }

    /// One write queued beyond the one in progress, as wasmtime's default; set
    /// here with the chunk size because the budget's charge for a body counts both.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        limits::OUTGOING_BODY_BUFFER_CHUNKS
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        limits::OUTGOING_BODY_CHUNK
    }
}

/// A response body that fails once more than `remaining` bytes have arrived.
struct CappedBody {
    inner: WasiBody,
    remaining: u64,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                let len = data.len() as u64;
                if len > self.remaining {
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(
                        MAX_RESPONSE_BYTES,
                    )))));
                }
                self.remaining -= len;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy {
            plugin: "t".into(),
            allowed_hosts: entries.iter().map(|e| e.to_string()).collect(),
            in_flight: None,
        }
    }

    fn permits(entries: &[&str], uri: &str) -> bool {
        policy(entries).permits(&uri.parse().unwrap())
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        assert!(!permits(&[], "https://api.github.com/repos"));
    }

    #[test]
    fn a_bare_host_allows_its_schemes_default_port_only() {
        assert!(permits(&["api.github.com"], "https://api.github.com/repos"));
        assert!(permits(&["API.github.com"], "https://api.GitHub.com:443/"));
        assert!(permits(&["example.com"], "http://example.com/"));
        assert!(!permits(
            &["api.github.com"],
            "https://api.github.com:8443/"
        ));
        assert!(!permits(
            &["api.github.com"],
            "https://evil.com/?api.github.com"
        ));
        assert!(!permits(&["github.com"], "https://api.github.com/"));
        assert!(!permits(
            &["api.github.com"],
            "https://api.github.com.evil.com/"
        ));
    }

    #[test]
    fn host_and_port_must_match_exactly() {
        assert!(permits(&["127.0.0.1:9000"], "http://127.0.0.1:9000/items"));
        assert!(!permits(&["127.0.0.1:9000"], "http://127.0.0.1:9001/items"));
        assert!(!permits(&["127.0.0.1:9000"], "http://127.0.0.1/items"));
        assert!(permits(&["[::1]:9000"], "http://[::1]:9000/"));
    }
}
