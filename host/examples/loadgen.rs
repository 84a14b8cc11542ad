//! A small HTTP load generator for webhook endpoints: N keep-alive connections, each
//! sending one request after another for D seconds, then requests/s and latency
//! percentiles. Every request is a GitHub `push` delivery signed with the secret
//! (`X-Hub-Signature-256`), with a fresh `X-GitHub-Delivery` id, so a receiver that
//! deduplicates by delivery stores every one. With `--scheme standard` the same body is
//! sent as a Standard Webhooks message instead (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`; the secret is `whsec_` + base64 of the key), signed per request.
//!
//!     cargo run --release --example loadgen -- URL [URL...] [--connections 32] [--seconds 10]
//!         [--warmup 2] [--secret S] [--scheme github|standard] [--pid PID]... [--label NAME]
//!
//! With several URLs (the nodes of a fleet) the connections are spread over them in
//! turn, as a round-robin load balancer would.
//!
//! With `--pid`, the server's own CPU time (user + system of every thread, from
//! `/proc/PID/stat`) across the measured window is divided by the requests it
//! answered: the figure that does not depend on how much of the machine the load
//! generator took. Several `--pid`s (a fleet) are summed.
//!
//! Prints one human line and one `RESULT` line (tab-separated: label, req/s, p50 ms,
//! p99 ms, errors, server CPU us per request or `-`) for scripts. Non-2xx answers are
//! counted as errors and excluded from the latency figures.
//!
//! One HTTP/1.1 connection per worker on a current-thread runtime (raw hyper, no
//! pooling layer), so the generator costs the machine as little as it can: on a
//! 2-core box it shares the CPUs with the server it measures.

#[path = "support/delivery.rs"]
mod delivery;
#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha2::Sha256;

struct Options {
    urls: Vec<String>,
    connections: usize,
    seconds: f64,
    warmup: f64,
    secret: String,
    scheme: Scheme,
    pids: Vec<u32>,
    label: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Scheme {
    GitHub,
    Standard,
}

fn options() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        urls: Vec::new(),
        connections: 32,
        seconds: 10.0,
        warmup: 2.0,
        secret: "bench-secret".into(),
        scheme: Scheme::GitHub,
        pids: Vec::new(),
        label: String::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--connections" => options.connections = value("--connections")?.parse()?,
            "--seconds" => options.seconds = value("--seconds")?.parse()?,
            "--warmup" => options.warmup = value("--warmup")?.parse()?,
            "--secret" => options.secret = value("--secret")?,
            "--label" => options.label = value("--label")?,
            "--scheme" => {
                options.scheme = match value("--scheme")?.as_str() {
                    "github" => Scheme::GitHub,
                    "standard" => Scheme::Standard,
                    other => bail!("--scheme is github or standard, not {other:?}"),
                }
            }
            "--pid" => options.pids.push(value("--pid")?.parse().context("--pid")?),
            url if !url.starts_with("--") => options.urls.push(url.into()),
            other => bail!("unexpected argument {other:?}; see the module docs for usage"),
        }
    }
    if options.urls.is_empty() {
        bail!("usage: loadgen URL [URL...] [--connections N] [--seconds D] [--warmup W] [--secret S] [--scheme github|standard] [--pid PID]... [--label NAME]");
    }
    if options.label.is_empty() {
        options.label = options.urls.join(" ");
    }
    Ok(options)
}

/// The headers that sign one delivery, by scheme.
enum Signer {
    /// `X-Hub-Signature-256` covers the body only, so one signature serves every request.
    GitHub { signature: String },
    /// Standard Webhooks sign `{id}.{timestamp}.{body}`: one signature per request.
    Standard { key: Vec<u8> },
}

impl Signer {
    fn new(scheme: Scheme, secret: &str, body: &[u8]) -> Result<Self> {
        Ok(match scheme {
            Scheme::GitHub => Signer::GitHub {
                signature: delivery::github_signature(secret, body),
            },
            Scheme::Standard => {
                let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
                let key = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .context("a Standard Webhooks secret is `whsec_` + base64")?;
                Signer::Standard { key }
            }
        })
    }

    fn headers(&self, delivery: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        match self {
            Signer::GitHub { signature } => vec![
                ("x-github-event", "push".into()),
                ("x-github-delivery", delivery.into()),
                ("x-hub-signature-256", signature.clone()),
            ],
            Signer::Standard { key } => {
                let timestamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs()
                    .to_string();
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                mac.update(format!("{delivery}.{timestamp}.").as_bytes());
                mac.update(body);
                let signature =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                vec![
                    ("webhook-id", delivery.into()),
                    ("webhook-timestamp", timestamp),
                    ("webhook-signature", format!("v1,{signature}")),
                ]
            }
        }
    }
}

/// User plus system CPU seconds of every thread of the given processes, summed; `None`
/// without pids.
fn server_cpu_seconds(pids: &[u32]) -> Result<Option<f64>> {
    if pids.is_empty() {
        return Ok(None);
    }
    let mut ticks = 0u64;
    for pid in pids {
        ticks += proc_stat::cpu_ticks(pid).with_context(|| format!("is server {pid} running?"))?;
    }
    Ok(Some(ticks as f64 / 100.0))
}

/// What one worker measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let options = options()?;
    let targets = options
        .urls
        .iter()
        .map(|url| {
            let uri: hyper::Uri = url.parse().with_context(|| format!("parsing {url}"))?;
            let authority = uri
                .authority()
                .with_context(|| format!("{url} needs a host and port"))?
                .clone();
            anyhow::Ok((uri, authority))
        })
        .collect::<Result<Vec<_>>>()?;
    let body = Bytes::from(delivery::push_body());
    let signer = Arc::new(Signer::new(options.scheme, &options.secret, &body)?);
    // Delivery ids unique across runs against the same store.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let sequence = Arc::new(AtomicU64::new(0));

    let measure = |seconds: f64| {
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let workers: Vec<_> = (0..options.connections)
            .map(|worker| {
                let (uri, authority) = targets[worker % targets.len()].clone();
                let (body, signer, run, sequence) =
                    (body.clone(), signer.clone(), run.clone(), sequence.clone());
                tokio::spawn(async move {
                    let stream = tokio::net::TcpStream::connect(authority.as_str())
                        .await
                        .with_context(|| format!("connecting to {authority}"))?;
                    stream.set_nodelay(true)?;
                    let (mut sender, connection) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                    tokio::spawn(connection);
                    let mut tally = Tally::default();
                    while Instant::now() < until {
                        let n = sequence.fetch_add(1, Ordering::Relaxed);
                        let mut request = hyper::Request::post(uri.clone())
                            .header("host", authority.as_str())
                            .header("content-type", "application/json");
                        for (name, value) in signer.headers(&format!("bench-{run}-{n}"), &body) {
                            request = request.header(name, value);
                        }
                        let request = request.body(Full::new(body.clone()))?;
                        let started = Instant::now();
                        let response = sender.send_request(request).await?;
                        let ok = response.status().is_success();
                        response.into_body().collect().await?;
                        if ok {
                            let us = started.elapsed().as_micros().min(u32::MAX as u128);
                            tally.latencies_us.push(us as u32);
                        } else {
                            tally.errors += 1;
                        }
                    }
                    anyhow::Ok(tally)
                })
            })
            .collect();
        async move {
            let mut total = Tally::default();
            for worker in workers {
                let tally = worker.await??;
                total.latencies_us.extend(tally.latencies_us);
                total.errors += tally.errors;
            }
            anyhow::Ok(total)
        }
    };

    if options.warmup > 0.0 {
        measure(options.warmup).await?;
    }
    let cpu_before = server_cpu_seconds(&options.pids)?;
    let started = Instant::now();
    let mut tally = measure(options.seconds).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = server_cpu_seconds(&options.pids)?;
    tally.latencies_us.sort_unstable();
    let ok = tally.latencies_us.len();
    let percentile = |p: f64| -> f64 {
        if ok == 0 {
            return f64::NAN;
        }
        let index = ((ok as f64 * p).ceil() as usize).clamp(1, ok) - 1;
        tally.latencies_us[index] as f64 / 1000.0
    };
    let rate = ok as f64 / elapsed;
    let (p50, p99, max) = (percentile(0.50), percentile(0.99), percentile(1.0));
    let answered = ok as u64 + tally.errors;
    let cpu_us = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if answered > 0 => {
            format!("{:.0}", (after - before) * 1e6 / answered as f64)
        }
        _ => "-".to_string(),
    };
    println!(
        "{}: {rate:.0} req/s ({ok} ok, {} errors in {elapsed:.1} s, {} connections), \
         latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms, server CPU {cpu_us} us/request",
        options.label, tally.errors, options.connections
    );
    println!(
        "RESULT\t{}\t{rate:.0}\t{p50:.2}\t{p99:.2}\t{}\t{cpu_us}",
        options.label, tally.errors
    );
    if ok == 0 {
        bail!("no request succeeded");
    }
    Ok(())
}
