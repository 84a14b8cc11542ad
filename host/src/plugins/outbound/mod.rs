//! Outbound HTTP for plugins, through the standard `wasi:http/outgoing-handler` so
//! that each language's usual client works. Deny by default: a request leaves only
//! when its host and port are in the plugin's `allowed_hosts` (checked before any
//! name is looked up) and the address it is about to connect to is public or named
//! there itself (checked after the one lookup, on the very address connected to).
//! Anything else is refused before a connection is made, logged and counted. Every
//! request is bounded in time and in response size, and what it holds in the host is
//! charged to the call's host memory budget until its response body and connection
//! are dropped.
//!
//! - `allowlist`: the entries, and which requests and addresses they allow.
//! - `address`: which IP addresses are public.
//! - `connect`: TCP to a checked address, TLS, HTTP/1.
//!
//! Nothing else in the host opens connections for a plugin: WASI sockets and name
//! lookups are off (`CallState::new`), and wasmtime-wasi-http is built without its
//! `default-send-request`, so every outgoing request comes through `send_request`
//! below.

mod address;
pub mod allowlist;
mod connect;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use rustls::pki_types::ServerName;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::metrics::{Metrics, OutboundRefusal};
pub use address::Restriction;
use allowlist::{AllowedHost, Destination, Host, Screened};
use connect::Timeouts;

use crate::plugins::host_memory::{Charge, ChargedBody};
use crate::plugins::limits;

/// Connect, first-byte and between-bytes timeouts when the plugin asks for none
/// (or for longer): a provider that hangs must not hold a call forever.
pub const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body a plugin may receive.
pub const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// The outbound policy of one plugin, for one call.
pub struct OutboundPolicy {
    pub plugin: Arc<str>,
    /// `[plugins.<id>] allowed_hosts`.
    pub allowed_hosts: Arc<[AllowedHost]>,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
    /// The budget charge of the request being handed to `send_request`, put here
    /// by the `handle` wrapper (`http_budget`) just before; the send keeps it.
    pub in_flight: Option<Charge>,
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

impl OutboundPolicy {
    /// Logs and counts a request whose host and port no entry allows.
    fn refuse_unlisted(&self, uri: &http::Uri, destination: Option<&Destination>) {
        let plugin = &self.plugin;
        let hint = match destination {
            Some(d) if allowlist::needs_port_for_http(&self.allowed_hosts, d) => {
                format!(" (an entry without a port allows https only: add \"{d}\" for plain http)")
            }
            _ => String::new(),
        };
        tracing::warn!(
            %plugin,
            %uri,
            "outbound request refused: host is not in [plugins.{plugin}] allowed_hosts{hint}",
        );
        self.metrics
            .outbound_refused(plugin, OutboundRefusal::NotAllowed);
    }
}

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
        let destination = match Destination::of(request.uri()) {
            Some(destination) if allowlist::allows(&self.allowed_hosts, &destination) => {
                destination
            }
            other => {
                self.refuse_unlisted(request.uri(), other.as_ref());
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        let bound =
            |asked: Option<Duration>| asked.map_or(OUTBOUND_TIMEOUT, |t| t.min(OUTBOUND_TIMEOUT));
        let options = options.unwrap_or_default();
        let timeouts = Timeouts {
            connect: bound(options.connect_timeout),
            first_byte: bound(options.first_byte_timeout),
            between_bytes: bound(options.between_bytes_timeout),
        };
        let (plugin, allowed_hosts, metrics) = (
            self.plugin.clone(),
            self.allowed_hosts.clone(),
            self.metrics.clone(),
        );
        tracing::debug!(%plugin, uri = %request.uri(), "outbound request");
        Box::new(async move {
            let tls = tls_server_name(&destination)?;
            // The lookup, the check and the connect share the connect timeout, as
            // the lookup and the connect did in wasmtime-wasi-http's own client.
            let stream = tokio::time::timeout(timeouts.connect, async {
                let resolved = resolve(&destination).await?;
                let screened = allowlist::screen(&allowed_hosts, &destination, resolved);
                log_refused_addresses(&plugin, &destination, &screened);
                if screened.permitted.is_empty() {
                    metrics.outbound_refused(&plugin, OutboundRefusal::AddressProhibited);
                    return Err(Error::DestinationIpProhibited);
                }
                connect::connect(&screened.permitted).await
            })
            .await
            .map_err(|_| Error::ConnectionTimeout)??;
            let (response, io) = connect::send(stream, tls, request, timeouts).await?;
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

/// The name TLS checks the certificate against (and sends as SNI): the host as the
/// plugin wrote it, never the address it resolved to. `None` for plain http.
fn tls_server_name(destination: &Destination) -> Result<Option<ServerName<'static>>, Error> {
    if !destination.https {
        return Ok(None);
    }
    match &destination.host {
        Host::Name(name) => {
            ServerName::try_from(name.clone())
                .map(Some)
                .map_err(|_| Error::DnsError {
                    rcode: Some("invalid dns name".into()),
                    info_code: None,
                })
        }
        Host::Address(ip) => Ok(Some(ServerName::from(*ip))),
    }
}

/// The addresses `destination` stands for: an address literal as it is, a name
/// through the system resolver, once.
async fn resolve(destination: &Destination) -> Result<Vec<SocketAddr>, Error> {
    match &destination.host {
        Host::Address(ip) => Ok(vec![SocketAddr::new(*ip, destination.port)]),
        Host::Name(name) => {
            // An io::Error here is what wasmtime-wasi-http's client reported for a
            // failed lookup; it becomes the guest's `DNS-error`.
            let resolved = tokio::net::lookup_host((name.as_str(), destination.port))
                .await
                .map_err(Error::Connect)?;
            Ok(resolved.collect())
        }
    }
}

/// Says which resolved addresses were refused and why: the whole request when none
/// is left, else only those addresses.
fn log_refused_addresses(plugin: &str, destination: &Destination, screened: &Screened) {
    if screened.refused.is_empty() {
        return;
    }
    let refused = screened
        .refused
        .iter()
        .map(|(address, why)| format!("{address} ({why})"))
        .collect::<Vec<_>>()
        .join(", ");
    let outcome = if screened.permitted.is_empty() {
        "refused"
    } else {
        "skips addresses"
    };
    tracing::warn!(
        %plugin,
        %destination,
        "outbound request {outcome}: {} resolved to {refused}, which is not public; to allow \
         an address that is not public, list that address and port itself in \
         [plugins.{plugin}] allowed_hosts",
        destination.host,
    );
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
