//! A small HTTP load generator for webhook endpoints: N keep-alive connections, each
//! sending one request after another for D seconds, then requests/s and latency
//! percentiles. Every request is a GitHub `push` delivery signed with the secret
//! (`X-Hub-Signature-256`), with a fresh `X-GitHub-Delivery` id, so a receiver that
//! deduplicates by delivery stores every one.
//!
//!     cargo run --release --example loadgen -- URL [URL...] [--connections 32] [--seconds 10]
//!         [--warmup 2] [--secret S] [--label NAME]
//!
//! With several URLs (the nodes of a fleet) the connections are spread over them in
//! turn, as a round-robin load balancer would.
//!
//! Prints one human line and one `RESULT` line (tab-separated) for scripts. Non-2xx
//! answers are counted as errors and excluded from the latency figures.
//!
//! One HTTP/1.1 connection per worker on a current-thread runtime (raw hyper, no
//! pooling layer), so the generator costs the machine as little as it can: on a
//! 2-core box it shares the CPUs with the server it measures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
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
    label: String,
}

fn options() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        urls: Vec::new(),
        connections: 32,
        seconds: 10.0,
        warmup: 2.0,
        secret: "bench-secret".into(),
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
            url if !url.starts_with("--") => options.urls.push(url.into()),
            other => bail!("unexpected argument {other:?}; see the module docs for usage"),
        }
    }
    if options.urls.is_empty() {
        bail!("usage: loadgen URL [URL...] [--connections N] [--seconds D] [--warmup W] [--secret S] [--label NAME]");
    }
    if options.label.is_empty() {
        options.label = options.urls.join(" ");
    }
    Ok(options)
}

/// A GitHub push delivery of ~1.4 KiB, the size of a small real one.
fn push_body() -> Bytes {
    let commits: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            serde_json::json!({
                "id": format!("{:040x}", i + 1),
                "message": "Fix the widget frobnicator when the gizmo is absent",
                "author": { "name": "Ada", "email": "ada@example.com" },
                "added": [], "removed": [], "modified": ["src/widget.rs"],
            })
        })
        .collect();
    let body = serde_json::json!({
        "ref": "refs/heads/main",
        "before": format!("{:040x}", 0),
        "after": format!("{:040x}", 3),
        "repository": { "id": 1, "full_name": "acme/widgets", "private": false },
        "pusher": { "name": "ada", "email": "ada@example.com" },
        "sender": { "login": "ada", "id": 7 },
        "commits": commits,
    });
    Bytes::from(body.to_string())
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
    let body = push_body();
    let mut mac = Hmac::<Sha256>::new_from_slice(options.secret.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
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
                let (body, signature, run, sequence) = (
                    body.clone(),
                    signature.clone(),
                    run.clone(),
                    sequence.clone(),
                );
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
                        let request = hyper::Request::post(uri.clone())
                            .header("host", authority.as_str())
                            .header("content-type", "application/json")
                            .header("x-github-event", "push")
                            .header("x-github-delivery", format!("bench-{run}-{n}"))
                            .header("x-hub-signature-256", &signature)
                            .body(Full::new(body.clone()))?;
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
    let started = Instant::now();
    let mut tally = measure(options.seconds).await?;
    let elapsed = started.elapsed().as_secs_f64();
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
    println!(
        "{}: {rate:.0} req/s ({ok} ok, {} errors in {elapsed:.1} s, {} connections), \
         latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        options.label, tally.errors, options.connections
    );
    println!(
        "RESULT\t{}\t{rate:.0}\t{p50:.2}\t{p99:.2}\t{}",
        options.label, tally.errors
    );
    if ok == 0 {
        bail!("no request succeeded");
    }
    Ok(())
}
