//! The host put together: the state every route shares (`AppState`, built once),
//! the router that hands each route module its part of it, and `Host`, which
//! wires the stores, the engine, the registry, reload, the scheduler and the
//! dispatcher, and serves until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use axum::middleware::from_fn_with_state;
use axum::Router;

use crate::admin::auth::{AdminAuth, AdminGuard};
use crate::admin::deploy::Deploys;
use crate::admin::events::EventsApi;
use crate::admin::health::{Health, HealthLog};
use crate::admin::plugins::PluginsApi;
use crate::config::public_url::PublicUrl;
use crate::config::Config;
use crate::deploy::reload::Reloader;
use crate::deploy::sync::DeploySync;
use crate::dispatch::Dispatcher;
use crate::http::error::ApiError;
use crate::ingest::Ingest;
use crate::ingress::webhook::Webhooks;
use crate::live::LiveFeed;
use crate::metrics::Metrics;
use crate::node::NodeId;
use crate::plugins::registry::Registry;
use crate::plugins::runtime::Runtime;
use crate::schedule::{Scheduler, TimerTask};
use crate::store::backend::Stores;
use crate::store::components::ComponentStore;
use crate::store::EventStore;
use crate::{admin, config, deploy, http, ingress, retention, store};

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

/// The host's shared state, built once by `Host::with_stores`; each route module
/// gets only the parts it uses (`AppState::router`).
#[derive(Clone)]
pub(crate) struct AppState {
    pub registry: Arc<Registry>,
    pub max_body_bytes: usize,
    pub store: Arc<dyn EventStore>,
    /// Wakes the delivery dispatcher (its only waiter) when new events have
    /// subscribers or a delivery is re-queued.
    pub wake_dispatcher: Arc<Notify>,
    /// Poll timers and status; `/api/plugins` shows it, the poll route drives it.
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    /// Decides who may use everything but `/hooks`, `/healthz` and `/metrics`.
    pub admin: Arc<AdminAuth>,
    /// Where the webhook path and the API say what changed, for the dashboard.
    pub live: LiveFeed,
    /// This process among the nodes sharing the store (`/healthz` shows it).
    pub node: NodeId,
    /// Whether `/healthz` found the store failing, so that it logs why once per outage.
    pub health_log: Arc<HealthLog>,
    /// Loads and swaps plugins; `PUT /api/plugins/{id}` makes a deploy current with it.
    pub reloader: Reloader,
    /// The component store a fleet shares (PostgreSQL); `None` on one node, where a
    /// deploy goes into the plugins directory only.
    pub components: Option<Arc<dyn ComponentStore>>,
    /// The one path from a plugin's events to the store, for webhooks and polls.
    pub ingest: Ingest,
    /// `public_url`: the origin of each webhook request's `url`.
    pub public_url: Option<PublicUrl>,
}

/// Which of the host's routes one listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything, on the one listener there is without `admin_listen`.
    All,
    /// `listen` beside an `admin_listen`: only what providers and load balancers
    /// need, `/hooks/*` and `/healthz`; everything else is 404. `/metrics` is not
    /// here: it names every plugin and counts its traffic and failures, which is the
    /// operator's business, and the scraper is in the operator's network, where the
    /// admin listener is.
    Webhooks,
    /// `admin_listen`: everything but `/hooks/*`, so that no plugin's response is
    /// ever served from the admin's origin.
    Admin,
}

impl AppState {
    /// The routes of `surface`, for a listener on `port` (the open admin's `Host`
    /// check wants it; `None` accepts any port). Each module gets its part of the
    /// state.
    fn router(&self, surface: Surface, port: Option<u16>) -> Router {
        let hooks = ingress::webhook::routes(Webhooks {
            registry: self.registry.clone(),
            max_body_bytes: self.max_body_bytes,
            admin: self.admin.clone(),
            metrics: self.metrics.clone(),
            ingest: self.ingest.clone(),
            public_url: self.public_url.clone(),
        });
        let health = admin::health::routes(Health {
            store: self.store.clone(),
            health_log: self.health_log.clone(),
            node: self.node.clone(),
        });
        if surface == Surface::Webhooks {
            return hooks.merge(health).fallback(not_on_this_listener);
        }
        let admin_routes = Router::new()
            .merge(admin::health::metrics_routes(self.metrics.clone()))
            .merge(admin::plugins::routes(PluginsApi {
                registry: self.registry.clone(),
                scheduler: self.scheduler.clone(),
            }))
            .merge(admin::events::routes(EventsApi {
                store: self.store.clone(),
                registry: self.registry.clone(),
                admin: self.admin.clone(),
                wake_dispatcher: self.wake_dispatcher.clone(),
                live: self.live.clone(),
                public_url: self.public_url.clone(),
            }))
            .merge(admin::poll::routes(self.scheduler.clone()))
            .merge(admin::deploy::routes(Deploys {
                reloader: self.reloader.clone(),
                components: self.components.clone(),
            }))
            .merge(admin::stream::routes(self.live.clone()))
            .merge(admin::dashboard::routes(self.admin.is_required()))
            .merge(admin::auth::routes(self.admin.clone()))
            .merge(health);
        let routes = match surface {
            Surface::Admin => admin_routes,
            _ => admin_routes.merge(hooks),
        };
        let guard = AdminGuard {
            auth: self.admin.clone(),
            port,
        };
        // Outermost, so that it also guards paths no route matches.
        routes.layer(from_fn_with_state(guard, admin::auth::require_admin))
    }
}

/// The webhook listener's answer to everything but `/hooks/*` and `/healthz`. It
/// does not say where the admin surface is.
async fn not_on_this_listener() -> ApiError {
    ApiError::not_found("only /hooks/* and /healthz are served on this address")
}

/// A host with its plugins loaded, ready to serve.
pub struct Host {
    state: AppState,
    dispatcher: Dispatcher,
    timers: TimerTask,
    /// Loads what the fleet deployed; only with a shared component store.
    deploy_sync: Option<DeploySync>,
    retention: retention::Retention,
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
        create_data_dir(config)?;
        let stores = store::backend::open(
            config.database.as_deref(),
            &config.data_dir.join(STORE_FILE),
            config.write_queue,
        )
        .await?;
        Host::with_stores(config, stores).await
    }

    /// `start` with `stores` instead of the ones `config` names: the one place the
    /// host is wired together, for `start` and for tests and benchmarks that bring
    /// their own store (one that fails, one that keeps nothing, one tuned for a
    /// measurement).
    pub async fn with_stores(config: &Config, stores: Stores) -> Result<Host> {
        let node = NodeId::generate();
        tracing::info!(node = %node, "node id");
        // `Config::load` refused them off loopback.
        config::dev_secrets::warn(&config.development_secrets);
        create_data_dir(config)?;
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
        deploy::reload::remove_stale_deploy_files(&config.plugins_dir);
        // The fleet's versions first, so that a new node never serves stale files
        // nor a plugin the fleet undeployed.
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
        let ingest = Ingest::new(
            store.clone(),
            registry.clone(),
            wake_dispatcher.clone(),
            live.clone(),
        );
        let (scheduler, timers) = Scheduler::new(
            config,
            registry.clone(),
            store.clone(),
            ingest.clone(),
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
            retention: retention::Retention {
                events: config.retention,
                dead_letters: config.dead_letter_retention,
            },
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
                ingest,
                public_url: config.public_url.clone(),
            },
            _watcher: watcher,
        })
    }

    /// This process's id among the nodes sharing the store.
    pub fn node(&self) -> &NodeId {
        &self.state.node
    }

    /// `Ok` when plugin `id` is loaded, else why not: its load error, or that no
    /// such plugin file was found.
    pub fn check_loaded(&self, id: &str) -> Result<()> {
        if self.state.registry.get(id).is_some() {
            return Ok(());
        }
        let failure = self
            .state
            .registry
            .snapshot()
            .into_iter()
            .find(|(loaded, _)| loaded == id)
            .and_then(|(_, entry)| entry.failure);
        match failure {
            Some(failure) => anyhow::bail!("plugin {id} did not load: {}", failure.message),
            None => anyhow::bail!("no plugin {id} was found"),
        }
    }

    /// The HTTP routes over this host's state, for driving without a socket (the
    /// fuzz target in `host/fuzz`). Background delivery does not run until `serve`.
    pub fn app(&self) -> axum::Router {
        self.state.router(Surface::All, None)
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
        let purge = tokio::spawn(retention::run(
            store.clone(),
            self.retention,
            self.state.metrics.clone(),
        ));
        let (stop_timers, timers_stopped) = tokio::sync::oneshot::channel::<()>();
        let mut timer_task = self.timers;
        timer_task.set_timers().await;
        let timers = tokio::spawn(timer_task.run(async {
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
        let app = state.router(Surface::All, Some(main_port));
        return http::listener::serve(listeners.main, app, stopped(), limits).await;
    };
    let admin_port = port(&admin)?;
    let (main_limits, admin_limits) = (limits("listen"), limits("admin_listen"));
    let public = state.router(Surface::Webhooks, Some(main_port));
    let admin_app = state.router(Surface::Admin, Some(admin_port));
    tokio::try_join!(
        http::listener::serve(listeners.main, public, stopped(), main_limits),
        http::listener::serve(admin, admin_app, stopped(), admin_limits),
    )?;
    Ok(())
}

fn create_data_dir(config: &Config) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))
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
