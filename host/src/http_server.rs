//! The HTTP listener: accepts connections and serves the router on them with
//! hyper, with limits on what a client may send and how slowly. `axum::serve`
//! does the same but exposes none of hyper's connection settings.
//!
//! A client that sends too many or too large headers gets 431 (hyper's answer);
//! one that dribbles its headers is disconnected after `HEADER_READ_TIMEOUT`; the
//! webhook route bounds reading the body itself (`server::BODY_READ_TIMEOUT`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// The longest a client may take to send a request's line and headers, counted
/// from the first byte; slower clients (slowloris) are disconnected.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most headers one request may carry; more gets 431. Providers send ~20.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of request line plus headers; more gets 431. The HTTP/1 read
/// buffer is capped at this (hyper's minimum is 8 KiB), and HTTP/2 header lists
/// likewise.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and
/// waits for the connections' requests in flight to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
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
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
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
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection ended with an error: {error}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
