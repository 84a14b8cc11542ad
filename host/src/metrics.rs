//! What the host counts, and `/metrics`, their Prometheus (OpenMetrics) text form.
//!
//! Every metric is recorded here through one small method per thing that happened
//! (`webhook_finished`, `call_failed`, `poll_finished`, ...), so call sites stay one
//! line and the names, labels and buckets live in one place. Labels are bounded:
//! `plugin` is a loaded plugin's id (requests for unknown ids are not counted), the
//! others are fixed words or HTTP status codes.
//!
//! `prometheus-client` (the Prometheus project's own Rust client) rather than the
//! `metrics` facade: it keeps a registry value instead of a process-global recorder,
//! so the host owns its metrics like any other state, and it adds three small crates.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of `/metrics`; Prometheus negotiates and parses it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds: from a fast wasm call (~0.5 ms) through a group
/// commit's fsync to the 10 s default call deadline and beyond.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    plugin: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    plugin: String,
    call: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    plugin: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostCloseLabels {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WhatLabels {
    what: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The host's metrics. One per host, shared by `Arc`; recording takes `&self`.
pub struct Metrics {
    registry: Registry,
    webhook_requests: Family<StatusLabels, Counter>,
    webhook_duration: HistogramFamily<PluginLabels>,
    call_duration: HistogramFamily<CallLabels>,
    call_failures: Family<FailureLabels, Counter>,
    instances_in_use: Family<PluginLabels, Gauge>,
    polls: Family<OutcomeLabels, Counter>,
    reloads: Family<OutcomeLabels, Counter>,
    deliveries: Family<OutcomeLabels, Counter>,
    outbound_refused: Family<ReasonLabels, Counter>,
    events_refused: Family<FailureLabels, Counter>,
    connections_open: Family<ListenerLabels, Gauge>,
    connections_waited: Family<ListenerLabels, Counter>,
    connections_closed_by_host: Family<HostCloseLabels, Counter>,
    retention_purged: Family<WhatLabels, Counter>,
}

/// A fieldless enum whose variants are the values of one label, each spelled once
/// here: `label()` gives the word a metric records.
macro_rules! label_values {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$variant_meta:meta])* $variant:ident => $label:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }
    };
}

label_values! {
    /// Which plugin export a call went to.
    pub enum Call {
        Describe => "describe",
        Webhook => "handle_webhook",
        Poll => "poll",
        OnEvent => "on_event",
    }
}

label_values! {
    /// Why a plugin call gave no answer.
    pub enum CallFailure {
        Trap => "trap",
        Timeout => "timeout",
        /// A trap because the call went over its host memory budget.
        MemoryBudget => "memory_budget",
        /// No instance: the host's instance pool was exhausted (503).
        PoolExhausted => "pool_exhausted",
    }
}

label_values! {
    /// Why the host refused the events a plugin call returned (none of them stored).
    pub enum Refusal {
        /// An event's kind is outside the manifest's `emits`.
        UndeclaredKind => "undeclared_kind",
    }
}

label_values! {
    /// What became of a reload of one plugin file.
    pub enum Reload {
        Loaded => "loaded",
        Failed => "failed",
        Unloaded => "unloaded",
    }
}

label_values! {
    /// Why a plugin's outbound HTTP request was refused (see `outbound`).
    pub enum OutboundRefusal {
        /// Its host and port (and scheme) are not in `allowed_hosts`.
        NotAllowed => "not_allowed",
        /// Its host is allowed, but every address it resolved to is not public and not
        /// listed itself.
        AddressProhibited => "address_prohibited",
    }
}

label_values! {
    /// What became of one delivery attempt to a handler plugin.
    pub enum Delivery {
        Delivered => "delivered",
        /// Failed and will be retried.
        Failed => "failed",
        /// Failed for the last time: dead-lettered.
        Dead => "dead",
    }
}

/// What the retention purge deleted.
#[derive(Debug, Clone, Copy)]
pub enum Purged {
    Events,
    /// Delivered deliveries, with their events.
    Deliveries,
    DeadLetters,
    Requests,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookhost");
        let metrics = Metrics {
            webhook_requests: Family::default(),
            webhook_duration: Family::new_with_constructor(latency_histogram),
            call_duration: Family::new_with_constructor(latency_histogram),
            call_failures: Family::default(),
            instances_in_use: Family::default(),
            polls: Family::default(),
            reloads: Family::default(),
            deliveries: Family::default(),
            outbound_refused: Family::default(),
            events_refused: Family::default(),
            connections_open: Family::default(),
            connections_waited: Family::default(),
            connections_closed_by_host: Family::default(),
            retention_purged: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "webhook_requests",
            "Webhook requests answered, by plugin and HTTP status",
            metrics.webhook_requests.clone(),
        );
        registry.register_with_unit(
            "webhook_request_duration",
            "Time from a webhook's arrival to its answer, including persisting its events",
            Unit::Seconds,
            metrics.webhook_duration.clone(),
        );
        registry.register_with_unit(
            "plugin_call_duration",
            "Time spent in one plugin call (fresh instance plus the export), by export",
            Unit::Seconds,
            metrics.call_duration.clone(),
        );
        registry.register(
            "plugin_call_failures",
            "Plugin calls that trapped (reason trap, or memory_budget when over the host memory budget), ran past their deadline, or got no instance (pool_exhausted)",
            metrics.call_failures.clone(),
        );
        registry.register(
            "plugin_instances_in_use",
            "Plugin instances running a call right now",
            metrics.instances_in_use.clone(),
        );
        registry.register(
            "polls",
            "Poll calls, by whether the plugin answered with events (ok) or failed (error)",
            metrics.polls.clone(),
        );
        registry.register(
            "reloads",
            "Plugin file changes applied: loaded, failed (the old version keeps serving), unloaded",
            metrics.reloads.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts to handler plugins: delivered, failed (will retry), dead (dead-lettered)",
            metrics.deliveries.clone(),
        );
        registry.register(
            "outbound_requests_refused",
            "Plugins' outbound HTTP requests refused before connecting: not_allowed (host or port \
             not in allowed_hosts) or address_prohibited (resolved only to addresses that are \
             not public and not listed)",
            metrics.outbound_refused.clone(),
        );
        registry.register(
            "events_refused",
            "Plugin calls whose events were all refused and nothing of them stored, by export and reason (undeclared_kind: a kind outside the manifest's emits)",
            metrics.events_refused.clone(),
        );
        registry.register(
            "connections_open",
            "HTTP connections open now, by listener (at most max_connections each)",
            metrics.connections_open.clone(),
        );
        registry.register(
            "connections_waited",
            "Connections accepted while max_connections were open, which waited for a slot",
            metrics.connections_waited.clone(),
        );
        registry.register(
            "connections_closed_by_host",
            "Connections the host closed: idle for the idle timeout (idle_timeout), idle \
             when a new one needed the slot at the cap (evicted), or a peer that took none of \
             a response for the send timeout (send_timeout)",
            metrics.connections_closed_by_host.clone(),
        );
        registry.register(
            "retention_purged",
            "Rows the retention purge deleted: events (past retention, every delivery \
             delivered), deliveries (the delivered ones of those events), dead_letters (past \
             dead_letter_retention) and requests (past retention, no stored event left)",
            metrics.retention_purged.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition of everything recorded so far.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    pub fn webhook_finished(&self, plugin: &str, status: u16, took: Duration) {
        let plugin = plugin.to_string();
        self.webhook_duration
            .get_or_create(&PluginLabels {
                plugin: plugin.clone(),
            })
            .observe(took.as_secs_f64());
        self.webhook_requests
            .get_or_create(&StatusLabels { plugin, status })
            .inc();
    }

    /// Counts one instance of `plugin` as in use until the guard is dropped, which
    /// also records how long the call took. Dropping covers every way a call ends,
    /// including its future being cancelled by a deadline or a closed connection.
    pub fn call_started(&self, plugin: &str, call: Call) -> CallGuard {
        let in_use = self.instances_in_use.get_or_create_owned(&PluginLabels {
            plugin: plugin.to_string(),
        });
        in_use.inc();
        CallGuard {
            in_use,
            duration: self.call_duration.get_or_create_owned(&CallLabels {
                plugin: plugin.to_string(),
                call: call.label(),
            }),
            started: std::time::Instant::now(),
        }
    }

    pub fn call_failed(&self, plugin: &str, call: Call, failure: CallFailure) {
        self.count_failure(&self.call_failures, plugin, call, failure.label());
    }

    /// One poll of `plugin` ended: `ok` when it answered with an outcome, not an
    /// error, trap or timeout.
    pub fn poll_finished(&self, plugin: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.count(&self.polls, plugin, outcome);
    }

    pub fn reloaded(&self, plugin: &str, reload: Reload) {
        self.count(&self.reloads, plugin, reload.label());
    }

    pub fn delivery_finished(&self, plugin: &str, delivery: Delivery) {
        self.count(&self.deliveries, plugin, delivery.label());
    }

    pub fn outbound_refused(&self, plugin: &str, refusal: OutboundRefusal) {
        let labels = ReasonLabels {
            plugin: plugin.to_string(),
            reason: refusal.label(),
        };
        self.outbound_refused.get_or_create(&labels).inc();
    }

    /// The host refused every event of one `call` of `plugin`.
    pub fn events_refused(&self, plugin: &str, call: Call, refusal: Refusal) {
        self.count_failure(&self.events_refused, plugin, call, refusal.label());
    }

    /// The retention purge deleted `count` rows of `what`.
    pub fn purged(&self, what: Purged, count: u64) {
        let what = match what {
            Purged::Events => "events",
            Purged::Deliveries => "deliveries",
            Purged::DeadLetters => "dead_letters",
            Purged::Requests => "requests",
        };
        self.retention_purged
            .get_or_create(&WhatLabels { what })
            .inc_by(count);
    }

    /// The connection counters of one listener, named by its config key.
    pub fn connections(&self, listener: &'static str) -> ConnectionMetrics {
        let labels = ListenerLabels { listener };
        let closed = |reason| {
            self.connections_closed_by_host
                .get_or_create_owned(&HostCloseLabels { listener, reason })
        };
        ConnectionMetrics {
            open: self.connections_open.get_or_create_owned(&labels),
            waited: self.connections_waited.get_or_create_owned(&labels),
            closed_idle_timeout: closed("idle_timeout"),
            closed_evicted: closed("evicted"),
            closed_send_timeout: closed("send_timeout"),
        }
    }

    fn count_failure(
        &self,
        family: &Family<FailureLabels, Counter>,
        plugin: &str,
        call: Call,
        reason: &'static str,
    ) {
        let labels = FailureLabels {
            plugin: plugin.to_string(),
            call: call.label(),
            reason,
        };
        family.get_or_create(&labels).inc();
    }

    fn count(&self, family: &Family<OutcomeLabels, Counter>, plugin: &str, outcome: &'static str) {
        family
            .get_or_create(&OutcomeLabels {
                plugin: plugin.to_string(),
                outcome,
            })
            .inc();
    }
}

/// Why the host closed a connection.
#[derive(Debug, Clone, Copy)]
pub enum HostClose {
    /// Idle (no request in flight) for the idle timeout.
    IdleTimeout,
    /// Idle, and its slot was needed for a new connection at the cap.
    Evicted,
    /// The peer took none of a response for the send timeout.
    SendTimeout,
}

/// One listener's connection metrics; see `Metrics::connections`.
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: Gauge,
    waited: Counter,
    closed_idle_timeout: Counter,
    closed_evicted: Counter,
    closed_send_timeout: Counter,
}

impl ConnectionMetrics {
    pub fn opened(&self) {
        self.open.inc();
    }

    pub fn closed(&self) {
        self.open.dec();
    }

    pub fn waited_for_slot(&self) {
        self.waited.inc();
    }

    pub fn closed_by_host(&self, why: HostClose) {
        match why {
            HostClose::IdleTimeout => self.closed_idle_timeout.inc(),
            HostClose::Evicted => self.closed_evicted.inc(),
            HostClose::SendTimeout => self.closed_send_timeout.inc(),
        };
    }
}

/// A plugin call in progress; see `Metrics::call_started`.
pub struct CallGuard {
    in_use: Gauge,
    duration: Histogram,
    started: std::time::Instant,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.in_use.dec();
        self.duration.observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_exposition() {
        let metrics = Metrics::default();
        metrics.webhook_finished("github", 200, Duration::from_millis(3));
        metrics.webhook_finished("github", 200, Duration::from_millis(4));
        metrics.call_failed("faulty", Call::Webhook, CallFailure::Timeout);
        let guard = metrics.call_started("github", Call::Webhook);
        metrics.delivery_finished("handler", Delivery::Dead);
        metrics.outbound_refused("fetcher", OutboundRefusal::AddressProhibited);
        metrics.events_refused("evil", Call::Poll, Refusal::UndeclaredKind);
        let text = metrics.encode();
        assert!(
            text.contains(r#"hookhost_webhook_requests_total{plugin="github",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"hookhost_webhook_request_duration_seconds_bucket{le="0.005",plugin="github"} 2"#
            ) || text.contains(
                r#"hookhost_webhook_request_duration_seconds_bucket{plugin="github",le="0.005"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"hookhost_plugin_call_failures_total{plugin="faulty",call="handle_webhook",reason="timeout"} 1"#
        ), "{text}");
        assert!(
            text.contains(r#"hookhost_plugin_instances_in_use{plugin="github"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"hookhost_deliveries_total{plugin="handler",outcome="dead"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"hookhost_outbound_requests_refused_total{plugin="fetcher",reason="address_prohibited"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"hookhost_events_refused_total{plugin="evil",call="poll",reason="undeclared_kind"} 1"#
        ), "{text}");
        drop(guard);
        assert!(metrics
            .encode()
            .contains(r#"hookhost_plugin_instances_in_use{plugin="github"} 0"#));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
