//! `PUT /api/plugins/{id}`: deploys a component as plugin `id` without touching the
//! plugins directory by hand.
//!
//! The body is the component. It is loaded as a reload would load it; if that
//! fails the answer is 400 with the reason and nothing changes (no file written,
//! the running version keeps serving). Otherwise, with a shared component store
//! (a fleet on PostgreSQL) it is stored there first, for every node's
//! `deploy::sync` to pick up; then on this node it is written to
//! `<plugins_dir>/<id>.wasm` and swapped in before the answer, which is the
//! plugin's new `{id, name, version, sha256, loaded_at}`.
//!
//! `DELETE /api/plugins/{id}` undeploys: with a shared component store it leaves a
//! tombstone there first (every node's `deploy::sync` then unloads the plugin and
//! deletes its file, a node that starts later included), then deletes the file and
//! unloads the plugin on this node. 404 when neither knows the plugin.
//!
//! `POST /api/plugins/{id}/rollback` undoes the last deploy (or undeploy) fleet-wide:
//! the store's previous kept version becomes current, here at once and on the other
//! nodes at their next sync. It needs the shared store, which keeps the versions;
//! on one node (SQLite) the answer is 409 saying so: the plugins folder is the only
//! copy there, and the previous file is the operator's to deploy again.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::deploy::reload::Reloader;
use crate::http::body::read_body;
use crate::http::body_deadline::BodyDeadline;
use crate::http::error::ApiError;
use crate::plugins::id::{is_valid_plugin_id, not_a_plugin_id};
use crate::plugins::loaded::LoadedPlugin;
use crate::store::components::ComponentStore;
use crate::store::{now_ms, UnixMs};

/// The largest component a deploy accepts. Rust and C plugins are a few hundred
/// KiB, JavaScript ones ~10 MiB, Python ones (with the interpreter) 30-40 MiB; this
/// leaves room for those with big dependencies.
pub const MAX_COMPONENT_BYTES: usize = 128 * 1024 * 1024;

/// How long the upload of a component may take, instead of the listener's
/// `BODY_READ_TIMEOUT`; generous, since a large component over a slow link to a
/// remote host takes a while, and only an admin can send it (the admin check runs
/// before this handler).
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// What a deploy uses.
#[derive(Clone)]
pub struct Deploys {
    /// Validates the component and makes it current.
    pub reloader: Reloader,
    /// The component store a fleet shares (PostgreSQL); `None` on one node, where a
    /// deploy goes into the plugins directory only.
    pub components: Option<Arc<dyn ComponentStore>>,
}

pub fn routes<S: Clone + Send + Sync + 'static>(deploys: Deploys) -> Router<S> {
    Router::new()
        .route("/api/plugins/{id}", put(deploy).delete(undeploy))
        .route("/api/plugins/{id}/rollback", post(rollback))
        .with_state(deploys)
}

async fn deploy(
    State(state): State<Deploys>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    deadline: Option<Extension<BodyDeadline>>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(|_| bad_id("the plugin id is not valid UTF-8"))?;
    if !is_valid_plugin_id(&id) {
        return Err(bad_id(&not_a_plugin_id(&id)));
    }
    if let Some(Extension(deadline)) = deadline {
        deadline.allow(UPLOAD_TIMEOUT);
    }
    let bytes = read_body(body, &headers, MAX_COMPONENT_BYTES).await?;
    let plugin = state
        .reloader
        .validate(&id, bytes.to_vec())
        .await
        .map_err(|error| {
            tracing::warn!(plugin = %id, "deploy refused: {error:#}");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_component",
                format!("{error:#}"),
            )
        })?;

    let mut deployed_at = None;
    if let Some(components) = &state.components {
        let deployed = components
            .deploy(&id, bytes.to_vec(), now_ms())
            .await
            .map_err(|error| storage_error(&id, "deploy", error))?;
        deployed_at = Some(deployed.deployed_at);
    }
    make_current(&state, plugin, bytes, "deployed", deployed_at).await
}

async fn undeploy(
    State(state): State<Deploys>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = plugin_id(id)?;
    let present_here = state.reloader.is_present(&id);
    let mut fleet_wide = false;
    if let Some(components) = &state.components {
        fleet_wide = components
            .undeploy(&id, present_here, now_ms())
            .await
            .map_err(|error| storage_error(&id, "undeploy", error))?;
    }
    let removed_here = state.reloader.remove(&id).await.map_err(|error| {
        // With a shared store the tombstone already counts fleet-wide; this node's
        // deploy-sync task retries removing the file every tick.
        ApiError::internal(&format!("undeploying {id} on this node: {error:#}"))
    })?;
    if !fleet_wide && !removed_here {
        return Err(ApiError::not_found(format!("no plugin {id} is deployed")));
    }
    Ok(Json(json!({ "id": id, "undeployed": true })))
}

async fn rollback(
    State(state): State<Deploys>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = plugin_id(id)?;
    let Some(components) = &state.components else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "rollback_needs_fleet_store",
            "rollback needs the fleet's component store (PostgreSQL, `database`), which keeps \
             earlier versions; on one node, deploy the earlier file again with `hookhost deploy FILE`",
        ));
    };
    let current = components
        .rollback(&id, now_ms())
        .await
        .map_err(|error| storage_error(&id, "rollback", error))?;
    let Some(current) = current else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_earlier_version",
            format!("no earlier version of {id} is kept to roll back to"),
        ));
    };
    tracing::info!(plugin = %id, sha256 = %current.sha256, "rolled back");
    // From here the rollback counts fleet-wide; when this node cannot make the
    // version current now, its deploy-sync task retries (and records why).
    let bytes = components
        .component(&current.sha256)
        .await
        .with_context(|| format!("reading component {} of {id}", current.sha256))?
        .ok_or_else(|| {
            ApiError::internal(&format!(
                "rolled back {id}, but component {} is missing from the store",
                current.sha256
            ))
        })?;
    let plugin = state
        .reloader
        .validate(&id, bytes.clone())
        .await
        .map_err(|error| {
            ApiError::internal(&format!(
                "rolled back {id} fleet-wide, but this node cannot load the version: {error:#}"
            ))
        })?;
    let bytes = Bytes::from(bytes);
    let deployed_at = Some(current.deployed_at);
    make_current(&state, plugin, bytes, "rolled-back", deployed_at).await
}

/// Swaps the checked `plugin` in on this node and answers with its entry, and when
/// the fleet's store recorded the change, its time. `change` (`deployed`,
/// `rolled-back`) names the plugin in an error.
async fn make_current(
    state: &Deploys,
    plugin: LoadedPlugin,
    bytes: Bytes,
    change: &str,
    deployed_at: Option<UnixMs>,
) -> Result<Json<Value>, ApiError> {
    let id = plugin.id().to_string();
    let plugin = state
        .reloader
        .make_current(plugin, bytes)
        .await
        .map_err(|error| {
            // With a shared store the change already counts fleet-wide; this node's
            // deploy-sync task retries making it current every tick.
            ApiError::internal(&format!(
                "making the {change} plugin {id} current: {error:#}"
            ))
        })?;
    let mut answer = plugin_info(&plugin);
    if let Some(deployed_at) = deployed_at {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(deployed_at);
        answer["deployed_at"] = json!(humantime::format_rfc3339_millis(at).to_string());
    }
    Ok(Json(answer))
}

fn plugin_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = id.map_err(|_| bad_id("the plugin id is not valid UTF-8"))?;
    if !is_valid_plugin_id(&id) {
        return Err(bad_id(&not_a_plugin_id(&id)));
    }
    Ok(id)
}

/// 503: the shared store could not record `what`; nothing changed.
fn storage_error(id: &str, what: &str, error: anyhow::Error) -> ApiError {
    tracing::error!(plugin = %id, "{what}: {error:#}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage",
        format!("the component store could not record the {what}; nothing changed; retry later"),
    )
    .with_retry_after(5)
}

fn bad_id(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn plugin_info(plugin: &LoadedPlugin) -> Value {
    json!({
        "id": plugin.id(),
        "name": plugin.manifest.name,
        "version": plugin.manifest.version,
        "wit": plugin.wit.package(),
        "sha256": plugin.sha256,
        "loaded_at": humantime::format_rfc3339_millis(plugin.loaded_at).to_string(),
    })
}
