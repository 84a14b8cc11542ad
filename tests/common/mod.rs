//! Test harness: starts the real `hookhost` binary on 127.0.0.1:0 with a temporary
//! plugins directory, data directory and config file, and stops it on drop.
#![allow(dead_code)] // each test file uses a different part of the harness

pub mod feed;
pub mod postgres;
pub mod signers;
pub mod stub_server;
pub mod traffic;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The repository root (the host crate lives in `host/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// An example plugin built by `scripts/build-plugins` (`plugins/<id>.wasm`).
pub fn example_plugin(id: &str) -> PathBuf {
    existing(repo_root().join("plugins").join(format!("{id}.wasm")))
}

/// A test plugin built by `scripts/build-plugins` (`target/test-plugins/<name>.wasm`).
pub fn test_plugin(name: &str) -> PathBuf {
    existing(
        repo_root()
            .join("target/test-plugins")
            .join(format!("{name}.wasm")),
    )
}

/// Seconds since the Unix epoch, now: the timestamp a provider signs a delivery
/// with.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `event_id` of each event in `listing`, an answer of `/api/events`, in its order.
pub fn event_ids(listing: &serde_json::Value) -> Vec<&str> {
    let events = listing["events"].as_array().unwrap();
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect()
}

/// The entry of the event the provider calls `event_id` in `listing`, an answer of
/// `/api/events`; `None` also when `listing` is no list of events.
pub fn event_in<'a>(
    listing: &'a serde_json::Value,
    event_id: &str,
) -> Option<&'a serde_json::Value> {
    let events = listing["events"].as_array()?;
    events.iter().find(|e| e["event_id"] == event_id)
}

/// The entry of plugin `id` in `listing`, an answer of `/api/plugins`.
pub fn plugin_in(listing: &serde_json::Value, id: &str) -> Option<serde_json::Value> {
    let plugins = listing["plugins"].as_array().unwrap();
    plugins.iter().find(|p| p["id"] == id).cloned()
}

/// The bytes of the `versioned` test plugin's build `version` (`"v1"` or `"v2"`).
pub fn versioned_plugin(version: &str) -> Vec<u8> {
    std::fs::read(test_plugin(&format!("versioned-{version}"))).unwrap()
}

/// The SHA-256 of `bytes` in hex, as `/api/plugins` shows a component's.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(bytes))
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins (scripts/test does) before the tests",
        path.display()
    );
    path
}

/// A running hookhost process.
pub struct Host {
    child: Child,
    pub base_url: String,
    /// The admin listener's URL when started with `--admin-listen` (or the config's
    /// `admin_listen`), from its `admin listening on` line.
    pub admin_base_url: Option<String>,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

/// What to start a host with.
#[derive(Default)]
pub struct HostSpec {
    /// `(plugin id, component file)` copied into the plugins directory.
    pub plugins: Vec<(String, PathBuf)>,
    /// Raw files to put in the plugins directory, such as broken plugins.
    pub raw_files: Vec<(String, Vec<u8>)>,
    /// Config file text (`config` adds to it); `listen`, `plugins_dir` and
    /// `data_dir` come from the command line.
    pub config: String,
    pub env: Vec<(String, String)>,
    /// Extra `serve` arguments, such as `--listen 0.0.0.0:0` (the default is
    /// `--listen 127.0.0.1:0`).
    pub args: Vec<String>,
}

impl HostSpec {
    pub fn plugin(mut self, id: &str, file: PathBuf) -> Self {
        self.plugins.push((id.to_string(), file));
        self
    }

    pub fn raw_file(mut self, name: &str, bytes: &[u8]) -> Self {
        self.raw_files.push((name.to_string(), bytes.to_vec()));
        self
    }

    /// The test plugin `name` (`tests/plugins`), served under its own name.
    pub fn test_plugin(self, name: &str) -> Self {
        self.plugin(name, test_plugin(name))
    }

    /// The example plugin `id` (`plugins/`), served under its own name.
    pub fn example_plugin(self, id: &str) -> Self {
        self.plugin(id, example_plugin(id))
    }

    /// The `versioned-v1` test plugin, served as `app` (deploys replace it with
    /// `versioned-v2`; each answers with its version).
    pub fn versioned_app(self) -> Self {
        self.plugin("app", test_plugin("versioned-v1"))
    }

    /// Adds `text` to the end of the config file.
    pub fn config(mut self, text: &str) -> Self {
        self.config.push_str(text);
        self
    }

    /// `admin_token`, read from the environment as an operator would set it; put
    /// before the config's tables, where a top-level key must stand.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.config
            .insert_str(0, "admin_token = \"${TEST_ADMIN_TOKEN}\"\n");
        self.env("TEST_ADMIN_TOKEN", token)
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// `--listen <address>` instead of the default `--listen 127.0.0.1:0`.
    pub fn listen(self, address: &str) -> Self {
        self.arg("--listen").arg(address)
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn start(self) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let plugins_dir = dir.path().join("plugins");
        std::fs::create_dir(&plugins_dir).unwrap();
        for (id, file) in &self.plugins {
            std::fs::copy(file, plugins_dir.join(format!("{id}.wasm"))).unwrap();
        }
        for (name, bytes) in &self.raw_files {
            std::fs::write(plugins_dir.join(name), bytes).unwrap();
        }
        std::fs::write(dir.path().join("hookhost.toml"), &self.config).unwrap();
        let (child, base_url, admin_base_url) = launch(dir.path(), &self.env, &self.args);
        Host {
            child,
            base_url,
            admin_base_url,
            dir,
            env: self.env,
            args: self.args,
        }
    }
}

/// Starts the binary on the plugins, config and data directory under `dir`, and
/// waits until it reports its address (and its admin listener's, printed before).
/// The log is appended to, so that it spans restarts.
fn launch(
    dir: &Path,
    env: &[(String, String)],
    args: &[String],
) -> (Child, String, Option<String>) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("host.log"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .arg("serve")
        .arg("--config")
        .arg(dir.join("hookhost.toml"))
        .args(if args.iter().any(|a| a == "--listen") {
            &[][..]
        } else {
            &["--listen", "127.0.0.1:0"][..]
        })
        .args(args)
        .arg("--plugins")
        .arg(dir.join("plugins"))
        .arg("--data")
        .arg(dir.join("data"))
        // A token exported for the CLI must not turn on admin auth in every test.
        .env_remove("HOOKHOST_ADMIN_TOKEN")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("starting hookhost");

    // The host prints `listening on http://ADDR` once its plugins are loaded, after
    // `admin listening on http://ADDR` when it has an admin listener.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut admin = None;
        // A host listening on every address is reached over loopback.
        let reachable = |url: &str| url.replace("//0.0.0.0:", "//127.0.0.1:");
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("admin listening on ") {
                admin = Some(reachable(url));
            } else if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send((reachable(url), admin.take()));
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok((url, admin_url)) => (child, url, admin_url),
        Err(_) => {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.join("host.log")).unwrap_or_default();
            panic!("hookhost did not report readiness within 120 s; its log:\n{log}");
        }
    }
}

impl Host {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// GETs `path` from this host's main listener.
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        client().get(self.url(path)).send().unwrap()
    }

    /// POSTs to `path` on this host's main listener, with no body.
    pub fn post(&self, path: &str) -> reqwest::blocking::Response {
        client().post(self.url(path)).send().unwrap()
    }

    /// POSTs `body` to `path` on this host's main listener.
    pub fn post_body(
        &self,
        path: &str,
        body: impl Into<reqwest::blocking::Body>,
    ) -> reqwest::blocking::Response {
        client().post(self.url(path)).body(body).send().unwrap()
    }

    /// DELETEs `path` on this host's main listener.
    pub fn delete(&self, path: &str) -> reqwest::blocking::Response {
        client().delete(self.url(path)).send().unwrap()
    }

    /// GETs `path` from this host's main listener and parses the answer as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).json().unwrap()
    }

    /// The list under `key` in the JSON answer to GET `path`.
    pub fn get_list(&self, path: &str, key: &str) -> Vec<serde_json::Value> {
        let answer = self.get_json(path);
        answer[key].as_array().unwrap().clone()
    }

    /// The entry of plugin `id` in `/api/plugins`, if it is loaded.
    pub fn plugin_listing(&self, id: &str) -> Option<serde_json::Value> {
        plugin_in(&self.get_json("/api/plugins"), id)
    }

    /// The SHA-256 (hex) of the component this host runs for plugin `id`, from
    /// `/api/plugins`; `None` when it runs none.
    pub fn running_sha256(&self, id: &str) -> Option<String> {
        let listing = self.plugin_listing(id)?;
        listing["sha256"].as_str().map(str::to_string)
    }

    /// Whether this host holds the poll lease of plugin `id`, from `/api/plugins`.
    pub fn holds_poll_lease(&self, id: &str) -> bool {
        self.plugin_listing(id)
            .is_some_and(|listing| listing["poll"]["lease_held"] == true)
    }

    /// POSTs `payload` to the `faulty` test plugin's `/event` route, which accepts it
    /// as event `id` of `kind`.
    pub fn send_faulty_event(
        &self,
        id: &str,
        kind: &str,
        payload: &str,
    ) -> reqwest::blocking::Response {
        client()
            .post(self.url("/hooks/faulty/event"))
            .header("x-id", id)
            .header("x-kind", kind)
            .body(payload.to_string())
            .send()
            .unwrap()
    }

    /// The body of a 2xx answer to a POST to `/hooks/{id}`; `None` for any other
    /// answer or none.
    pub fn hook_answer(&self, id: &str) -> Option<String> {
        let response = client()
            .post(self.url(&format!("/hooks/{id}")))
            .send()
            .ok()?;
        let ok = response.status().is_success();
        ok.then(|| response.text().unwrap())
    }

    /// The first line of the host's log that contains `needle`; panics with the log
    /// when there is none.
    pub fn log_line(&self, needle: &str) -> String {
        let log = self.log();
        match log.lines().find(|line| line.contains(needle)) {
            Some(line) => line.to_string(),
            None => panic!("no line with {needle:?} in the host's log:\n{log}"),
        }
    }

    /// GETs `path` from this host's main listener, which must answer 200.
    pub fn get_ok(&self, path: &str) -> reqwest::blocking::Response {
        let response = self.get(path);
        assert_eq!(response.status(), 200, "GET {path}");
        response
    }

    /// The host's Prometheus metrics, as text.
    pub fn metrics(&self) -> String {
        self.get_ok("/metrics").text().unwrap()
    }

    /// Polls `check` until it returns `Some`; panics with the host's log if that
    /// takes unreasonably long (a hang, not a timing assertion).
    pub fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() > deadline {
                panic!("gave up waiting for {what}; host log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `path` on the admin listener; panics when the host has none.
    pub fn admin_url(&self, path: &str) -> String {
        let base = self
            .admin_base_url
            .as_ref()
            .expect("this host was started without an admin listener");
        format!("{base}{path}")
    }

    /// Kills the process with SIGKILL (no chance to flush or shut down), then starts
    /// it again on the same plugins, config and data directory. It listens on a
    /// new port.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// Starts the host again after `kill`, on the same directories.
    pub fn restart(&mut self) {
        let (child, base_url, admin_base_url) = launch(self.dir.path(), &self.env, &self.args);
        self.child = child;
        self.base_url = base_url;
        self.admin_base_url = admin_base_url;
    }

    /// Sends a signal by name (`TERM`, `INT`) with `kill(1)`, as an operator would.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit by itself, failing the test after `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "hookhost did not exit within {timeout:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then waits for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The process id, to send it signals or read its memory from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Replaces plugin `id`'s file with `bytes` as editors and deploy tools do:
    /// written beside it under a hidden name, then renamed over it, so that the
    /// watcher never sees a partial file.
    pub fn replace_plugin_file(&self, id: &str, bytes: &[u8]) {
        let tmp = self.plugins_dir().join(format!(".{id}.wasm.partial"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.plugins_dir().join(format!("{id}.wasm"))).unwrap();
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the host has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds, failing the test with `what` after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs `token` to the dashboard's `/login` form with `client` (one that does
/// not follow redirects shows the login's 303 and cookie).
pub fn post_login(
    host: &Host,
    client: &reqwest::blocking::Client,
    token: &str,
) -> reqwest::blocking::Response {
    client
        .post(host.url("/login"))
        .form(&[("token", token)])
        .send()
        .unwrap()
}

/// A client that does not follow redirects, so that a 303 and its cookie can be
/// seen.
pub fn client_without_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A finished command's status, stdout and stderr, for assertion messages.
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `sha256=<hex>` as GitHub signs a body.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Runs `hookhost serve` with `args` and no admin token in reach, and returns its
/// exit status and stderr; fails if it is still running after a minute.
pub fn serve_expecting_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::write(dir.path().join("hookhost.toml"), "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("hookhost.toml"))
        .arg("--plugins")
        .arg(dir.path().join("plugins"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("HOOKHOST_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("hookhost serve {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// The languages of the Standard Webhooks receivers (`plugins/standard-<lang>`).
pub const STANDARD_LANGUAGES: [&str; 5] = ["rust", "python", "js", "c", "go"];

/// A host serving every Standard Webhooks receiver, each with signing secret
/// `secret`, with `config` first in its config file.
pub fn standard_receivers_host(secret: &str, config: &str) -> Host {
    let mut spec = HostSpec::default();
    let mut config = config.to_string();
    for lang in STANDARD_LANGUAGES {
        let id = format!("standard-{lang}");
        spec = spec.plugin(&id, example_plugin(&id));
        config.push_str(&format!(
            "[plugins.{id}]\nconfig = {{ secret = \"{secret}\" }}\n"
        ));
    }
    spec.config(&config).start()
}
