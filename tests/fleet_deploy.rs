//! Undeploy and rollback reach every node of a fleet (issue 17): three real nodes
//! on one real PostgreSQL (tests/common/postgres.rs), each with its own plugins
//! folder. `DELETE /api/plugins/{id}` on one node unloads the plugin everywhere,
//! and a node that was down at the time does not serve it from its folder's copy
//! when it starts; `POST /api/plugins/{id}/rollback` on one node makes the
//! previous version current everywhere; the store keeps the last five versions of
//! a plugin and deletes older components.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::postgres::Postgres;
use common::{client, eventually, output_text, sha256_hex, test_plugin, Host};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

fn start_node(database: &Postgres, plugins: &[(&str, PathBuf)]) -> Host {
    database.node(plugins, "").start()
}

/// The webhook's status and body.
fn hook(host: &Host, plugin: &str) -> (u16, String) {
    let response = client()
        .post(host.url(&format!("/hooks/{plugin}")))
        .body("{}")
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn deploy(host: &Host, plugin: &str, bytes: &[u8]) {
    let response = client()
        .put(host.url(&format!("/api/plugins/{plugin}")))
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
}

/// `POST /api/plugins/{plugin}/rollback`: the status and the answer.
fn rollback(host: &Host, plugin: &str) -> (u16, Value) {
    let response = client()
        .post(host.url(&format!("/api/plugins/{plugin}/rollback")))
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

fn everywhere(nodes: &[&Host], what: &str, check: impl Fn(&Host) -> bool) {
    eventually(what, WAIT, || nodes.iter().all(|node| check(node)));
}

/// How many components the store holds.
fn stored_components(database: &Postgres) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&database.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .query_one("SELECT count(*) FROM components", &[])
            .await
            .unwrap()
            .get(0)
    })
}

#[test]
fn undeploy_and_rollback_reach_every_node_including_one_that_was_down() {
    let database = Postgres::start();
    let v1 = std::fs::read(test_plugin("versioned-v1")).unwrap();
    let v2 = std::fs::read(test_plugin("versioned-v2")).unwrap();
    let app = [("app", test_plugin("versioned-v1"))];
    let first = start_node(&database, &app);
    let second = start_node(&database, &app);
    let mut third = start_node(&database, &app);

    // Nothing to roll back to yet: the fleet has no earlier version of app.
    let (status, body) = rollback(&first, "app");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "no_earlier_version", "{body}");

    deploy(&first, "app", &v1);
    deploy(&first, "app", &v2);
    everywhere(&[&first, &second, &third], "every node to run v2", |node| {
        node.running_sha256("app") == Some(sha256_hex(&v2))
    });

    // Rolled back through another node: v1 again on all three.
    let (status, body) = rollback(&second, "app");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sha256"], sha256_hex(&v1), "{body}");
    assert_eq!(hook(&second, "app"), (200, "v1".to_string()));
    everywhere(&[&first, &second, &third], "every node to run v1", |node| {
        hook(node, "app") == (200, "v1".to_string())
    });

    // The third node is down while app is undeployed; its folder keeps app.wasm.
    third.kill();
    let response = client()
        .delete(first.url("/api/plugins/app"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
    assert_eq!(hook(&first, "app").0, 404);
    everywhere(
        &[&first, &second],
        "app to be gone from the live nodes",
        |node| node.plugin_listing("app").is_none() && hook(node, "app").0 == 404,
    );
    for node in [&first, &second] {
        assert!(!node.plugins_dir().join("app.wasm").exists());
    }
    assert!(third.plugins_dir().join("app.wasm").exists());

    // Started again, the third node does not serve its stale copy, not even
    // briefly: the tombstone is applied before it listens.
    third.restart();
    assert!(third.plugin_listing("app").is_none(), "{}", third.log());
    assert_eq!(hook(&third, "app").0, 404);
    assert!(!third.plugins_dir().join("app.wasm").exists());

    // Undeploying again: nothing is deployed any more.
    let again = client()
        .delete(second.url("/api/plugins/app"))
        .send()
        .unwrap();
    assert_eq!(again.status(), 404);

    // A rollback undoes the undeploy: v1 everywhere again.
    let (status, body) = rollback(&third, "app");
    assert_eq!(status, 200, "{body}");
    everywhere(
        &[&first, &second, &third],
        "every node to run v1 again",
        |node| hook(node, "app") == (200, "v1".to_string()),
    );
}

#[test]
fn the_store_keeps_the_last_five_versions_and_deletes_older_components() {
    let database = Postgres::start();
    let node = start_node(&database, &[]);
    // Seven different components deployed in turn as one plugin.
    let versions: Vec<Vec<u8>> = [
        "versioned-v1",
        "versioned-v2",
        "ticker-v1",
        "ticker-v2",
        "handler",
        "fetcher",
        "faulty",
    ]
    .iter()
    .map(|name| std::fs::read(test_plugin(name)).unwrap())
    .collect();
    for bytes in &versions {
        deploy(&node, "app", bytes);
    }
    assert_eq!(node.running_sha256("app"), Some(sha256_hex(&versions[6])));
    assert_eq!(stored_components(&database), 5, "the last five are kept");

    // Four rollbacks step back through the kept versions; the fifth finds none.
    for back in 1..=4 {
        let (status, body) = rollback(&node, "app");
        assert_eq!(status, 200, "rollback {back}: {body}");
        assert_eq!(body["sha256"], sha256_hex(&versions[6 - back]), "{body}");
        assert_eq!(
            node.running_sha256("app"),
            Some(sha256_hex(&versions[6 - back]))
        );
    }
    let (status, body) = rollback(&node, "app");
    assert_eq!(status, 409, "{body}");
    assert_eq!(node.running_sha256("app"), Some(sha256_hex(&versions[2])));
    // Rolled-back-over versions are forgotten with their components.
    assert_eq!(stored_components(&database), 1);
}

#[test]
fn the_cli_undeploys_and_rolls_back() {
    let database = Postgres::start();
    let v1 = std::fs::read(test_plugin("versioned-v1")).unwrap();
    let v2 = std::fs::read(test_plugin("versioned-v2")).unwrap();
    let nodes = [start_node(&database, &[]), start_node(&database, &[])];
    deploy(&nodes[0], "app", &v1);
    deploy(&nodes[0], "app", &v2);
    everywhere(&[&nodes[0], &nodes[1]], "both nodes to run v2", |node| {
        hook(node, "app") == (200, "v2".to_string())
    });
    let url = nodes[1].base_url.as_str();

    let rolled = hookhost_cli(&["deploy", "--rollback", "app", "--url", url]);
    assert!(rolled.status.success(), "{}", output_text(&rolled));
    let stdout = String::from_utf8_lossy(&rolled.stdout);
    assert!(stdout.contains("rolled back app"), "{stdout}");
    assert!(stdout.contains(&sha256_hex(&v1)), "{stdout}");
    everywhere(&[&nodes[0], &nodes[1]], "both nodes to run v1", |node| {
        hook(node, "app") == (200, "v1".to_string())
    });
    // Nothing earlier: exit 1 with the host's reason.
    let none = hookhost_cli(&["deploy", "--rollback", "app", "--url", url]);
    assert_eq!(none.status.code(), Some(1), "{}", output_text(&none));
    assert!(
        output_text(&none).contains("no earlier version"),
        "{}",
        output_text(&none)
    );

    let undeployed = hookhost_cli(&["undeploy", "app", "--url", url]);
    assert!(undeployed.status.success(), "{}", output_text(&undeployed));
    everywhere(
        &[&nodes[0], &nodes[1]],
        "app to be gone from both nodes",
        |node| hook(node, "app").0 == 404,
    );
    // Not deployed any more: exit 3.
    let again = hookhost_cli(&["undeploy", "app", "--url", url]);
    assert_eq!(again.status.code(), Some(3), "{}", output_text(&again));
}

fn hookhost_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args(args)
        .env_remove("HOOKHOST_ADMIN_TOKEN")
        .env_remove("HOOKHOST_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("running hookhost")
}
