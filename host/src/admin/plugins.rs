//! `GET /api/plugins`: every plugin the registry knows, with its manifest, load
//! error and poll status. (Deploys and polls have their own modules: `deploy`,
//! `poll`.)

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::plugins::registry::Registry;
use crate::schedule::Scheduler;

/// What the plugin list reads.
#[derive(Clone)]
pub struct PluginsApi {
    pub registry: Arc<Registry>,
    /// Poll timers and status, shown beside each polling plugin.
    pub scheduler: Scheduler,
}

pub fn routes<S: Clone + Send + Sync + 'static>(api: PluginsApi) -> Router<S> {
    Router::new()
        .route("/api/plugins", get(list_plugins))
        .with_state(api)
}

async fn list_plugins(State(state): State<PluginsApi>) -> Json<Value> {
    let plugins: Vec<Value> = state
        .registry
        .snapshot()
        .into_iter()
        .map(|(id, entry)| {
            let mut item = json!({ "id": id, "status": if entry.failure.is_some() { "failed" } else { "ok" } });
            if let Some(plugin) = &entry.current {
                item["name"] = json!(plugin.manifest.name);
                item["version"] = json!(plugin.manifest.version);
                item["wit"] = json!(plugin.wit.package());
                item["description"] = json!(plugin.manifest.description);
                item["emits"] = json!(plugin.manifest.emits);
                item["poll_interval_seconds"] = json!(plugin.manifest.poll_interval_seconds);
                item["subscriptions"] = json!(plugin.manifest.subscriptions);
                item["sources"] = json!(plugin.sources);
                item["sha256"] = json!(plugin.sha256);
                item["memory_init"] = json!(plugin.memory_init.name());
                item["loaded_at"] = json!(humantime::format_rfc3339_millis(plugin.loaded_at).to_string());
            }
            if let Some(poll) = state.scheduler.status(&id) {
                item["poll"] = poll.to_json();
            }
            if let Some(failure) = &entry.failure {
                item["error"] = json!({
                    "message": failure.message,
                    "at": humantime::format_rfc3339_millis(failure.at).to_string(),
                });
            }
            item
        })
        .collect();
    Json(json!({ "plugins": plugins }))
}
