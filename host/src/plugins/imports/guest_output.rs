//! Where a plugin's stdout and stderr go: into the host's log, one line per entry,
//! tagged with the plugin. Nothing is written to the host's own stdout. What one
//! call may log, through these streams and the `log` import together, is bounded
//! by its `LogBudget`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// The longest line kept; the rest of an over-long line is cut so that one call
/// cannot make the host buffer without bound.
const MAX_LINE_BYTES: usize = 4096;

#[derive(Clone, Copy, Debug)]
pub enum Channel {
    Stdout,
    Stderr,
}

/// The log bytes one call may still write (`[plugins.<id>] max_log_bytes`). Shared by
/// the call's stdout, stderr and `log` import; once spent, output is dropped and
/// the host notes that once, so a flooding plugin costs the log one line.
pub struct LogBudget {
    plugin: Arc<str>,
    limit: usize,
    remaining: AtomicUsize,
    exhausted: AtomicBool,
}

impl LogBudget {
    pub fn new(plugin: Arc<str>, limit: usize) -> Self {
        Self {
            plugin,
            limit,
            remaining: AtomicUsize::new(limit),
            exhausted: AtomicBool::new(false),
        }
    }

    /// Whether `bytes` more may be logged; spends them when so.
    pub fn spend(&self, bytes: usize) -> bool {
        let spent = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .is_ok();
        if !spent && !self.exhausted.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                plugin = %self.plugin,
                "plugin logged more than max_log_bytes = {} in one call; the rest of this call's output is dropped",
                self.limit
            );
        }
        spent
    }
}

/// A line-buffered writer that logs each complete line. Cloned into every stream
/// the guest opens; the clones share one buffer so lines are not split between them.
#[derive(Clone)]
pub struct GuestOutput {
    plugin: Arc<str>,
    channel: Channel,
    pending: Arc<Mutex<Vec<u8>>>,
    budget: Arc<LogBudget>,
}

impl GuestOutput {
    pub fn new(plugin: Arc<str>, channel: Channel, budget: Arc<LogBudget>) -> Self {
        Self {
            plugin,
            channel,
            pending: Arc::default(),
            budget,
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        if self.budget.exhausted.load(Ordering::Relaxed) {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            let room = MAX_LINE_BYTES.saturating_sub(pending.len());
            let (body, ends_line) = match chunk.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (chunk, false),
            };
            pending.extend_from_slice(&body[..body.len().min(room)]);
            if ends_line {
                self.emit(&pending);
                pending.clear();
            }
        }
    }

    fn emit(&self, line: &[u8]) {
        if !self.budget.spend(line.len() + 1) {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        match self.channel {
            Channel::Stdout => tracing::info!(plugin = %self.plugin, stream = "stdout", "{line}"),
            Channel::Stderr => tracing::warn!(plugin = %self.plugin, stream = "stderr", "{line}"),
        }
    }
}

impl Drop for GuestOutput {
    fn drop(&mut self) {
        // The last clone flushes a final line that had no newline.
        if Arc::strong_count(&self.pending) == 1 {
            let pending =
                std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
            if !pending.is_empty() {
                self.emit(&pending);
            }
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
