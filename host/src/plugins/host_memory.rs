//! The host memory budget of one call: memory the host holds on a plugin's
//! behalf, outside the plugin's linear memory (which `memory` limits), counted
//! against `limits::HOST_MEMORY_BUDGET`. Whatever would take a call over it traps
//! the call with `BudgetExceeded`, before or right after the allocation, so one
//! call of a hostile plugin can grow the host by the budget and no more.
//!
//! What is charged, and where (each charge is an upper bound of what it pays for,
//! and is refunded when that memory is freed):
//! - wasi:http `fields`, outgoing requests and responses with their headers,
//!   strings and body buffers, while they are in the call's resource table
//!   (`http_budget`);
//! - outgoing requests in flight: the request, its connection and hyper's buffers,
//!   until the response body and the connection are dropped (`outbound`);
//! - a poll's staged `state` writes, until the poll ends (`imports::state`).
//!
//! What was checked and needs no charge, because something else bounds it to a
//! few MiB per call:
//! - other resource-table entries (pollables and timers, streams, errors, request
//!   options, futures, incoming bodies): small, and at most
//!   `RESOURCE_TABLE_CAPACITY` of them (10,000 pollables measured 2 MiB);
//!   component-model handles: `COMPONENT_HANDLES`;
//! - incoming response bodies the guest never reads: in hyper's connection buffer,
//!   part of the in-flight charge; the response itself is capped by
//!   `outbound::MAX_RESPONSE_BYTES`;
//! - bytes passed into one host call (`log`, `crypto`, `wasi:random`, stream
//!   writes): `HOSTCALL_FUEL` and `MAX_RANDOM_BYTES`, freed when the call returns;
//! - stdout and stderr: `imports::guest_output` keeps at most one 4 KiB line per stream,
//!   newline or not, and `max_log_bytes` bounds what reaches the log;
//! - `state` in webhooks and `on-event`: written through, nothing is kept;
//! - sockets, files, environment: not granted (`CallState::new`).
//!
//! Counting is a few atomic operations per charged resource, never per byte, and
//! nothing at all on calls that create none.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The host memory one call may use; shared by everything that charges it.
pub struct HostMemoryBudget {
    plugin: Arc<str>,
    limit: usize,
    used: AtomicUsize,
}

/// A call tried to make the host hold more than its budget. The call traps with
/// this error; `plugin::call_in` counts it apart from other traps.
#[derive(Debug, thiserror::Error)]
#[error("host memory budget of {} exceeded by plugin {plugin}: {what} needs {bytes} bytes more, with {used} of {limit} bytes already held for this call", Size(*.limit))]
pub struct BudgetExceeded {
    pub plugin: Arc<str>,
    pub limit: usize,
    pub used: usize,
    pub bytes: usize,
    pub what: &'static str,
}

impl HostMemoryBudget {
    pub fn new(plugin: Arc<str>, limit: usize) -> Arc<Self> {
        Arc::new(Self {
            plugin,
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes charged and not yet refunded.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Charges `bytes` for `what`, refunded when the returned `Charge` is dropped.
    pub fn charge(
        self: &Arc<Self>,
        what: &'static str,
        bytes: usize,
    ) -> Result<Charge, BudgetExceeded> {
        self.take(what, bytes)?;
        Ok(Charge {
            budget: self.clone(),
            bytes,
        })
    }

    /// A charge of nothing, to grow later.
    pub fn empty_charge(self: &Arc<Self>) -> Charge {
        Charge {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, what: &'static str, bytes: usize) -> Result<(), BudgetExceeded> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .map(|_| ())
            .map_err(|used| BudgetExceeded {
                plugin: self.plugin.clone(),
                limit: self.limit,
                used,
                bytes,
                what,
            })
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Bytes taken from a budget, given back on drop.
pub struct Charge {
    budget: Arc<HostMemoryBudget>,
    bytes: usize,
}

impl Charge {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Makes this charge `bytes` in all, for `what`: grows it (which may fail,
    /// leaving it as it was) or gives the difference back.
    pub fn resize(&mut self, what: &'static str, bytes: usize) -> Result<(), BudgetExceeded> {
        if bytes > self.bytes {
            self.budget.take(what, bytes - self.bytes)?;
        } else {
            self.budget.give_back(self.bytes - bytes);
        }
        self.bytes = bytes;
        Ok(())
    }

    /// Adds `bytes` for `what` to this charge.
    pub fn grow(&mut self, what: &'static str, bytes: usize) -> Result<(), BudgetExceeded> {
        self.resize(what, self.bytes.saturating_add(bytes))
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

impl fmt::Debug for Charge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Charge({} bytes)", self.bytes)
    }
}

/// A response body that keeps a charge for as long as it lives: the memory of a
/// request in flight is freed when its response body (and connection) are.
pub struct ChargedBody<B> {
    inner: B,
    _charge: Option<Arc<Charge>>,
}

impl<B> ChargedBody<B> {
    pub fn new(inner: B, charge: Option<Arc<Charge>>) -> Self {
        Self {
            inner,
            _charge: charge,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for ChargedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `32 MiB` rather than `33554432 bytes` where the size allows.
struct Size(usize);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: usize = 1 << 20;
        const KIB: usize = 1 << 10;
        match self.0 {
            n if n >= MIB && n % MIB == 0 => write!(f, "{} MiB", n / MIB),
            n if n >= KIB && n % KIB == 0 => write!(f, "{} KiB", n / KIB),
            n => write!(f, "{n} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_refused_past_the_limit_and_refunded_on_drop() {
        let budget = HostMemoryBudget::new("p".into(), 100);
        let first = budget.charge("a thing", 60).unwrap();
        let refused = budget.charge("another thing", 41).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "host memory budget of 100 bytes exceeded by plugin p: another thing needs 41 bytes more, with 60 of 100 bytes already held for this call"
        );
        let second = budget.charge("another thing", 40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(first);
        assert_eq!(budget.used(), 40);
        drop(second);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_charge_resizes_within_the_limit_only() {
        let budget = HostMemoryBudget::new("p".into(), 32 << 20);
        let mut charge = budget.empty_charge();
        charge.grow("headers", 10 << 20).unwrap();
        charge.resize("a body", 30 << 20).unwrap();
        let error = charge.grow("a path", 3 << 20).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("host memory budget of 32 MiB exceeded by plugin p: a path"),
            "{error}"
        );
        // A failed resize leaves the charge as it was.
        assert_eq!((charge.bytes(), budget.used()), (30 << 20, 30 << 20));
        charge.resize("a path", 1 << 20).unwrap();
        assert_eq!(budget.used(), 1 << 20);
        drop(charge);
        assert_eq!(budget.used(), 0);
    }
}
