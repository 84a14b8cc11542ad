//! The `hookhost` command line: parses arguments and hands over to the library
//! (`serve`), to `check` (validate a component), to `new` (scaffold a plugin), or to
//! `cli` (`events`, `plugins`, `deploy`, `undeploy`: ask a running host).

mod check;
mod cli;
mod new;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hookhost::config::{Config, Overrides};
use tracing_subscriber::EnvFilter;

// Every webhook allocates and frees a few hundred small buffers (the request's
// headers and body, the call's store and WASI context, the outcome, the store's
// record); mimalloc serves them for less CPU than glibc's malloc, and without its
// consolidation passes (BENCHMARKS.md). Host memory a plugin can make the host hold
// is bounded by `plugins::host_memory`, whichever allocator serves it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hookhost",
    version,
    about = "Webhooks and polls into sandboxed WebAssembly plugins"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "HOOKHOST_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve webhooks and the API with the plugins in the plugins directory.
    Serve {
        /// TOML config file. Defaults to ./hookhost.toml when that file exists.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, such as 127.0.0.1:8080 (port 0 picks a free one).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve /api, the dashboard and /metrics on this address instead, such as
        /// 127.0.0.1:8081; --listen then serves only /hooks and /healthz.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Directory of compiled plugins, `<id>.wasm`.
        #[arg(long)]
        plugins: Option<PathBuf>,
        /// Directory for hookhost's own data.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Serve /api and the dashboard without an admin token even on a non-loopback
        /// address (only when something in front of hookhost guards them).
        #[arg(long)]
        allow_unauthenticated_admin: bool,
        /// PostgreSQL shared by every node of a fleet,
        /// postgres://user:pass@host:port/db[?sslmode=verify-full&sslrootcert=FILE]
        /// or key=value pairs (wins over the config's `database`, which keeps the
        /// password out of the process list); without either, events are kept in
        /// SQLite in the data directory.
        #[arg(long)]
        database: Option<String>,
    },
    /// Check that a component implements the plugin world and print its manifest;
    /// exits non-zero and says what does not match otherwise.
    Check {
        /// The compiled plugin, such as plugins/github.wasm.
        file: PathBuf,
    },
    /// Create a plugin project that builds with one command (`./build.sh`).
    New {
        /// The plugin id: its URL (/hooks/<id>), config table and file name.
        id: String,
        /// The language of the project.
        #[arg(long, value_enum)]
        lang: new::Lang,
        /// Where to create the project; defaults to ./<id>.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Stored events of a running host: list, show one, replay one.
    #[command(after_help = cli::EXIT_CODES)]
    Events {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::EventsCommand,
    },
    /// Handler deliveries of a running host: discard a dead letter.
    #[command(after_help = cli::EXIT_CODES)]
    Deliveries {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::DeliveriesCommand,
    },
    /// Plugins of a running host.
    #[command(after_help = cli::EXIT_CODES)]
    Plugins {
        #[command(flatten)]
        remote: cli::Remote,
        #[command(subcommand)]
        command: cli::PluginsCommand,
    },
    /// Deploy a component to a running host: it is checked as hot reload checks it
    /// and becomes the plugin's current version (on every node of a fleet). With
    /// `--rollback ID` instead of a file, undo plugin ID's last deploy.
    #[command(after_help = cli::EXIT_CODES)]
    Deploy {
        /// The compiled plugin, such as plugins/github.wasm.
        #[arg(required_unless_present = "rollback")]
        file: Option<PathBuf>,
        /// The plugin id to deploy it as; defaults to the file name without `.wasm`.
        #[arg(long)]
        id: Option<String>,
        /// Make the version of plugin ID before its last deploy current again, on
        /// every node (needs a fleet on PostgreSQL, which keeps the last 5 versions).
        #[arg(long, value_name = "ID", conflicts_with_all = ["file", "id"])]
        rollback: Option<String>,
        #[command(flatten)]
        remote: cli::Remote,
    },
    /// Undeploy a plugin from a running host: its file is deleted and it is
    /// unloaded (on every node of a fleet, including nodes that start later).
    #[command(after_help = cli::EXIT_CODES)]
    Undeploy {
        /// The plugin id, such as github.
        id: String,
        #[command(flatten)]
        remote: cli::Remote,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve {
            config,
            listen,
            admin_listen,
            plugins,
            data,
            allow_unauthenticated_admin,
            database,
        } => serve(
            config,
            Overrides {
                listen,
                admin_listen,
                plugins_dir: plugins,
                data_dir: data,
                allow_unauthenticated_admin,
                database,
            },
        ),
        Command::Check { file } => {
            // One line naming the plugin and every cause, without anyhow's
            // backtrace: this is a user-facing verdict, not a crash.
            if let Err(error) = check::run(&file) {
                eprintln!("error: {error:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::New { id, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&id));
            new::run(&id, lang, &dir)
        }
        Command::Events { remote, command } => exit_on_error(cli::events(&remote, command)),
        Command::Deliveries { remote, command } => exit_on_error(cli::deliveries(&remote, command)),
        Command::Plugins { remote, command } => exit_on_error(cli::plugins(&remote, command)),
        Command::Deploy {
            file,
            id,
            rollback,
            remote,
        } => exit_on_error(match (rollback, file) {
            (Some(rollback), _) => cli::rollback(&remote, &rollback),
            (None, Some(file)) => cli::deploy(&remote, &file, id),
            (None, None) => unreachable!("clap requires FILE without --rollback"),
        }),
        Command::Undeploy { id, remote } => exit_on_error(cli::undeploy(&remote, &id)),
    }
}

/// Ends the process with the exit code scripts rely on (see `cli::EXIT_CODES`).
fn exit_on_error(result: Result<(), cli::CliError>) -> Result<()> {
    if let Err(error) = result {
        eprintln!("error: {error}");
        std::process::exit(error.exit_code());
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(config_path: Option<PathBuf>, overrides: Overrides) -> Result<()> {
    let config_path = config_path.or_else(|| {
        let default = PathBuf::from("hookhost.toml");
        default.is_file().then_some(default)
    });
    let config = Config::load(config_path.as_deref(), overrides, |name| {
        std::env::var(name).ok()
    })?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = bind(config.listen).await?;
        let address = listener.local_addr().context("reading the bound address")?;
        let admin_listener = match config.admin_listen {
            Some(admin) => Some(bind(admin).await?),
            None => None,
        };
        let admin_address = admin_listener
            .as_ref()
            .map(|listener| {
                listener
                    .local_addr()
                    .context("reading the bound admin address")
            })
            .transpose()?;
        tracing::info!(
            %address,
            admin_address = admin_address.map(|a| a.to_string()).unwrap_or_default(),
            plugins_dir = %config.plugins_dir.display(),
            "hookhost starting"
        );
        // Caught from here on, so that a SIGTERM right after `listening on` (or
        // during start-up) is a graceful shutdown once serving begins, not the
        // default "terminate at once".
        let shutdown = shutdown_signal()?;
        let host = hookhost::Host::start(&config).await?;
        // Scripts and tests that start hookhost on port 0 wait for the `listening on`
        // line; the admin line comes first, so that it is known once that one is read.
        if let Some(admin_address) = admin_address {
            println!("admin listening on http://{admin_address}");
        }
        println!("listening on http://{address}");
        let listeners = hookhost::Listeners {
            main: listener,
            admin: admin_listener,
        };
        let result = host.serve(listeners, shutdown).await;
        tracing::info!("hookhost stopped");
        result
    })
}

async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))
}

/// Installs the SIGINT and SIGTERM handlers now (a lazy future would install them
/// only when first polled, leaving a window in which a signal kills the process)
/// and returns a future that resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down");
    })
}
