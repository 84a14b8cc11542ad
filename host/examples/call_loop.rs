//! The webhook path without sockets: loads each plugin as the host does and
//! hands it a signed GitHub push delivery (a new delivery id each time) in a loop,
//! every call in a fresh instance, two ways:
//! - `call`: `LoadedPlugin::handle_webhook` on hookhost's engines and instance
//!   pool, the plugin call alone;
//! - `router`: the same delivery as an HTTP request through the host's whole
//!   router (`Host::app`: the admin guard, containment, the webhook route, the
//!   outcome checks, metrics, ingest) over a store that keeps nothing.
//!
//! For each it prints the calls per second and the process's CPU time per call,
//! so that what a call costs can be told apart from what the router adds and from
//! what HTTP and the store add (`scripts/bench-webhooks`), and profiled without
//! them (`HOOKHOST_PERF_MAP=1 perf record -g`).
//!
//!     cargo run --release --example call_loop -- [--seconds 5] [--tasks 2]
//!         [--rounds 3] [--secret bench-secret] ID=PLUGIN.wasm ...
//!
//! `--tasks` calls run at once on a runtime with one worker per CPU, as in the
//! host. Runs take turns, one round each, so that they share the machine's state
//! alike; each line is one run, and the last lines give the medians.

#[path = "support/delivery.rs"]
mod delivery;
#[path = "support/null_store.rs"]
mod null_store;
#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use axum::body::Body;
use hookhost::config::{Config, PluginConfig};
use hookhost::plugins::bindings::WebhookRequest;
use hookhost::plugins::loaded::{content_sha256, LoadedPlugin};
use hookhost::plugins::runtime::Runtime;
use hookhost::store::backend::Stores;
use hookhost::Host;
use null_store::NullStore;
use tower::ServiceExt;

// The hookhost binary's allocator (host/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    seconds: u64,
    tasks: usize,
    rounds: usize,
    secret: String,
    plugins: Vec<(String, String)>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        seconds: 5,
        tasks: 2,
        rounds: 3,
        secret: "bench-secret".into(),
        plugins: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => options.seconds = value("--seconds")?.parse()?,
            "--tasks" => options.tasks = value("--tasks")?.parse()?,
            "--rounds" => options.rounds = value("--rounds")?.parse()?,
            "--secret" => options.secret = value("--secret")?,
            plugin => {
                let (id, file) = plugin
                    .split_once('=')
                    .with_context(|| format!("expected ID=PLUGIN.wasm, got {plugin:?}"))?;
                options.plugins.push((id.to_string(), file.to_string()));
            }
        }
    }
    ensure!(
        !options.plugins.is_empty(),
        "name at least one ID=PLUGIN.wasm"
    );
    ensure!(
        options.tasks > 0 && options.rounds > 0,
        "--tasks and --rounds must be > 0"
    );
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = options()?;
    let runtime = Runtime::new(None)?;
    let config = PluginConfig {
        values: BTreeMap::from([("secret".to_string(), options.secret.clone())]),
        ..PluginConfig::default()
    };
    let body = delivery::push_body();
    let signature = delivery::github_signature(&options.secret, &body);
    let mut runs = Vec::new();
    // The hosts behind the router runs, and the directories they serve from,
    // kept until the end: dropping a `Host` stops its background work.
    let mut hosts = Vec::new();
    for (id, file) in &options.plugins {
        let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
        let sha256 = content_sha256(&bytes);
        let plugin = LoadedPlugin::load(&runtime, id, bytes, sha256, &config)
            .await
            .with_context(|| format!("loading {file}"))?;
        let delivery = Delivery {
            body: body.clone(),
            signature: signature.clone(),
        };
        runs.push((
            format!("{id} ({file}), call"),
            Target::Call(Arc::new(plugin), id.clone()),
            delivery.clone(),
        ));
        let (host, dir) = host_over_nothing(id, file, &config).await?;
        runs.push((
            format!("{id} ({file}), router"),
            Target::Router(host.app(), id.clone()),
            delivery,
        ));
        hosts.push((host, dir));
    }
    let seconds = Duration::from_secs(options.seconds);

    println!(
        "# {} tasks, {} s per run after a 1 s warm-up, {} rounds",
        options.tasks, options.seconds, options.rounds
    );
    let mut cpu_per_call: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for _ in 0..options.rounds {
        for (label, target, delivery) in &runs {
            run(target, delivery, options.tasks, Duration::from_secs(1)).await?;
            let cpu_before = process_cpu_seconds()?;
            let started = Instant::now();
            let calls = run(target, delivery, options.tasks, seconds).await?;
            let wall = started.elapsed().as_secs_f64();
            let cpu = process_cpu_seconds()? - cpu_before;
            let per_call = cpu / calls as f64 * 1e6;
            println!(
                "{label}: {:.0} calls/s, {per_call:.1} us of CPU per call",
                calls as f64 / wall
            );
            cpu_per_call.entry(label).or_default().push(per_call);
        }
    }
    for (label, mut values) in cpu_per_call {
        values.sort_by(f64::total_cmp);
        println!(
            "{label}: median {:.1} us of CPU per call [{:.1}-{:.1}]",
            values[values.len() / 2],
            values[0],
            values[values.len() - 1]
        );
    }
    Ok(())
}

/// A host serving only `file` as plugin `id`, over a store that keeps nothing;
/// the directory it runs in lives as long as the returned guard.
async fn host_over_nothing(
    id: &str,
    file: &str,
    plugin: &PluginConfig,
) -> Result<(Host, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::load(None, Default::default(), |_| None)?;
    config.data_dir = dir.path().join("data");
    config.plugins_dir = dir.path().join("plugins");
    std::fs::create_dir_all(&config.plugins_dir)?;
    std::fs::copy(file, config.plugins_dir.join(format!("{id}.wasm")))
        .with_context(|| format!("copying {file}"))?;
    config.plugins.insert(id.to_string(), plugin.clone());
    let stores = Stores {
        events: Arc::new(NullStore),
        components: None,
    };
    let host = Host::with_stores(&config, stores).await?;
    host.check_loaded(id)
        .with_context(|| format!("loading {file} into a host"))?;
    Ok((host, dir))
}

/// Where a run sends its deliveries.
#[derive(Clone)]
enum Target {
    /// Straight to the plugin, loaded as plugin `id`.
    Call(Arc<LoadedPlugin>, String),
    /// Through a host's router, to `/hooks/<id>`.
    Router(axum::Router, String),
}

/// One signed delivery; each call gets it with its own delivery id.
#[derive(Clone)]
struct Delivery {
    body: Vec<u8>,
    signature: String,
}

impl Delivery {
    /// The headers GitHub would send, as the webhook route gets them.
    fn headers(&self, delivery: u64) -> Vec<(String, String)> {
        let header = |name: &str, value: String| (name.to_string(), value);
        vec![
            header("host", "127.0.0.1".into()),
            header("content-type", "application/json".into()),
            header("content-length", self.body.len().to_string()),
            header("x-github-event", "push".into()),
            header("x-github-delivery", format!("call-loop-{delivery}")),
            header("x-hub-signature-256", self.signature.clone()),
        ]
    }

    /// The request the webhook route would hand plugin `id`.
    fn for_plugin(&self, id: &str, delivery: u64) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            url: format!("http://127.0.0.1/hooks/{id}"),
            headers: self.headers(delivery),
            body: self.body.clone(),
        }
    }

    /// The HTTP request a provider would send to `/hooks/<id>`.
    fn for_router(&self, id: &str, delivery: u64) -> Result<axum::http::Request<Body>> {
        let mut request = axum::http::Request::post(format!("/hooks/{id}"));
        for (name, value) in self.headers(delivery) {
            request = request.header(name, value);
        }
        Ok(request.body(Body::from(self.body.clone()))?)
    }

    /// Sends delivery number `delivery` to `target`; the answer's status.
    async fn send(&self, target: &Target, delivery: u64) -> Result<u16> {
        match target {
            Target::Call(plugin, id) => {
                match plugin
                    .handle_webhook(Arc::new(self.for_plugin(id, delivery)))
                    .await
                {
                    Ok(Ok(outcome)) => Ok(outcome.response.status),
                    Ok(Err(error)) => bail!("the plugin refused the delivery: {error:?}"),
                    Err(error) => bail!("the call failed: {error}"),
                }
            }
            Target::Router(app, id) => {
                let response = app.clone().oneshot(self.for_router(id, delivery)?).await?;
                let status = response.status().as_u16();
                axum::body::to_bytes(response.into_body(), usize::MAX).await?;
                Ok(status)
            }
        }
    }
}

/// Sends deliveries to `target` from `tasks` tasks at once for `duration`;
/// returns how many were accepted. Any other answer stops the run with an error.
async fn run(
    target: &Target,
    delivery: &Delivery,
    tasks: usize,
    duration: Duration,
) -> Result<u64> {
    static DELIVERIES: AtomicU64 = AtomicU64::new(0);
    let deadline = Instant::now() + duration;
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (target, delivery) = (target.clone(), delivery.clone());
        running.spawn(async move {
            let mut calls = 0u64;
            while Instant::now() < deadline {
                let number = DELIVERIES.fetch_add(1, Ordering::Relaxed);
                match delivery.send(&target, number).await? {
                    200 => calls += 1,
                    status => bail!("the delivery was answered {status}"),
                }
            }
            Ok(calls)
        });
    }
    let mut calls = 0;
    while let Some(done) = running.join_next().await {
        calls += done.context("a sending task panicked")??;
    }
    Ok(calls)
}

/// User plus system CPU seconds of this process so far.
fn process_cpu_seconds() -> Result<f64> {
    Ok(proc_stat::cpu_ticks("self")? as f64 / 100.0)
}
