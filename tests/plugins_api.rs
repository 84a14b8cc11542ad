//! Loading plugins: what `/api/plugins` reports, and bad plugin files.

mod common;

use common::{example_plugin, test_plugin, HostSpec};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn plugins(host: &common::Host) -> Vec<Value> {
    host.get_list("/api/plugins", "plugins")
}

#[test]
fn loaded_plugins_are_listed_with_their_manifest_and_content_hash() {
    let github = example_plugin("github");
    let host = HostSpec::default()
        .plugin("github", github.clone())
        .test_plugin("faulty")
        .config("[plugins.github]\nconfig = { secret = \"x\" }\n")
        .start();
    let listed = plugins(&host);
    let ids: Vec<&str> = listed.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["faulty", "github"]);
    let entry = &listed[1];
    assert_eq!(entry["status"], "ok");
    assert_eq!(entry["name"], "GitHub");
    assert_eq!(entry["version"], "0.1.0");
    let expected = hex::encode(Sha256::digest(std::fs::read(&github).unwrap()));
    assert_eq!(entry["sha256"], expected);
    assert!(entry["loaded_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn broken_plugin_files_are_reported_and_the_others_keep_serving() {
    let host = HostSpec::default()
        .test_plugin("faulty")
        .raw_file("notwasm.wasm", b"this is not wasm")
        .raw_file(
            "truncated.wasm",
            &std::fs::read(test_plugin("faulty")).unwrap()[..1000],
        )
        .raw_file("core.wasm", b"\0asm\x01\0\0\0")
        .raw_file("Bad-Name.wasm", b"ignored")
        .start();
    let listed = plugins(&host);
    let by_id = |id: &str| {
        listed
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing: {listed:?}"))
    };
    assert_eq!(by_id("faulty")["status"], "ok");
    for id in ["notwasm", "truncated", "core"] {
        let entry = by_id(id);
        assert_eq!(entry["status"], "failed", "{id}");
        let message = entry["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("loading plugin {id}")),
            "{message}"
        );
    }
    assert!(!listed.iter().any(|p| p["id"] == "Bad-Name"));
    assert!(host.log().contains("Bad-Name.wasm"));

    let response = host.post("/hooks/faulty/ok");
    assert_eq!(response.status(), 200);
    let response = host.post("/hooks/notwasm");
    assert_eq!(response.status(), 404);
}
