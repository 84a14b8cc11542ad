//! TLS between hookhost and PostgreSQL, against real servers: one with TLS on (a
//! certificate for `localhost` and 127.0.0.1, signed by a CA that `openssl` makes
//! for the test) and one without. What each `sslmode` does is checked from the
//! server's side too (`pg_stat_ssl`), not only from what the store believes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use common::output_text;
use common::postgres::Postgres;
use hookhost::store::postgres::PostgresStore;

/// The CA that signed the TLS server's certificate, and one that did not.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }
    fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.crt")
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (Debian's openssl package)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        output_text(&output)
    );
}

/// A CA, a server certificate it signed for `localhost` and 127.0.0.1, and a
/// second CA that signed nothing.
fn make_certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    for name in ["ca", "other-ca"] {
        openssl(
            path,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=hookhost test {name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    std::fs::write(
        path.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        path,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        path,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    Certs { dir }
}

/// The certificates and the two servers, shared by the tests running at once.
struct Servers {
    certs: Certs,
    tls: Postgres,
    plain: Postgres,
}

fn servers() -> Arc<Servers> {
    static SHARED: Mutex<Weak<Servers>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(servers) = shared.upgrade() {
        return servers;
    }
    let certs = make_certs();
    let tls = Postgres::start_with_tls(
        &certs.dir.path().join("server.crt"),
        &certs.dir.path().join("server.key"),
    );
    let servers = Arc::new(Servers {
        certs,
        tls,
        plain: Postgres::start(),
    });
    *shared = Arc::downgrade(&servers);
    servers
}

/// A name that tells this test's sessions apart on the server.
fn application_name(case: &str) -> String {
    static RUN: OnceLock<u32> = OnceLock::new();
    format!("tls-{}-{case}", RUN.get_or_init(std::process::id))
}

/// `host` on `server`'s port, its `hookhost` database, with `params`.
fn url(server: &Postgres, host: &str, params: &str) -> String {
    format!(
        "postgres://postgres@{host}:{}/hookhost?{params}",
        server.port()
    )
}

/// Whether each session `application_name` has open on `server` is encrypted, as
/// the server sees it.
async fn sessions_encrypted(server: &Postgres, application_name: &str) -> Vec<bool> {
    let (client, connection) = tokio_postgres::connect(
        &url(server, "127.0.0.1", "sslmode=disable"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connecting to look at pg_stat_ssl");
    tokio::spawn(connection);
    client
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = $1",
            &[&application_name],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Opens a store with `params` (plus an application name), and says whether it
/// and the server both find its connections encrypted.
async fn open_and_check(server: &Postgres, host: &str, case: &str, params: &str) -> bool {
    let name = application_name(case);
    let store = PostgresStore::open(&url(
        server,
        host,
        &format!("{params}&application_name={name}"),
    ))
    .await
    .unwrap_or_else(|error| panic!("{case}: {error:#}"));
    let seen = sessions_encrypted(server, &name).await;
    assert!(!seen.is_empty(), "{case}: the server sees no session");
    assert!(
        seen.iter().all(|&ssl| ssl == store.is_encrypted()),
        "{case}: the store says encrypted={}, the server {seen:?}",
        store.is_encrypted()
    );
    store.is_encrypted()
}

/// The error of opening a store on `server` as `host` with `params`.
async fn open_error_at(server: &Postgres, host: &str, params: &str) -> String {
    open_error(&url(server, host, params)).await
}

async fn open_error(url: &str) -> String {
    match PostgresStore::open(url).await {
        Ok(_) => panic!("{url} connected"),
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn require_encrypts_without_checking_and_disable_stays_plain() {
    let servers = servers();
    assert!(open_and_check(&servers.tls, "127.0.0.1", "require", "sslmode=require").await);
    assert!(!open_and_check(&servers.tls, "127.0.0.1", "disable", "sslmode=disable").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn prefer_the_default_encrypts_when_the_server_offers_tls_and_else_stays_plain() {
    let servers = servers();
    assert!(open_and_check(&servers.tls, "127.0.0.1", "prefer-tls", "connect_timeout=5").await);
    assert!(
        !open_and_check(
            &servers.plain,
            "127.0.0.1",
            "prefer-plain",
            "sslmode=prefer"
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_connects_with_the_right_ca_and_refuses_a_wrong_ca_or_host_name() {
    let servers = servers();
    let ca = servers.certs.ca();
    let ca = ca.to_str().unwrap();
    let right = format!("sslmode=verify-full&sslrootcert={ca}");
    assert!(open_and_check(&servers.tls, "localhost", "verify-full", &right).await);
    assert!(open_and_check(&servers.tls, "127.0.0.1", "verify-full-ip", &right).await);

    let other = servers.certs.other_ca();
    let other_root = format!("sslrootcert={}", other.display());
    let verify_other = format!("sslmode=verify-full&{other_root}");
    let wrong_ca = open_error_at(&servers.tls, "localhost", &verify_other).await;
    assert!(wrong_ca.contains("TLS handshake"), "{wrong_ca}");
    assert!(wrong_ca.contains("UnknownIssuer"), "{wrong_ca}");

    // The right CA, but the certificate does not name the host asked for
    // (`hostaddr` connects to 127.0.0.1 all the same).
    let wrong_name = format!("hostaddr=127.0.0.1&sslrootcert={ca}");
    let error = open_error_at(
        &servers.tls,
        "db.wrong.invalid",
        &format!("sslmode=verify-full&{wrong_name}"),
    )
    .await;
    assert!(error.contains("not valid for name"), "{error}");
    assert!(error.contains("db.wrong.invalid"), "{error}");
    // verify-ca checks the chain only, so the same URL connects.
    assert!(
        open_and_check(
            &servers.tls,
            "db.wrong.invalid",
            "verify-ca",
            &format!("sslmode=verify-ca&{wrong_name}")
        )
        .await
    );
    // As in libpq, a root certificate file makes `require` check the chain.
    let require_other = format!("sslmode=require&{other_root}");
    let error = open_error_at(&servers.tls, "127.0.0.1", &require_other).await;
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_against_the_public_roots_refuses_a_private_ca() {
    let servers = servers();
    for params in ["sslmode=verify-full", "sslrootcert=system"] {
        let error = open_error_at(&servers.tls, "localhost", params).await;
        assert!(error.contains("UnknownIssuer"), "{params}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn require_against_a_server_without_tls_fails_clearly() {
    let servers = servers();
    let error = open_error_at(&servers.plain, "127.0.0.1", "sslmode=require").await;
    assert!(error.contains("server does not support TLS"), "{error}");
    assert!(
        error.contains(&format!("127.0.0.1:{}", servers.plain.port())),
        "{error}"
    );
}
