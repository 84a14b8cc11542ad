//! Backpressure on the real binary: when the disk, the database or the instance
//! pool cannot keep up, the host answers 503 with `Retry-After` (never 500), holds
//! a bounded amount of memory, spends no delivery attempt, and recovers by itself
//! once the stall ends.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::{client, eventually, test_plugin, Host, HostSpec};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);
/// How far the host's resident memory may grow while a client hammers a stalled
/// store: far above what a bounded queue holds (a few requests of `BODY_BYTES`),
/// far below what holding every request sent during the stall would take.
const RSS_GROWTH_BOUND_KIB: u64 = 512 * 1024;
/// Webhook bodies sent while the store stalls: big enough that holding all of
/// them would show in the host's memory.
const BODY_BYTES: usize = 256 * 1024;

/// The host's resident memory, from /proc.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A host with `config` whose `faulty` plugin takes 64 calls at once, more than its
/// write queue of 8 holds; and the URL of the webhook, which has stored an event.
fn small_queue_host(config: &str) -> (Host, String) {
    let host = HostSpec::default()
        .plugin("faulty", test_plugin("faulty"))
        .config(&format!(
            "{config}write_queue = 8\n[plugins.faulty]\nmax_concurrent_calls = 64\n"
        ))
        .start();
    let url = host.url("/hooks/faulty/ok");
    assert_eq!(post_status(&url, "before"), 200);
    (host, url)
}

/// What came back while `threads` clients kept sending webhooks.
#[derive(Debug, Default)]
struct Hammered {
    /// Status (0: no answer within the client's timeout) -> how many.
    statuses: BTreeMap<u16, usize>,
    /// 503s without `Retry-After`, or with another error code than `storage`.
    bad_503s: Vec<String>,
    /// The most resident memory the host had while it went on.
    max_rss_kib: u64,
}

/// How long `hammer` keeps sending.
const HAMMER_FOR: Duration = Duration::from_secs(12);

/// Sends webhooks of `BODY_BYTES` to `url` from `threads` clients for `HAMMER_FOR`,
/// each waiting at most `client_timeout`, sampling the host's memory meanwhile.
fn hammer(host: &Host, url: &str, threads: usize, client_timeout: Duration) -> Hammered {
    let result = Arc::new(Mutex::new(Hammered::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (result, stop, url) = (result.clone(), stop.clone(), url.to_string());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(client_timeout)
                    .build()
                    .unwrap();
                let body = vec![b'x'; BODY_BYTES];
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let sent = client
                        .post(&url)
                        .header("x-id", format!("hammer-{t}-{n}"))
                        .body(body.clone())
                        .send();
                    let mut result = result.lock().unwrap();
                    let Ok(response) = sent else {
                        *result.statuses.entry(0).or_default() += 1;
                        continue;
                    };
                    let status = response.status().as_u16();
                    *result.statuses.entry(status).or_default() += 1;
                    if status == 503 {
                        let retry_after = response.headers().contains_key("retry-after");
                        let body: Value = response.json().unwrap_or_default();
                        if !retry_after || body["error"] != "storage" {
                            result
                                .bad_503s
                                .push(format!("retry-after: {retry_after}, body: {body}"));
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut max_rss_kib = 0;
    while started.elapsed() < HAMMER_FOR {
        max_rss_kib = max_rss_kib.max(vm_rss_kib(host.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let mut result = std::mem::take(&mut *result.lock().unwrap());
    result.max_rss_kib = max_rss_kib;
    result
}

/// Checks what a hammering during a stall got: 503s with `Retry-After` and code
/// `storage`, some of them at once because the bounded queue was full, nothing
/// else (no 500, no other error), and bounded memory.
fn assert_backpressure(host: &Host, hammered: &Hammered, rss_before_kib: u64) {
    let unexpected: Vec<_> = hammered
        .statuses
        .iter()
        .filter(|(status, _)| ![0, 503].contains(*status))
        .collect();
    assert!(
        unexpected.is_empty(),
        "only 503s (or no answer yet) while the store stalls: {:?}; log:\n{}",
        hammered.statuses,
        host.log()
    );
    assert!(
        hammered.bad_503s.is_empty(),
        "every 503 has Retry-After and code storage: {:?}",
        hammered.bad_503s
    );
    assert!(
        hammered.statuses.get(&503).copied().unwrap_or(0) > 0,
        "some requests were answered 503 at once: {:?}",
        hammered.statuses
    );
    assert!(
        host.log().contains("the event store's write queue is full"),
        "the bounded queue refused writes; log:\n{}",
        host.log()
    );
    assert!(
        hammered.max_rss_kib < rss_before_kib + RSS_GROWTH_BOUND_KIB,
        "resident memory stayed bounded: {} KiB before, at most {} KiB during",
        rss_before_kib,
        hammered.max_rss_kib
    );
}

fn post_status(url: &str, id: &str) -> u16 {
    client()
        .post(url)
        .header("x-id", id)
        .body("{}")
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn a_sqlite_database_locked_by_another_process_answers_503_at_once_with_bounded_memory() {
    let (host, url) = small_queue_host("");

    // Another process holds SQLite's write lock: every commit waits out the busy
    // timeout, then fails with SQLITE_BUSY.
    let other = rusqlite::Connection::open(host.data_dir().join("events.sqlite3")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let rss_before_kib = vm_rss_kib(host.pid());
    let hammered = hammer(&host, &url, 16, Duration::from_secs(30));
    assert_backpressure(&host, &hammered, rss_before_kib);
    // The admin API's writes are 503 too, once the busy timeout is out.
    let retry = host.post("/api/deliveries/1/retry");
    assert_eq!(retry.status(), 503, "a write through the admin API");
    assert!(retry.headers().contains_key("retry-after"));

    other.execute_batch("ROLLBACK").unwrap();
    eventually("webhooks to be stored again", WAIT, || {
        post_status(&url, "after") == 200
    });
}

/// A tmpfs mounted over a directory for as long as it lives (lazily unmounted).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None`, with the reason printed, where mounting is not permitted.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Tmpfs(at.to_path_buf())),
            Ok(output) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(error) => {
                eprintln!("SKIPPED: cannot run mount: {error}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` with one file, until it has no room left.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    while file.write_all(&chunk[..512]).is_ok() {}
    let _ = file.sync_all();
    path
}

#[test]
fn sqlite_on_a_full_disk_answers_503_with_retry_after_on_webhooks_and_the_admin_api_then_recovers()
{
    let mut host = HostSpec::default()
        .plugin("faulty", test_plugin("faulty"))
        .plugin("handler", test_plugin("handler"))
        .config("[plugins.handler]\nconfig = { subscriptions = \"faulty.*\" }\n")
        .start();
    // Again on a fresh, small filesystem of its own.
    host.kill();
    let Some(_tmpfs) = Tmpfs::mount(&host.data_dir(), "64m") else {
        return;
    };
    host.restart();
    let url = host.url("/hooks/faulty/ok");
    assert_eq!(post_status(&url, "before"), 200);
    let events = host.get_json("/api/events?plugin=faulty");
    let event_id = events["events"][0]["id"].as_str().unwrap().to_string();
    let delivery = host.wait_for("the delivery to be delivered", || {
        let event = host.get_json(&format!("/api/events/{event_id}"));
        let delivery = event["deliveries"][0].clone();
        (delivery["state"] == "delivered").then_some(delivery)
    });
    let delivery_id = delivery["id"].as_str().unwrap().to_string();

    let filler = fill(&host.data_dir());
    let mut full = None;
    for n in 0..200 {
        let response = client()
            .post(&url)
            .header("x-id", format!("full-{n}"))
            .body(vec![b'x'; 16 * 1024])
            .send()
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            [200, 503].contains(&status),
            "a webhook on a full disk is stored or refused with 503, got {status}; log:\n{}",
            host.log()
        );
        if status == 503 {
            full = Some(response);
            break;
        }
    }
    let full = full.expect("a webhook is refused once the disk is full");
    assert!(full.headers().contains_key("retry-after"));
    let body: Value = full.json().unwrap();
    assert_eq!(body["error"], "storage", "{body}");

    let retry = host.post(&format!("/api/deliveries/{delivery_id}/retry"));
    assert_eq!(
        retry.status(),
        503,
        "a write through the admin API on a full disk; log:\n{}",
        host.log()
    );
    assert!(retry.headers().contains_key("retry-after"));
    let body: Value = retry.json().unwrap();
    assert_eq!(body["error"], "storage", "{body}");

    std::fs::remove_file(filler).unwrap();
    eventually("webhooks to be stored again", WAIT, || {
        post_status(&url, "after") == 200
    });
    let retry = host.post(&format!("/api/deliveries/{delivery_id}/retry"));
    assert_eq!(retry.status(), 200);
}

/// The process ids of the PostgreSQL server listening on `port` and of its
/// children (backends and helpers).
fn postgres_processes(port: u16) -> Vec<String> {
    let output = Command::new("pgrep")
        .args(["-f", &format!("postgres .*-p {port} ")])
        .output()
        .expect("running pgrep");
    let parents: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(
        !parents.is_empty(),
        "the postmaster on port {port} is found"
    );
    let mut all = parents.clone();
    for parent in parents {
        let children = Command::new("pgrep")
            .args(["-P", &parent])
            .output()
            .unwrap();
        all.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_string),
        );
    }
    let mut seen = std::collections::HashSet::new();
    all.retain(|pid| seen.insert(pid.clone()));
    all
}

/// Stops the given processes (SIGSTOP) for as long as it lives.
struct Stopped(Vec<String>);

impl Stopped {
    fn new(pids: Vec<String>) -> Stopped {
        signal("STOP", &pids);
        Stopped(pids)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("CONT", &self.0);
    }
}

/// Sends signal `name` to each process still there. A short-lived helper process
/// that `postgres_processes` saw may be gone by now, which is no failure; the
/// postmaster itself (the first pid) must be signalled.
fn signal(name: &str, pids: &[String]) {
    for (i, pid) in pids.iter().enumerate() {
        let signalled = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(signalled || i > 0, "kill -{name} {pid} (the postmaster)");
    }
}

#[test]
fn a_stalled_postgresql_answers_503_at_once_with_bounded_memory_and_recovers() {
    let database = Postgres::start();
    let (host, url) = small_queue_host(&format!("database = \"{}\"\n", database.url()));

    let rss_before_kib = vm_rss_kib(host.pid());
    let stalled = Stopped::new(postgres_processes(database.port()));
    // More clients than on SQLite: each of the four writers takes every queued
    // write into its group whenever it is free, so the queue overflows only when
    // more requests arrive between two takes than it holds.
    let hammered = hammer(&host, &url, 48, Duration::from_secs(60));
    assert_backpressure(&host, &hammered, rss_before_kib);
    // A read through the admin API while the database stalls: 503, not 500.
    let events = host.get("/api/events");
    assert_eq!(events.status(), 503, "a read through the admin API");
    assert!(events.headers().contains_key("retry-after"));

    drop(stalled);
    eventually("webhooks to be stored again", WAIT, || {
        post_status(&url, "after") == 200
    });
}

#[test]
fn an_exhausted_instance_pool_answers_503_with_retry_after_and_costs_a_delivery_no_attempt() {
    let host = HostSpec::default()
        .plugin("slow", test_plugin("faulty"))
        .plugin("other", test_plugin("faulty"))
        .plugin("handler", test_plugin("handler"))
        .config(
            "[plugins.slow]\ntimeout = \"120s\"\nmax_concurrent_calls = 100\n\
             [plugins.handler]\nconfig = { subscriptions = \"faulty.*\" }\n\
             sources = [\"other\"]\nretry_base = \"1s\"\n",
        )
        .start();
    let other = host.url("/hooks/other/ok");
    assert_eq!(post_status(&other, "before"), 200);
    let first = host.get_json("/api/events?plugin=other")["events"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let delivery = host.wait_for("the first delivery", || {
        let event = host.get_json(&format!("/api/events/{first}"));
        let delivery = event["deliveries"][0].clone();
        (delivery["state"] == "delivered").then_some(delivery)
    });
    let delivery_id = delivery["id"].as_str().unwrap().to_string();

    // As many slow calls as the pool has instances (limits::POOL_COMPONENT_INSTANCES),
    // each retried until it holds one.
    let release = Arc::new(AtomicBool::new(false));
    let holders: Vec<_> = (0..100)
        .map(|n| {
            let url = host.url("/hooks/slow/sleep/20000");
            let release = release.clone();
            std::thread::spawn(move || loop {
                let status = post_status(&url, &format!("slow-{n}"));
                if status == 200 || release.load(Ordering::Relaxed) {
                    return status;
                }
                assert_eq!(
                    status, 503,
                    "a slow call either runs or finds the pool busy"
                );
                std::thread::sleep(Duration::from_millis(200));
            })
        })
        .collect();

    let mut n = 0;
    let busy = host.wait_for("a call to find the instance pool exhausted", || {
        std::thread::sleep(Duration::from_millis(100));
        n += 1;
        let response = client()
            .post(&other)
            .header("x-id", format!("during-{n}"))
            .body("{}")
            .send()
            .unwrap();
        let status = response.status().as_u16();
        assert!([200, 503].contains(&status), "got {status}");
        (status == 503).then_some(response)
    });
    assert!(busy.headers().contains_key("retry-after"));
    let body: Value = busy.json().unwrap();
    assert_eq!(body["error"], "busy", "{body}");

    // A delivery due while no instance is free is put back, its attempt uncounted.
    let requeued = host.post(&format!("/api/deliveries/{delivery_id}/retry"));
    assert_eq!(requeued.status(), 200);
    eventually("a delivery to be put back", WAIT, || {
        host.log()
            .contains("delivery put back without spending an attempt")
    });
    release.store(true, Ordering::Relaxed);
    for holder in holders {
        holder.join().unwrap();
    }

    // Every delivery of `other`'s events, including those that met the full pool,
    // succeeded at its first attempt.
    let events = host.get_json("/api/events?plugin=other&limit=500");
    for event in events["events"].as_array().unwrap() {
        let id = event["id"].as_str().unwrap();
        let delivery = host.wait_for("every delivery to be delivered", || {
            let event = host.get_json(&format!("/api/events/{id}"));
            let delivery = event["deliveries"][0].clone();
            (delivery["state"] == "delivered").then_some(delivery)
        });
        assert_eq!(delivery["attempts"], 1, "{delivery}");
    }
}
