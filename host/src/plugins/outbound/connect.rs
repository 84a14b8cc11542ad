//! Sending one outbound request over a connection to an address that has already
//! been checked: TCP to exactly that address, TLS (rustls with the webpki roots,
//! SNI and certificate check on the name the plugin asked for) for https, HTTP/1.
//!
//! Adapted from wasmtime-wasi-http 48.0.8's `default_send_request`, which takes a
//! URI and connects to whatever its host resolves to at that moment; a DNS server
//! that answers differently the second time (rebinding) would then send the plugin
//! to an address nobody checked. Here the caller resolves once, checks, and hands
//! over the addresses; nothing in this file looks a name up. Kept from the
//! original: its connect, first-byte and between-bytes timeouts, the handshake,
//! and the `io` future that drives the connection after the response head.
//! Added: the TLS handshake counts against the connect timeout too.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, LazyLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, WasiBody};

/// The bounds on one request; see `RequestOptions`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

/// rustls with ring (the provider wasmtime-wasi-http itself uses) named outright, so
/// that another crate enabling a second provider cannot make this ambiguous.
static TLS_CONFIG: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .expect("ring supports rustls's default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
});

/// Connects to the first of `addresses` that accepts, in order. The error is the
/// last address's, so a single refused address reads as `connection-refused`.
pub async fn connect(addresses: &[SocketAddr]) -> Result<TcpStream, Error> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => {
                tracing::debug!(%address, %error, "outbound connect failed");
                last = Some(error);
            }
        }
    }
    Err(last.map_or(Error::DestinationUnavailable, Error::Connect))
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// The response body, failing when the server stalls longer than the
/// between-bytes timeout.
pub struct IncomingResponseBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl http_body::Body for IncomingResponseBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(if err.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(err)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

/// Sends `request` over `stream`, through TLS when `tls` names the server. Returns
/// the response once its head has arrived, and the future that drives the rest of
/// the connection (the body) until it completes.
pub async fn send(
    stream: TcpStream,
    tls: Option<ServerName<'static>>,
    mut request: http::Request<WasiBody>,
    timeouts: Timeouts,
) -> Result<
    (
        http::Response<IncomingResponseBody>,
        impl Future<Output = Result<(), Error>> + Send,
    ),
    Error,
> {
    let stream: Box<dyn Stream> = match tls {
        Some(server_name) => {
            let connector = tokio_rustls::TlsConnector::from(TLS_CONFIG.clone());
            let tls_stream =
                tokio::time::timeout(timeouts.connect, connector.connect(server_name, stream))
                    .await
                    .map_err(|_| Error::ConnectionTimeout)?
                    .map_err(Error::Tls)?;
            Box::new(tls_stream)
        }
        None => Box::new(stream),
    };
    let (mut sender, conn) = tokio::time::timeout(
        timeouts.connect,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // The request carries the scheme and authority; on the wire (not to a proxy)
    // only the path and query belong in the request line.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(
            request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/"),
        )
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let send = async move {
        let response = tokio::time::timeout(timeouts.first_byte, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        // A zero interval panics in tokio; 1 ns is as good as zero.
        let between_bytes = timeouts.between_bytes.max(Duration::from_nanos(1));
        let mut timeout = tokio::time::interval(between_bytes);
        timeout.reset();
        Ok::<_, Error>(response.map(|incoming| IncomingResponseBody { incoming, timeout }))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Drive the connection's I/O while waiting for the response head.
    let response = poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let Some(fut) = conn.as_mut() else {
                return Poll::Pending;
            };
            let result = ready!(Pin::new(fut).poll(cx));
            conn = None;
            match result {
                // The connection is done: the response is ready or never will be.
                Ok(()) => send.as_mut().poll(cx),
                Err(err) => Poll::Ready(Err(Error::from(err))),
            }
        }
    })
    .await?;
    Ok((response, async move {
        let Some(conn) = conn else {
            return Ok(());
        };
        match conn.await {
            Ok(()) => Ok(()),
            Err(err) if err.is_timeout() => Err(Error::HttpResponseTimeout),
            Err(err) => Err(err.into()),
        }
    }))
}
