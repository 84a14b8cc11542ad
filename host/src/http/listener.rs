//! The HTTP listener: accepts connections and serves the router on them with
//! hyper, with limits on how many connections a client may hold, what it may send
//! and how slowly. `axum::serve` does the same but exposes none of hyper's
//! connection settings.
//!
//! What bounds a client, connection by connection:
//! - at most `max_connections` per listener (`connections`: at the cap new
//!   connections wait and the connection idle longest is closed);
//! - a connection with no request in flight and nothing left to write is closed
//!   after `IDLE_TIMEOUT`: that bounds protocol detection (a socket that sends nothing, half an HTTP/2
//!   preface), a request head that never completes, and keep-alive between
//!   requests, on HTTP/1 and HTTP/2 alike;
//! - a connection whose peer takes none of a response for `SEND_TIMEOUT` is
//!   closed (a client that stops reading, or on HTTP/2 opens no window), however
//!   slowly it reads otherwise;
//! - HTTP/1 request heads: `HEADER_READ_TIMEOUT` from their first byte (hyper), at
//!   most `MAX_HEADERS` headers and `MAX_HEADER_BYTES` (431);
//! - every request body: `BODY_READ_TIMEOUT` from the request's arrival
//!   (`body_deadline`; a route may allow more, as uploads do), 408 on the routes
//!   that read one; an answer given before its body was read says
//!   `Connection: close` (`unread_body`);
//! - HTTP/2: `MAX_CONCURRENT_STREAMS` per connection, header lists of
//!   `MAX_HEADER_BYTES`, keep-alive pings so a dead peer under a long request is
//!   noticed, and hyper's and h2's guards against rapid reset and CONTINUATION
//!   floods.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Result;
use axum::body::{Body, Bytes};
use axum::Router;
use http::{Request, Version};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::http::body_deadline::{BodyDeadline, DeadlineBody};
use crate::http::connections::{Connections, InFlight, Slot};
use crate::http::unread_body::ReadToEnd;
use crate::metrics::{HostClose, Metrics};

/// The longest a connection may stay open with no request in flight and nothing
/// left to write: from accept to its first request, between keep-alive requests,
/// on HTTP/2 while no stream is open. Long enough for a client to send a request it has ready, and for
/// keep-alive to spare providers that send bursts a new handshake.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a peer may take none of a response: writes to its socket blocked,
/// or (HTTP/2) a response frame waiting for a flow-control window it never opens.
/// A slow reader that makes progress is served however long it takes; but the
/// kernel wakes a blocked writer only once much of its send buffer (up to a few
/// MiB) has drained, so this must allow a slow reader to drain that much. nginx's
/// `send_timeout` measures the same and defaults to the same.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a client may take to send a request's line and headers, counted
/// from the first byte; slower clients (slowloris) are disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a client may take to send a request's body, counted from the
/// request's arrival. A provider sends a few KiB at once; a client dribbling bytes
/// to hold a connection and a buffer open is cut off with 408.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most headers one request may carry; more gets 431. Providers send ~20.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of request line plus headers; more gets 431. The HTTP/1 read
/// buffer is capped at this (hyper's minimum is 8 KiB), and HTTP/2 header lists
/// likewise (which also bounds CONTINUATION frames in h2).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Streams one HTTP/2 connection may have open at once; the minimum RFC 9113
/// recommends, so that a proxy multiplexing onto one connection is not starved.
/// Each may hold a body of up to `max_body_bytes` in a handler.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Streams a client may reset before hyper has accepted them (HTTP/2 rapid reset,
/// CVE-2023-44487); more ends the connection with ENHANCE_YOUR_CALM. h2's default,
/// set here so that it stays whatever h2 changes.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// How often an HTTP/2 connection is pinged when the peer has sent nothing, and
/// how long the answer may take, so a peer that vanished under a long request (a
/// slow plugin call, `/api/stream`) does not hold its connection forever.
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection being closed (idle, evicted, or at shutdown once its
/// requests are done) may take to say goodbye (an HTTP/2 GOAWAY) before it is
/// dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What one listener enforces besides the constants above. Each listener has its
/// own cap, so that clients of one (webhooks from anywhere) cannot take the slots
/// of another (the admin's).
#[derive(Clone)]
pub struct ConnectionLimits {
    /// The config key the listener comes from (`listen`): the `listener` label
    /// of the connection metrics and the log name it.
    pub listener: &'static str,
    pub max_connections: usize,
    pub metrics: Arc<Metrics>,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and
/// waits for the connections' requests in flight to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> Result<()> {
    let builder = Arc::new(builder());
    let connections = Connections::new(
        limits.listener,
        limits.max_connections,
        limits.metrics.connections(limits.listener),
    );
    // Every connection task holds a receiver: `true` asks it to close gracefully,
    // and `closed()` resolves once the last one has ended.
    let (shutting_down, shutdown_seen) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors, mostly: back off instead of spinning.
                    tracing::warn!("accepting a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = tokio::select! {
            slot = connections.admit() => slot,
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(
            stream,
            slot,
            builder.clone(),
            app.clone(),
            shutdown_seen.clone(),
        ));
    }
    drop(listener);
    drop(shutdown_seen);
    let _ = shutting_down.send(true);
    shutting_down.closed().await;
    Ok(())
}

fn builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// Drives one connection until it ends, closing it when it has been idle for
/// `IDLE_TIMEOUT`, when the listener evicts it, or at shutdown, and dropping it
/// when its peer has taken nothing for `SEND_TIMEOUT`.
async fn serve_connection(
    stream: TcpStream,
    slot: Slot,
    builder: Arc<Builder<TokioExecutor>>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = {
        let slot = slot.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = slot.request_started();
            let deadline = BodyDeadline::new(BODY_READ_TIMEOUT);
            let (mut parts, body) = request.into_parts();
            parts.extensions.insert(deadline.clone());
            let body = DeadlineBody::new(body, deadline);
            // HTTP/2 ends a stream, never the connection, over an unread body.
            let read_to_end = (parts.version <= Version::HTTP_11 && !body.is_end_stream())
                .then(ReadToEnd::default);
            let body = match &read_to_end {
                Some(read_to_end) => Body::new(read_to_end.watch(body)),
                None => Body::new(body),
            };
            let answer = app.clone().oneshot(Request::from_parts(parts, body));
            async move {
                let mut response = answer.await?;
                if let Some(read_to_end) = read_to_end {
                    read_to_end.close_unless_read(&mut response);
                }
                Ok::<_, Infallible>(
                    response.map(|body| Body::new(InFlightBody { body, in_flight })),
                )
            }
        })
    };
    let io = WriteWatch {
        io: TokioIo::new(stream),
        slot: slot.clone(),
        blocked: false,
    };
    // Upgrades (WebSocket) are not served: an upgraded connection would leave the
    // slot and the timeouts behind.
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    // Set once the connection was asked to close; from then on, once it is idle
    // it gets `CLOSE_GRACE` instead of `IDLE_TIMEOUT`.
    let mut closing_since = None;
    loop {
        let status = slot.status();
        let stalled_at = status
            .waiting_on_peer_since
            .map(|since| since + SEND_TIMEOUT);
        if stalled_at.is_some_and(|at| at <= tokio::time::Instant::now()) {
            // Nothing graceful is possible with a peer that takes nothing; dropping
            // the connection closes the socket.
            slot.closing(HostClose::SendTimeout);
            return;
        }
        if status.evicted && closing_since.is_none() {
            connection.as_mut().graceful_shutdown();
            closing_since = Some(tokio::time::Instant::now());
        }
        let idle_deadline = status.idle_since.map(|since| match closing_since {
            Some(closing) => since.max(closing) + CLOSE_GRACE,
            None => since + IDLE_TIMEOUT,
        });
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!("connection ended with an error: {error}");
                }
                return;
            }
            () = slot.changed() => {}
            () = sleep_until(stalled_at) => {}
            () = sleep_until(idle_deadline) => {
                if closing_since.is_some() {
                    // It did not finish closing in time: drop it, which closes the socket.
                    return;
                }
                slot.closing(HostClose::IdleTimeout);
                connection.as_mut().graceful_shutdown();
                closing_since = Some(tokio::time::Instant::now());
            }
            Ok(()) = shutdown.changed(), if closing_since.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing_since = Some(tokio::time::Instant::now());
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A response body that keeps its request in flight until hyper is done with it,
/// and tells the slot whenever a frame it handed over has not been asked past.
struct InFlightBody {
    body: Body,
    in_flight: InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // Asked for more: whatever was handed over before is on its way.
        self.in_flight.awaiting_peer(false);
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.in_flight.awaiting_peer(true);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's socket, telling its slot when hyper's writes stop going
/// through (the peer is not reading) and when they go through again.
struct WriteWatch {
    io: TokioIo<TcpStream>,
    slot: Slot,
    /// Whether the last write or flush was refused; the slot hears of changes only.
    blocked: bool,
}

impl WriteWatch {
    fn watch<T>(&mut self, polled: Poll<T>) -> Poll<T> {
        let blocked = polled.is_pending();
        if blocked != self.blocked {
            self.blocked = blocked;
            self.slot.write_blocked(blocked);
        }
        polled
    }
}

impl hyper::rt::Read for WriteWatch {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for WriteWatch {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
