//! A throwaway PostgreSQL server for tests: a fresh cluster in a temp dir, run by
//! Debian's server binaries as the `postgres` user (PostgreSQL refuses to run as
//! root), listening on a free port on 127.0.0.1 with its unix socket in the temp
//! dir, so it never meets the package's own cluster or another test's.
//!
//! A missing server is a failed test, never a skip: `scripts/toolchains/postgres`
//! (run by `scripts/test`) installs it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The database `start` creates; `url()` points at it.
const DATABASE: &str = "hookhost";

pub struct Postgres {
    /// Owned by the `postgres` user: the cluster (`data/`), its log and its socket.
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
    /// Server options that turn TLS on (`start_with_tls`); empty otherwise.
    tls_options: String,
}

impl Postgres {
    /// A fleet node on this database: a host with `plugins` and `config`, which
    /// may add to the spec before starting it.
    pub fn node(&self, plugins: &[(&str, PathBuf)], config: &str) -> super::HostSpec {
        let database = format!("database = \"{}\"\n{config}", self.url());
        let mut spec = super::HostSpec::default().config(&database);
        for (id, file) in plugins {
            spec = spec.plugin(id, file.clone());
        }
        spec
    }

    /// Creates a cluster, starts it and creates the database `url()` names.
    pub fn start() -> Postgres {
        Self::start_with(None)
    }

    /// `start`, with TLS on (`ssl=on`) with this PEM certificate (chain) and key;
    /// clients may still connect without TLS.
    pub fn start_with_tls(cert: &Path, key: &Path) -> Postgres {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> Postgres {
        let bin = server_binaries();
        let dir = tempfile::Builder::new()
            .prefix("hookhost-pg-")
            .tempdir()
            .expect("creating a temp dir for PostgreSQL");
        if running_as_root() {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .expect("running chown");
            assert!(
                status.success(),
                "chown postgres: {} failed (does the postgres user exist? scripts/toolchains/postgres installs the package that creates it)",
                dir.path().display()
            );
        }
        let port = free_port();
        let mut server = Postgres {
            dir,
            bin,
            port,
            running: false,
            tls_options: String::new(),
        };
        // --no-sync only skips initdb's own fsyncs of the fresh cluster; the server
        // itself runs with fsync on, so benchmarks against it pay for durability as
        // a real deployment does.
        server.run(
            "initdb",
            &[
                "-D",
                &server.data_dir(),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        if let Some((cert, key)) = tls {
            server.install_tls(cert, key);
        }
        server.start_again();
        server.create_database(DATABASE);
        server
    }

    /// Copies the certificate and key where the server reads them, owned by the
    /// `postgres` user with the key private (the server refuses a readable key).
    fn install_tls(&mut self, cert: &Path, key: &Path) {
        let server_cert = self.dir.path().join("server.crt");
        let server_key = self.dir.path().join("server.key");
        std::fs::copy(cert, &server_cert).expect("copying the server certificate");
        std::fs::copy(key, &server_key).expect("copying the server key");
        std::fs::set_permissions(
            &server_key,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        if running_as_root() {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(&server_cert)
                .arg(&server_key)
                .status()
                .expect("running chown");
            assert!(status.success(), "chown postgres: of the TLS files failed");
        }
        self.tls_options = format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            server_cert.display(),
            server_key.display()
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/hookhost`.
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    /// The URL of another database on this server (see `create_database`).
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a further, empty database and returns its URL, so that tests can
    /// share one server and still start from nothing.
    pub fn create_database(&self, name: &str) -> String {
        let socket_dir = self.socket_dir();
        let port = self.port.to_string();
        self.run("createdb", &["-h", &socket_dir, "-p", &port, name]);
        self.url_of(name)
    }

    /// Stops the server (fast shutdown: connections are cut, committed data kept).
    pub fn stop(&mut self) {
        if self.running {
            self.run(
                "pg_ctl",
                &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"],
            );
            self.running = false;
        }
    }

    /// Starts the server (again) on the same port and data; waits until it accepts
    /// connections.
    pub fn start_again(&mut self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={socket} \
             -c max_connections=300 -c fsync=on -c synchronous_commit=on{tls}",
            port = self.port,
            socket = self.socket_dir(),
            tls = self.tls_options,
        );
        let log = self.log_path();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log.to_string_lossy(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        self.running = true;
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn socket_dir(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Runs one of the server's programs as the `postgres` user; panics with its
    /// output (and the server log) when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program, args)
            .output()
            .unwrap_or_else(|error| panic!("running {program}: {error}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}):\n{}{}\nserver log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        // The postgres user may not be allowed into the test's working directory.
        command.args(args).current_dir(self.dir.path());
        command
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            // Immediate: the cluster is thrown away, so there is nothing to flush.
            let _ = self
                .command(
                    "pg_ctl",
                    &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
                )
                .output();
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with a server in it.
fn server_binaries() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server found (/usr/lib/postgresql/*/bin/initdb): \
             run scripts/toolchains/postgres (scripts/test does) to install Debian's postgresql"
        ),
    }
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self")
        .map(|meta| meta.uid() == 0)
        .unwrap_or(false)
}

/// A port nothing listens on now. Another process could take it before the server
/// binds it; `pg_ctl start` then fails loudly rather than meeting the wrong server.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().unwrap().port()
}
