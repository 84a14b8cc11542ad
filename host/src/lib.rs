//! hookhost: receives webhooks and runs polls, and routes each into a sandboxed
//! WebAssembly component that holds the provider-specific logic.
//!
//! # Layout
//!
//! - `config`: the TOML file, `${ENV}` expansion, defaults.
//! - `dev_secrets`: the shipped config's development secrets, refused off loopback.
//! - `node`: this process's node id among the nodes sharing a store.
//! - `bindings`: Rust types generated from `wit/` (the plugin contract).
//! - `runtime`: the one wasmtime engine, its linker and epoch ticker.
//! - `limits`: per-plugin resource limits and the host-wide caps on guests.
//! - `plugin_state`: per-call store data and the host side of plugin imports.
//! - `keyvalue`: plugins' `state` import: per-plugin keys, limits, poll staging.
//! - `guest_output`: plugins' stdout/stderr into the log.
//! - `host_memory`: the per-call budget of host memory a plugin can make the host
//!   hold (charges, refunds, the error that traps the call).
//! - `http_budget`: the wasi:http functions that hold memory, wrapped to charge it.
//! - `outbound`: plugins' outgoing HTTP: allowlist, the check of the address
//!   connected to, timeouts, size cap.
//! - `plugin`: one loaded component; a fresh instance per call, with a deadline;
//!   outcomes held to the manifest's `emits`.
//! - `artifact_cache`: compiled components on disk, keyed by content and engine.
//! - `registry`: plugins by id, load errors, plugin-file discovery.
//! - `watcher`: plugins-directory events -> changed plugin ids.
//! - `reload`: the only registry writer; debounces changes, loads, swaps; writes
//!   deployed components into the plugins directory.
//! - `deploy`: `PUT /api/plugins/{id}`: validate a component, make it current.
//! - `deploy_sync`: on a fleet, each node's loop that loads what was deployed.
//! - `http_server`: the listener; connection cap, idle, header and body
//!   timeouts, header count and size limits.
//! - `connections`: one listener's open connections: the cap, which are idle,
//!   which to evict.
//! - `body_deadline`: the one deadline for reading every request's body.
//! - `server`: the axum router (`/hooks`, `/api/plugins`, `/healthz`, `/metrics`),
//!   split per listener when the admin has its own, and the webhook path.
//! - `plugin_boundary`: what crosses between plugins and the admin's origin:
//!   plugins' response headers, the admin's credentials in webhook requests.
//! - `request_origin`: where an admin request came from (site, host name, proxy).
//! - `health`: `/healthz`, which says up or down and logs why to the log only.
//! - `metrics`: what the host counts and its Prometheus text form.
//! - `api`: the event log's routes (`/api/events`, `/api/deliveries`).
//! - `error`: the JSON error shape every route answers with.
//! - `admin_auth`: the admin token (bearer header or dashboard session cookie)
//!   in front of everything but `/hooks`, `/healthz` and `/metrics`.
//! - `dashboard`: the page at `/`, embedded HTML/CSS/JS over `/api/*`.
//! - `live`: the broadcast of changes and `/api/stream` (server-sent events).
//! - `store`: the `EventStore` trait; `store::sqlite` is the embedded backend,
//!   `store::postgres` the one a fleet shares (`store::backend` picks one).
//! - `subscriptions`: event-kind patterns (manifests' `subscriptions` and `emits`).
//! - `dispatcher`: delivers stored events to subscribed plugins, with retries.
//! - `retention`: purges events past their retention.
//! - `outage`: logging a failing store once per outage, not once per retry.
//! - `poller`: one poll: cursor in, events, cursor and state saved together.
//! - `scheduler`: poll timers (interval, jitter, backoff), following reloads.
//! - `poll_leases`: which node polls each plugin; the keeper that renews leases.
//! - `poll_api`: `POST /api/plugins/{id}/poll`.
//!
//! Data flows one way: HTTP request -> `server` -> `registry` lookup -> `plugin`
//! call -> `store` (committed) -> response; `store` queue -> `dispatcher` ->
//! handler `plugin` -> `store`; `scheduler` timer -> `poller` -> `plugin` poll ->
//! `store` (events + cursor in one commit); plugins dir -> `watcher` -> `reload` ->
//! `registry` (whose changes re-time the `scheduler`); `PUT /api/plugins/{id}` ->
//! `deploy` -> (shared `ComponentStore` ->) `reload` -> plugins dir + `registry`;
//! shared `ComponentStore` -> `deploy_sync` -> `reload` on every node.
//! `server`, `api`, `dispatcher` and `reload` also publish what changed to `live`,
//! which only the dashboard's stream reads.

pub mod admin;
pub mod config;
pub mod deploy;
pub mod dispatch;
pub mod http;
pub mod ingress;
pub mod live;
pub mod metrics;
pub mod node;
pub mod outage;
pub mod plugins;
pub mod retention;
pub mod schedule;
pub mod server;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::admin::auth::AdminAuth;
use crate::config::Config;
use crate::deploy::reload::Reloader;
use crate::deploy::sync::DeploySync;
use crate::dispatch::Dispatcher;
use crate::live::LiveFeed;
use crate::node::NodeId;
use crate::plugins::registry::Registry;
use crate::plugins::runtime::Runtime;
use crate::schedule::{Scheduler, TimerTask};
use crate::server::AppState;
use crate::store::components::ComponentStore;

/// The event store's file in the data directory.
pub const STORE_FILE: &str = "events.sqlite3";

/// What `Host::serve` accepts connections on. A lone `TcpListener` converts into
/// one that serves everything.
pub struct Listeners {
    /// `listen`: webhooks, and the admin surface too when there is no `admin`.
    pub main: TcpListener,
    /// `admin_listen`: `/api/*`, the dashboard and `/metrics`, on an origin of their
    /// own; `main` then serves only `/hooks/*` and `/healthz`.
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(main: TcpListener) -> Listeners {
        Listeners { main, admin: None }
    }
}

/// A host with its plugins loaded, ready to serve.
pub struct Host {
    state: AppState,
    dispatcher: Dispatcher,
    timers: TimerTask,
    /// Loads what the fleet deployed; only with a shared component store.
    deploy_sync: Option<DeploySync>,
    retention: Duration,
    shutdown_timeout: Duration,
    max_connections: usize,
    /// Keeps the plugins directory watched; dropping it ends hot reload.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Host {
    /// Prepares the data directory, builds the engine, loads every plugin in the
    /// plugins directory and starts watching it. A plugin that fails to load is
    /// recorded and skipped; it never stops the others.
    pub async fn start(config: &Config) -> Result<Host> {
        let node = NodeId::generate();
        tracing::info!(node = %node, "node id");
        // `Config::load` refused them off loopback.
        config::dev_secrets::warn(&config.development_secrets);
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let stores = store::backend::open(
            config.database.as_deref(),
            &config.data_dir.join(STORE_FILE),
        )
        .await?;
        let store = stores.events;
        let admin = Arc::new(AdminAuth::from_config(config)?);
        let runtime =
            Runtime::new(Some(config.data_dir.join("cache")))?.with_state_store(store.clone());
        let metrics = runtime.metrics.clone();
        let registry = Arc::new(Registry::default());
        let live = LiveFeed::default();
        let reloader = Reloader::new(
            runtime,
            registry.clone(),
            Arc::new(config.clone()),
            live.clone(),
        );
        // Only a store that several nodes share keeps components; on SQLite a
        // deploy is a file in the plugins directory.
        let components: Option<Arc<dyn ComponentStore>> = stores.components;
        // Watch before the first scan, so that a file written during the scan is
        // not missed; reloading it twice is harmless (same content is skipped).
        let (changes_tx, changes_rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = match deploy::watcher::watch_plugins_dir(&config.plugins_dir, changes_tx) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!("{error:#}; plugins will not be reloaded until restart");
                None
            }
        };
        // The fleet's versions first, so that a new node never serves stale files.
        let mut deploy_sync = components
            .clone()
            .map(|components| DeploySync::new(components, reloader.clone()));
        if let Some(sync) = &mut deploy_sync {
            sync.sync_once().await;
        }
        reloader.load_all().await;
        for id in config.plugins.keys() {
            if registry.get(id).is_none() {
                tracing::warn!(plugin = %id, "config has [plugins.{id}] but no such plugin is loaded");
            }
        }
        tokio::spawn(reloader.clone().run(changes_rx));
        let wake_dispatcher = Arc::new(Notify::new());
        let (scheduler, timers) = Scheduler::new(
            config,
            registry.clone(),
            store.clone(),
            wake_dispatcher.clone(),
            node.clone(),
        );
        Ok(Host {
            timers,
            deploy_sync,
            dispatcher: Dispatcher::new(
                config,
                store.clone(),
                registry.clone(),
                wake_dispatcher.clone(),
                metrics.clone(),
                live.clone(),
            ),
            retention: config.retention,
            shutdown_timeout: config.shutdown_timeout,
            max_connections: config.max_connections,
            state: AppState {
                registry,
                max_body_bytes: config.max_body_bytes,
                store,
                wake_dispatcher,
                scheduler,
                metrics,
                admin,
                live,
                node,
                health_log: Default::default(),
                reloader,
                components,
            },
            _watcher: watcher,
        })
    }

    /// The HTTP routes over this host's state, for driving without a socket (the
    /// fuzz target in `host/fuzz`). Background delivery does not run until `serve`.
    pub fn app(&self) -> axum::Router {
        server::app(self.state.clone())
    }

    /// Serves HTTP on `listeners` and delivers events to handlers until `shutdown`
    /// resolves. Then it shuts down gracefully: it stops accepting connections on
    /// every listener, lets requests and deliveries in flight finish (together
    /// bounded by `shutdown_timeout`; whatever is still running then is abandoned: a
    /// provider retries an unanswered webhook, a delivery keeps its lease and is due
    /// again at the next start), stops the poll timers and releases this node's poll
    /// leases (so another node takes its plugins over at once), and closes the event
    /// store.
    pub async fn serve(
        self,
        listeners: impl Into<Listeners>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let listeners = listeners.into();
        let store = self.state.store.clone();
        let (stop_dispatcher, dispatcher_stopped) = tokio::sync::oneshot::channel::<()>();
        let dispatcher = tokio::spawn(self.dispatcher.run(async {
            let _ = dispatcher_stopped.await;
        }));
        let purge = tokio::spawn(retention::run(store.clone(), self.retention));
        let (stop_timers, timers_stopped) = tokio::sync::oneshot::channel::<()>();
        let timers = tokio::spawn(self.timers.run(async {
            let _ = timers_stopped.await;
        }));
        let mut background = AbortOnDrop(vec![purge]);
        if let Some(sync) = self.deploy_sync {
            background.0.push(tokio::spawn(sync.run()));
        }

        // The deadline starts when the signal arrives, not when serving ends. Open
        // `/api/stream` responses never finish by themselves; ending them is what lets
        // the graceful shutdown complete. One signal stops every listener.
        let (signalled, mut signal) = tokio::sync::oneshot::channel::<()>();
        let (stop_listeners, listeners_stopped) = tokio::sync::watch::channel(false);
        let live = self.state.live.clone();
        background.0.push(tokio::spawn(async move {
            shutdown.await;
            live.close();
            let _ = signalled.send(());
            let _ = stop_listeners.send(true);
        }));
        let stopped = move || {
            let mut stopped = listeners_stopped.clone();
            async move {
                // An error means the sender is gone, which also means stop.
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let server = serve_listeners(listeners, self.state, self.max_connections, stopped);
        tokio::pin!(server);
        let served_at_once = tokio::select! {
            Ok(()) = &mut signal => None,
            served = &mut server => Some(served),
        };
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        match served_at_once {
            // A server with nothing in flight drains within the very poll that
            // received the signal; that still takes the graceful path below
            // (leases released, store closed). Without a signal it failed.
            Some(served) if signal.try_recv().is_err() => {
                background.0.extend([dispatcher, timers]);
                return served.context("serving HTTP");
            }
            Some(served) => served.context("serving HTTP")?,
            None => match tokio::time::timeout_at(deadline, &mut server).await {
                Ok(served) => served.context("serving HTTP")?,
                Err(_) => tracing::warn!(
                    timeout = ?self.shutdown_timeout,
                    "requests still in flight at the shutdown deadline were abandoned"
                ),
            },
        }
        let _ = stop_dispatcher.send(());
        let dispatcher_abort = dispatcher.abort_handle();
        if tokio::time::timeout_at(deadline, dispatcher).await.is_err() {
            dispatcher_abort.abort();
            tracing::warn!(
                "deliveries still in flight at the shutdown deadline were abandoned; \
                 they are retried at the next start"
            );
        }
        // Stopping the timers releases the leases; it needs the store, so it comes
        // before closing it, and is bounded by the scheduler's own timeouts.
        let _ = stop_timers.send(());
        if let Err(error) = timers.await {
            tracing::warn!("the poll timers ended abnormally: {error}");
        }
        drop(background);
        store.close().await.context("closing the event store")
    }
}

/// Serves each listener its routes until `stopped()` resolves, then waits for
/// every one of them to drain.
async fn serve_listeners<F>(
    listeners: Listeners,
    state: AppState,
    max_connections: usize,
    stopped: impl Fn() -> F,
) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let port = |listener: &TcpListener| {
        listener
            .local_addr()
            .map(|address| address.port())
            .context("reading a listener's address")
    };
    // Each listener has its own cap, so that a flood of webhook connections cannot
    // take the admin's slots; `listener` is the config key, in metrics and logs.
    let limits = |listener| http::listener::ConnectionLimits {
        listener,
        max_connections,
        metrics: state.metrics.clone(),
    };
    let main_port = port(&listeners.main)?;
    let Some(admin) = listeners.admin else {
        let limits = limits("listen");
        let app = server::router(state, server::Surface::All, Some(main_port));
        return http::listener::serve(listeners.main, app, stopped(), limits).await;
    };
    let admin_port = port(&admin)?;
    let (main_limits, admin_limits) = (limits("listen"), limits("admin_listen"));
    let public = server::router(state.clone(), server::Surface::Webhooks, Some(main_port));
    let admin_app = server::router(state, server::Surface::Admin, Some(admin_port));
    tokio::try_join!(
        http::listener::serve(listeners.main, public, stopped(), main_limits),
        http::listener::serve(admin, admin_app, stopped(), admin_limits),
    )?;
    Ok(())
}

/// Aborts background tasks when `serve` returns.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
