//! Idle cost of poll timers, against the real binary.
//!
//!     cargo build --release --bin hookhost --example bench_poll_idle
//!     target/release/examples/bench_poll_idle target/test-plugins/ticker-v1.wasm 10000 30
//!
//! Starts the host with N copies of a polling plugin (the `ticker` test plugin
//! polls hourly), waits until every one has made its first poll, so that N timers
//! are set an hour ahead, then reads the process's CPU time (user + system, all
//! threads including exited ones, from /proc) over an idle window. Run it with
//! N = 0 for the host's own idle cost (epoch ticker, dispatcher), which the timers
//! add to.

#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (plugin, count, idle) = match args.as_slice() {
        [plugin, count, idle] => (
            plugin.clone(),
            count.parse::<usize>()?,
            idle.parse::<u64>()?,
        ),
        _ => bail!("usage: bench_poll_idle PLUGIN.wasm COUNT IDLE_SECONDS"),
    };
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/hookhost");
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    let bytes = std::fs::read(&plugin).with_context(|| format!("reading {plugin}"))?;
    for n in 0..count {
        std::fs::write(plugins.join(format!("t{n:05}.wasm")), &bytes)?;
    }
    // An empty config, so that no ./hookhost.toml is picked up.
    let config = dir.path().join("hookhost.toml");
    std::fs::write(&config, "")?;
    let started = Instant::now();
    let mut child = Command::new(&binary)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--plugins"])
        .arg(&plugins)
        .arg("--data")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let mut url = String::new();
    for line in BufReader::new(stdout).lines() {
        if let Some(found) = line?.strip_prefix("listening on ") {
            url = found.to_string();
            break;
        }
    }
    println!(
        "{count} plugins loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    loop {
        let reply: Value = client.get(format!("{url}/api/plugins")).send()?.json()?;
        let polled = reply["plugins"]
            .as_array()
            .context("no plugin list")?
            .iter()
            .filter(|p| !p["poll"]["last_poll_at"].is_null())
            .count();
        if polled == count {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("only {polled} of {count} plugins polled within 900 s");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "{count} first polls done {:.1} s after start",
        started.elapsed().as_secs_f64()
    );
    // Let the tail of the start-up work (commits, log flushes) settle.
    std::thread::sleep(Duration::from_secs(3));
    let ticks = clock_ticks_per_second()?;
    let cpu_before = proc_stat::cpu_ticks(pid)?;
    std::thread::sleep(Duration::from_secs(idle));
    let cpu_after = proc_stat::cpu_ticks(pid)?;
    let cpu_ms = (cpu_after - cpu_before) as f64 * 1000.0 / ticks as f64;
    println!(
        "idle {idle} s with {count} timers: CPU {cpu_ms:.0} ms ({:.3} % of one core), RSS {}",
        cpu_ms / (idle as f64 * 1000.0) * 100.0,
        rss(pid)?
    );
    child.kill()?;
    child.wait()?;
    Ok(())
}

fn rss(pid: u32) -> Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .map(|line| line.trim_start_matches("VmRSS:").trim().to_string())
        .unwrap_or_default())
}

fn clock_ticks_per_second() -> Result<u64> {
    let output = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}
