//! `GET /healthz`: whether this node can take webhooks now, for load balancers and
//! probes. It is open to anyone who can connect, so it says only that: the store's
//! reason (which names the database, and whatever its driver reports) goes to the
//! log, once per outage (`outage`), not into an answer for strangers nor into one
//! log line per probe.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::metrics::Metrics;
use crate::node::NodeId;
use crate::outage::Outage;
use crate::store::EventStore;

/// The longest `/healthz` waits for the store before calling it down.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/healthz` reads.
#[derive(Clone)]
pub struct Health {
    pub store: Arc<dyn EventStore>,
    /// Whether `/healthz` found the store failing, so that it logs why once per outage.
    pub health_log: Arc<HealthLog>,
    /// This process among the nodes sharing the store.
    pub node: NodeId,
}

/// `GET /healthz`.
pub fn routes<S: Clone + Send + Sync + 'static>(health: Health) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(health)
}

/// `GET /metrics`, in Prometheus' text format.
pub fn metrics_routes<S: Clone + Send + Sync + 'static>(metrics: Arc<Metrics>) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics)
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        metrics.encode(),
    )
}

/// What `/healthz` remembers between probes: whether the store is failing them,
/// so that an outage is logged once, with reminders, and its end too.
pub struct HealthLog {
    outage: Mutex<Outage>,
}

impl Default for HealthLog {
    fn default() -> Self {
        HealthLog {
            outage: Mutex::new(Outage::new("the /healthz database check")),
        }
    }
}

impl HealthLog {
    fn record(&self, health: &anyhow::Result<()>) {
        // A poisoned lock only means a panic while logging; the state is still usable.
        let mut outage = self
            .outage
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match health {
            Ok(()) => outage.succeeded(),
            Err(error) => outage.failed(error),
        }
    }
}

/// 200 `{"status": "ok", "node"}` while the store can take writes, else 503
/// `{"status": "degraded", "database": "down", "node"}`, so that a load balancer
/// sends webhooks elsewhere. `node` (`{hostname}-{pid}-{4 hex}`) stays: it is how
/// an operator behind a load balancer tells which node answered, and a host name
/// and a process id tell a stranger nothing they could use.
pub async fn healthz(State(state): State<Health>) -> Response {
    let health = tokio::time::timeout(HEALTH_TIMEOUT, state.store.health())
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the database did not answer within {HEALTH_TIMEOUT:?}"
            ))
        });
    state.health_log.record(&health);
    match health {
        Ok(()) => Json(json!({ "status": "ok", "node": state.node.as_str() })).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "degraded",
                "database": "down",
                "node": state.node.as_str(),
            })),
        )
            .into_response(),
    }
}
