//! Undeploy on one node with SQLite (issue 17): `DELETE /api/plugins/{id}` and
//! `hookhost undeploy` delete the plugin's file and unload it, after which its
//! route answers 404; rollback answers 409 saying it needs the fleet store; and the
//! temporary files of a deploy interrupted by a crash are removed at start.

mod common;

use std::process::{Command, Output};

use common::{client, output_text, test_plugin, Host, HostSpec};
use serde_json::Value;

const TOKEN: &str = "undeploy-test-token";

fn hook_status(host: &Host, plugin: &str) -> u16 {
    client()
        .post(host.url(&format!("/hooks/{plugin}")))
        .body("{}")
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn is_listed(host: &Host, plugin: &str) -> bool {
    let listing: Value = client()
        .get(host.url("/api/plugins"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == plugin)
}

fn undeploy(host: &Host, plugin: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().delete(host.url(&format!("/api/plugins/{plugin}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

fn hookhost_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args(args)
        .env_remove("HOOKHOST_URL")
        .env("HOOKHOST_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running hookhost")
}

fn host_with_app_and_other() -> Host {
    HostSpec::default()
        .plugin("app", test_plugin("versioned-v1"))
        .plugin("other", test_plugin("versioned-v2"))
        .config(&format!("admin_token = \"{TOKEN}\"\n"))
        .start()
}

#[test]
fn undeploy_removes_the_plugin_and_its_route_answers_404() {
    let host = host_with_app_and_other();
    assert_eq!(hook_status(&host, "app"), 200);

    // Without the admin token nothing is removed.
    let (status, body) = undeploy(&host, "app", None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(hook_status(&host, "app"), 200);

    let (status, body) = undeploy(&host, "app", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "app", "{body}");
    // At once, not after a reload round.
    assert_eq!(hook_status(&host, "app"), 404);
    assert!(!is_listed(&host, "app"));
    assert!(!host.plugins_dir().join("app.wasm").exists());
    // The other plugin is untouched.
    assert_eq!(hook_status(&host, "other"), 200);

    // Nothing left to undeploy: 404; a bad id: 400.
    let (status, body) = undeploy(&host, "app", Some(TOKEN));
    assert_eq!(status, 404, "{body}");
    let (status, body) = undeploy(&host, "Not-An-Id", Some(TOKEN));
    assert_eq!(status, 400, "{body}");

    // One node keeps no earlier versions: rollback says what it needs.
    let response = client()
        .post(host.url("/api/plugins/other/rollback"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.status(), 409);
    let body: Value = response.json().unwrap();
    assert_eq!(body["error"], "rollback_needs_fleet_store", "{body}");
    assert_eq!(hook_status(&host, "other"), 200);
}

#[test]
fn the_cli_undeploys_and_says_when_there_is_nothing_to_undeploy_or_roll_back() {
    let host = host_with_app_and_other();
    let url = host.base_url.as_str();

    let undeployed = hookhost_cli(&["undeploy", "app", "--url", url]);
    assert!(undeployed.status.success(), "{}", output_text(&undeployed));
    assert!(
        String::from_utf8_lossy(&undeployed.stdout).contains("undeployed app"),
        "{}",
        output_text(&undeployed)
    );
    assert_eq!(hook_status(&host, "app"), 404);

    // Exit 3: no such plugin.
    let again = hookhost_cli(&["undeploy", "app", "--url", url]);
    assert_eq!(again.status.code(), Some(3), "{}", output_text(&again));
    // Exit 2: not a plugin id, the host is not asked.
    let bad = hookhost_cli(&["undeploy", "Not-An-Id", "--url", url]);
    assert_eq!(bad.status.code(), Some(2), "{}", output_text(&bad));

    // Exit 1 with the reason: rollback needs the fleet store.
    let rollback = hookhost_cli(&["deploy", "--rollback", "other", "--url", url]);
    let said = output_text(&rollback);
    assert_eq!(rollback.status.code(), Some(1), "{said}");
    assert!(said.contains("needs the fleet"), "{said}");
    // A file and --rollback together are a usage error.
    let both = hookhost_cli(&["deploy", "x.wasm", "--rollback", "other", "--url", url]);
    assert_eq!(both.status.code(), Some(2), "{}", output_text(&both));
    assert_eq!(hook_status(&host, "other"), 200);
}

#[test]
fn temporary_files_of_an_interrupted_deploy_are_removed_at_start() {
    let stale = ".app.wasm.deploy-00c0ffee00c0ffee";
    let host = HostSpec::default()
        .plugin("app", test_plugin("versioned-v1"))
        .raw_file(stale, b"half a component")
        .raw_file(".app.wasm.swp", b"an editor's file")
        .start();
    assert!(!host.plugins_dir().join(stale).exists());
    assert!(host.log().contains(stale), "{}", host.log());
    // Only a deploy's own temporary names are removed.
    assert!(host.plugins_dir().join(".app.wasm.swp").exists());
    assert!(host.plugins_dir().join("app.wasm").exists());
    assert_eq!(hook_status(&host, "app"), 200);
}
