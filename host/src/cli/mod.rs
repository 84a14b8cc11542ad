//! `hookhost events ...`, `hookhost deliveries ...`, `hookhost plugins ...`,
//! `hookhost deploy` and `hookhost undeploy`: commands that
//! talk to a running host's admin API and print tables for people or JSON for scripts.

mod client;
mod table;

use std::path::Path;

use clap::{Args, Subcommand};
use serde_json::Value;

use client::AdminClient;
pub use client::CliError;

/// Shown under `--help` of every command that talks to a running host.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the host could not be reached, or answered with an error
  2  usage error (bad arguments)
  3  not found (no such event, delivery or plugin)
  4  unauthorized (missing or wrong admin token)";

/// Where the host is and how to talk to it.
#[derive(Args, Debug)]
pub struct Remote {
    /// The host's base URL.
    #[arg(
        long,
        global = true,
        env = "HOOKHOST_URL",
        default_value_t = format!("http://{}", hookhost::config::DEFAULT_LISTEN)
    )]
    url: String,
    /// The host's admin token, sent as `Authorization: Bearer <token>`.
    #[arg(
        long,
        global = true,
        env = "HOOKHOST_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

impl Remote {
    /// A client for the host's admin API, with the token if one was given.
    fn client(&self) -> Result<AdminClient, CliError> {
        AdminClient::new(&self.url, self.token.clone())
    }

    /// Prints the API's `answer` as it is under `--json`, else as `human` puts it.
    fn print(&self, answer: &Value, human: impl FnOnce(&Value)) -> Result<(), CliError> {
        if self.json {
            return print_json(answer);
        }
        human(answer);
        Ok(())
    }
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// List stored events, newest first.
    #[command(after_help = EXIT_CODES)]
    List {
        /// Only events from this plugin.
        #[arg(long)]
        plugin: Option<String>,
        /// Only events of this kind; `github.*` matches a prefix.
        #[arg(long)]
        kind: Option<String>,
        /// Only events about this subject.
        #[arg(long)]
        subject: Option<String>,
        /// The next page: events stored before this id (the `next` of a page).
        #[arg(long)]
        after: Option<i64>,
        /// At most this many events (1-500; the host's default is 50).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one stored event with its payload, raw request and deliveries.
    #[command(after_help = EXIT_CODES)]
    Show {
        /// The event's id (the ID column of `events list`).
        id: u64,
    },
    /// Run an event's stored request through its plugin's current version and show
    /// what it does now. Nothing is stored or delivered.
    #[command(after_help = EXIT_CODES)]
    Replay {
        /// The event's id.
        id: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeliveriesCommand {
    /// Delete a dead letter for good: the handler will never get this event.
    /// Only a dead delivery can be discarded (see `events show` for an event's
    /// deliveries, or the dashboard); its event then goes with the next purge past
    /// `retention`.
    #[command(after_help = EXIT_CODES)]
    Discard {
        /// The delivery's id.
        id: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// List loaded plugins and plugins that failed to load, with the reason.
    #[command(after_help = EXIT_CODES)]
    List,
}

pub fn events(remote: &Remote, command: EventsCommand) -> Result<(), CliError> {
    let client = remote.client()?;
    match command {
        EventsCommand::List {
            plugin,
            kind,
            subject,
            after,
            limit,
        } => {
            let query: Vec<(&str, String)> = [
                ("plugin", plugin),
                ("kind", kind),
                ("subject", subject),
                ("after", after.map(|n| n.to_string())),
                ("limit", limit.map(|n| n.to_string())),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| (name, value)))
            .collect();
            let page = client.get("/api/events", &query)?;
            if remote.json {
                return print_json(&page);
            }
            let rows: Vec<Vec<String>> = items(&page, "events")?
                .iter()
                .map(|event| {
                    ["id", "received_at", "plugin", "kind", "subject", "event_id"]
                        .iter()
                        .map(|field| table::cell(&event[field]))
                        .collect()
                })
                .collect();
            table::print(
                &["ID", "RECEIVED", "PLUGIN", "KIND", "SUBJECT", "EVENT ID"],
                &rows,
            );
            if let Some(next) = page["next"].as_str() {
                eprintln!("more: add --after {next}");
            }
            Ok(())
        }
        EventsCommand::Show { id } => {
            let event = client.get(&format!("/api/events/{id}"), &[])?;
            remote.print(&event, print_event)
        }
        EventsCommand::Replay { id } => {
            let replay = client.post(&format!("/api/events/{id}/replay"))?;
            remote.print(&replay, |replay| print_replay(id, replay))
        }
    }
}

pub fn deliveries(remote: &Remote, command: DeliveriesCommand) -> Result<(), CliError> {
    let client = remote.client()?;
    match command {
        DeliveriesCommand::Discard { id } => {
            let discarded = client.delete(&format!("/api/deliveries/{id}"))?;
            remote.print(&discarded, |discarded| {
                println!(
                    "discarded dead delivery {id} of event {} to {}",
                    table::cell(&discarded["event"]),
                    table::cell(&discarded["plugin"])
                )
            })
        }
    }
}

pub fn plugins(remote: &Remote, command: PluginsCommand) -> Result<(), CliError> {
    let client = remote.client()?;
    match command {
        PluginsCommand::List => {
            let listing = client.get("/api/plugins", &[])?;
            if remote.json {
                return print_json(&listing);
            }
            let rows: Vec<Vec<String>> = items(&listing, "plugins")?
                .iter()
                .map(|plugin| {
                    vec![
                        table::cell(&plugin["id"]),
                        table::cell(&plugin["status"]),
                        table::cell(&plugin["version"]),
                        table::cell(&plugin["name"]),
                        table::cell(&plugin["loaded_at"]),
                        table::cell(&plugin["error"]["message"]),
                    ]
                })
                .collect();
            table::print(
                &["ID", "STATUS", "VERSION", "NAME", "LOADED", "ERROR"],
                &rows,
            );
            Ok(())
        }
    }
}

/// `hookhost deploy FILE [--id ID]`: `PUT /api/plugins/{id}` with the file as the body.
pub fn deploy(remote: &Remote, file: &Path, id: Option<String>) -> Result<(), CliError> {
    let id = match id {
        Some(id) => id,
        None => file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .map(str::to_string)
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "cannot take a plugin id from the name of {}; pass --id",
                    file.display()
                ))
            })?,
    };
    if !hookhost::plugins::id::is_valid_plugin_id(&id) {
        return Err(CliError::Usage(format!(
            "{}; pass --id",
            hookhost::plugins::id::not_a_plugin_id(&id)
        )));
    }
    let bytes = std::fs::read(file)
        .map_err(|error| CliError::Host(anyhow::anyhow!("reading {}: {error}", file.display())))?;
    let client = remote.client()?;
    let answer = client.put(&format!("/api/plugins/{id}"), bytes)?;
    remote.print(&answer, |plugin| {
        let id = table::cell(&plugin["id"]);
        println!("deployed {id} {}", version_line(plugin));
    })
}

/// `hookhost deploy --rollback ID`: `POST /api/plugins/{id}/rollback`.
pub fn rollback(remote: &Remote, id: &str) -> Result<(), CliError> {
    let id = checked_id(id)?;
    let client = remote.client()?;
    let answer = client.post(&format!("/api/plugins/{id}/rollback"))?;
    remote.print(&answer, |plugin| {
        let id = table::cell(&plugin["id"]);
        println!("rolled back {id} to {}", version_line(plugin));
    })
}

/// A plugin's entry in the admin API as `NAME VERSION (sha256 SHA256)`.
fn version_line(plugin: &Value) -> String {
    format!(
        "{} {} (sha256 {})",
        table::cell(&plugin["name"]),
        table::cell(&plugin["version"]),
        table::cell(&plugin["sha256"])
    )
}

/// `hookhost undeploy ID`: `DELETE /api/plugins/{id}`.
pub fn undeploy(remote: &Remote, id: &str) -> Result<(), CliError> {
    let id = checked_id(id)?;
    let client = remote.client()?;
    let answer = client.delete(&format!("/api/plugins/{id}"))?;
    remote.print(&answer, |_| println!("undeployed {id}"))
}

fn checked_id(id: &str) -> Result<&str, CliError> {
    if !hookhost::plugins::id::is_valid_plugin_id(id) {
        return Err(CliError::Usage(hookhost::plugins::id::not_a_plugin_id(id)));
    }
    Ok(id)
}

fn items<'a>(answer: &'a Value, field: &str) -> Result<&'a Vec<Value>, CliError> {
    answer[field].as_array().ok_or_else(|| {
        CliError::Host(anyhow::anyhow!(
            "the host's answer has no `{field}` list; is it a hookhost?"
        ))
    })
}

fn print_json(value: &Value) -> Result<(), CliError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("a JSON value serializes")
    );
    Ok(())
}

fn print_event(event: &Value) {
    for (label, field) in [
        ("id", "id"),
        ("plugin", "plugin"),
        ("event id", "event_id"),
        ("kind", "kind"),
        ("subject", "subject"),
        ("received", "received_at"),
    ] {
        println!("{:<10} {}", format!("{label}:"), table::cell(&event[field]));
    }
    println!("payload:");
    println!("{}", indented(&pretty(&event["payload"])));
    match event["request"].as_object() {
        None => println!("request:   none (the event came from a poll)"),
        Some(request) => {
            let query = request["query"].as_str().unwrap_or_default();
            println!(
                "request:   {} {}{}{}",
                table::cell(&request["method"]),
                table::cell(&request["path"]),
                if query.is_empty() { "" } else { "?" },
                query
            );
            for header in request["headers"].as_array().into_iter().flatten() {
                println!("  {}: {}", table::cell(&header[0]), table::cell(&header[1]));
            }
            match (request.get("body"), request.get("body_hex")) {
                (Some(body), _) => println!("{}", indented(&table::cell(body))),
                (None, Some(hex)) => println!("  (binary body, hex) {}", table::cell(hex)),
                (None, None) => {}
            }
        }
    }
    let deliveries = event["deliveries"].as_array().cloned().unwrap_or_default();
    if deliveries.is_empty() {
        println!("deliveries: none");
    } else {
        println!("deliveries:");
        let rows: Vec<Vec<String>> = deliveries
            .iter()
            .map(|d| {
                ["id", "plugin", "state", "attempts", "last_error"]
                    .iter()
                    .map(|field| table::cell(&d[field]))
                    .collect()
            })
            .collect();
        print!(
            "{}",
            indented(&table::render(
                &["ID", "PLUGIN", "STATE", "ATTEMPTS", "LAST ERROR"],
                &rows
            ))
        );
        println!();
    }
}

fn print_replay(id: u64, answer: &Value) {
    let replay = &answer["replay"];
    println!(
        "event {id} replayed through {} {}: HTTP {}",
        table::cell(&answer["stored"]["plugin"]),
        table::cell(&answer["plugin_version"]),
        table::cell(&replay["status"])
    );
    if let Some(error) = replay["error"].as_object() {
        println!(
            "error: {}: {}",
            table::cell(&error["error"]),
            table::cell(&error["message"])
        );
        return;
    }
    let rows: Vec<Vec<String>> = replay["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|event| {
            ["event_id", "kind", "subject"]
                .iter()
                .map(|field| table::cell(&event[field]))
                .collect()
        })
        .collect();
    if rows.is_empty() {
        println!("events: none");
    } else {
        println!("events now emitted:");
        print!(
            "{}",
            indented(&table::render(&["EVENT ID", "KIND", "SUBJECT"], &rows))
        );
        println!();
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("a JSON value serializes")
}

fn indented(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
