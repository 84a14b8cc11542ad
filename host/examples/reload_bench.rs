//! Hot-reload and start-up benchmark against the real binary.
//!
//!     cargo build --release --bin hookhost --example reload_bench
//!     target/release/examples/reload_bench plugins/github.wasm [more.wasm ...]
//!
//! For each plugin file it reports the time from writing a new version into the
//! plugins directory until the host serves it (its sha256 shows in
//! `/api/plugins`), with a cold cache (content never seen) and a warm one
//! (content compiled before); and, for the first file only, the host's start-up
//! time with 50 distinct copies of it, cold versus cached. Distinct content is made by appending a custom
//! section, which changes the bytes but not the behaviour.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const ROUNDS: usize = 5;

fn main() {
    let files: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    assert!(
        !files.is_empty(),
        "usage: reload_bench PLUGIN.wasm [PLUGIN.wasm ...]"
    );
    let binary = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("hookhost");
    assert!(
        binary.is_file(),
        "{} missing: cargo build --release --bin hookhost",
        binary.display()
    );

    for (index, file) in files.iter().enumerate() {
        let original = std::fs::read(file).unwrap();
        let name = file.file_stem().unwrap().to_string_lossy();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        std::fs::write(dir.path().join("plugins/bench.wasm"), variant(&original, 0)).unwrap();
        let (mut child, base) = start(&binary, dir.path());

        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for round in 1..=ROUNDS {
            cold.push(swap(dir.path(), &base, &variant(&original, round as u32)));
            // Back to a variant compiled in an earlier round: served from the cache.
            warm.push(swap(
                dir.path(),
                &base,
                &variant(&original, round as u32 - 1),
            ));
        }
        println!(
            "reload {name} ({} KiB): cold cache median {:?} (min {:?}, max {:?}); warm cache median {:?} (min {:?}, max {:?}); {ROUNDS} rounds",
            original.len() / 1024,
            median(&mut cold),
            cold.iter().min().unwrap(),
            cold.iter().max().unwrap(),
            median(&mut warm),
            warm.iter().min().unwrap(),
            warm.iter().max().unwrap(),
        );
        let _ = child.kill();
        let _ = child.wait();
        if index > 0 {
            continue;
        }

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        for i in 0..50 {
            std::fs::write(
                dir.path().join(format!("plugins/p{i}.wasm")),
                variant(&original, 1000 + i),
            )
            .unwrap();
        }
        let mut startups = Vec::new();
        for _ in 0..2 {
            let started = Instant::now();
            let (mut child, _) = start(&binary, dir.path());
            startups.push(started.elapsed());
            let _ = child.kill();
            let _ = child.wait();
        }
        println!(
            "start-up with 50 x {name}: cold cache {:?}, cached {:?}",
            startups[0], startups[1]
        );
    }
}

/// `bytes` with a custom section appended whose payload is `n`: a different file
/// (and sha256) that behaves identically.
fn variant(bytes: &[u8], n: u32) -> Vec<u8> {
    use wasm_encoder::{CustomSection, Encode, Section};
    let section = CustomSection {
        name: "hookhost-bench".into(),
        data: n.to_le_bytes().to_vec().into(),
    };
    let mut out = bytes.to_vec();
    out.push(section.id());
    section.encode(&mut out);
    out
}

/// Writes `bytes` as the plugin and returns how long until the host serves it.
fn swap(dir: &Path, base: &str, bytes: &[u8]) -> Duration {
    let sha = hex::encode(Sha256::digest(bytes));
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    std::fs::write(dir.join("plugins/bench.wasm"), bytes).unwrap();
    loop {
        let reply: serde_json::Value = client
            .get(format!("{base}/api/plugins"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if reply["plugins"][0]["sha256"] == sha.as_str() {
            let elapsed = started.elapsed();
            // And it answers (any status: the plugin may want a signature).
            client.post(format!("{base}/hooks/bench")).send().unwrap();
            return elapsed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "reload did not happen"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn start(binary: &Path, dir: &Path) -> (Child, String) {
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--plugins")
        .arg(dir.join("plugins"))
        .arg("--data")
        .arg(dir.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("hookhost exited before it was ready")
            .unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
    };
    (child, base)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
