//! hookhost: receives webhooks and runs polls, and routes each into a sandboxed
//! WebAssembly component that holds the provider-specific logic.
//!
//! # Layout
//!
//! Modules import one way, top to bottom (the README's "Architecture" section has
//! the picture and the rules):
//!
//! - `app`: `AppState` (built once), the router that hands each route module its
//!   part of it, and `Host`: the wiring (`Host::start`, or `Host::with_stores` with
//!   stores of the caller's) and `serve`.
//! - `ingress`: `/hooks/*`: `webhook` (the route, and a plugin failure's HTTP
//!   answer) and `containment` (what crosses between plugins and the admin's
//!   origin).
//! - `admin`: everything else a listener serves: `auth` (the admin token, sessions)
//!   with `request_origin`, `events` (the event log, replay), `plugins` (the list),
//!   `deploy` (`PUT /api/plugins/{id}`), `poll` (`POST /api/plugins/{id}/poll`),
//!   `stream` (`/api/stream`), `health` (`/healthz`, `/metrics`), `dashboard`.
//! - `http`: under every route: `error` (the JSON error shape), `call_failure`
//!   (a plugin call that did not return, as HTTP), `body` and
//!   `body_deadline` (reading a body), `listener` and `connections` (accepting,
//!   limits, timeouts).
//! - `ingest`: the one path from a plugin's events to the store, for webhooks and
//!   polls: subscribers, persist, wake the dispatcher, publish to `live`.
//! - `schedule`: poll timers (`delay`, `status`), one poll (`poll`), which node
//!   polls what (`leases`).
//! - `dispatch`: delivers stored events to subscribed plugins, with retries.
//! - `deploy`: `watcher` (plugins-directory events), `reload` (loads, swaps, and
//!   writes deployed components into the plugins directory, removes undeployed
//!   ones), `sync` (a fleet's deploys, undeploys and rollbacks onto this node).
//! - `plugins`: `runtime` (the engine, linker, epoch ticker), `bindings` (types
//!   generated from `wit/`, one module per WIT version, and the enum over
//!   them), `loaded` (one loaded component; a fresh instance per call),
//!   `call_state` (wasmtime's per-call store data, and the imports' host side),
//!   `imports` (plugins' `state`, `crypto` and stdout/stderr), `registry`
//!   (plugins by id), `outcome` (checks on what a plugin returns),
//!   `plugin_error` (the one name for each way a plugin refuses a call), `id`
//!   (the plugin-id rule),
//!   `limits`, `host_memory` and `http_budget` (what a plugin may make the host
//!   hold), `outbound` (plugins' outgoing HTTP), `artifact_cache`, `subscriptions`.
//! - `config`: the TOML file, `${ENV}` expansion, `[plugins.<id>]`, the shipped
//!   development secrets, `public_url` (and the URL a provider addressed, from it
//!   or the request's `Host`).
//! - `live` (the broadcast of changes), `metrics`, `outage` (a failing store logged
//!   once per outage), `backoff` (the doubling wait), `node`, `retention`.
//! - `store`: narrow traits (`EventLog`, `DeliveryQueue`, `PollBook`,
//!   `StateStore`) gathered by `EventStore`; their logic written once in
//!   `store::sql`, over `store::sqlite` (the embedded backend) and
//!   `store::postgres` (the one a fleet shares), which hold only what differs
//!   (`store::backend` picks one); `store::components` holds a fleet's deployed
//!   components (current, tombstones, the last versions kept for rollback).
//!
//! Data flows one way: a webhook goes `ingress::webhook` -> `plugins` call ->
//! `plugins::outcome` -> `ingest` -> `store` (committed) -> response; a poll goes
//! `schedule` timer -> `schedule::poll` -> `plugins` call -> `ingest` -> `store`
//! (events + cursor in one commit); a delivery goes `store` queue -> `dispatch` ->
//! handler plugin -> `store`; a reload goes plugins dir -> `deploy::watcher` ->
//! `deploy::reload` -> `plugins::registry` (whose changes re-time `schedule`); a
//! deploy, undeploy or rollback goes `admin::deploy` -> (shared `ComponentStore`
//! ->) `deploy::reload`, and `deploy::sync` on every node. `ingest`, `admin::events`, `dispatch` and
//! `deploy::reload` publish what changed to `live`, which only `admin::stream`
//! reads.

pub mod admin;
pub mod app;
pub mod backoff;
pub mod config;
pub mod deploy;
pub mod dispatch;
pub mod http;
pub mod ingest;
pub mod ingress;
pub mod live;
pub mod metrics;
pub mod node;
pub mod outage;
pub mod plugins;
pub mod retention;
pub mod schedule;
pub mod store;

pub use app::{Host, Listeners, STORE_FILE};
