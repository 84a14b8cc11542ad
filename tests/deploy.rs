//! Deploy once, run everywhere, on one node with SQLite: `PUT /api/plugins/{id}`
//! and `hookhost deploy` make a component current at once, written atomically into
//! the plugins directory, without a failed request, and a component that does not
//! load changes nothing.

mod common;

use std::process::{Command, Output};

use common::traffic::SteadyTraffic;
use common::{
    client, output_text, plugin_in, sha256_hex, test_plugin, versioned_plugin, Host, HostSpec,
};
use serde_json::Value;

const TOKEN: &str = "deploy-test-token";

fn deploy(host: &Host, id: &str, bytes: &[u8], token: Option<&str>) -> (u16, Value) {
    let mut request = client()
        .put(host.url(&format!("/api/plugins/{id}")))
        .body(bytes.to_vec());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, body)
}

fn plugin_entry(host: &Host, id: &str, token: Option<&str>) -> Option<Value> {
    let mut request = client().get(host.url("/api/plugins"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    plugin_in(&request.send().unwrap().json().unwrap(), id)
}

/// The CLI exited with `code` and its stderr mentions `mentions`.
fn assert_failed(output: &std::process::Output, code: i32, mentions: &str) {
    let text = output_text(output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(mentions), "{text}");
}

/// Names in the plugins directory, sorted: a deploy leaves no temporary file.
fn plugin_dir_names(host: &Host) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(host.plugins_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn deploys_under_load_take_effect_at_once_and_fail_no_request() {
    let (v1, v2) = (versioned_plugin("v1"), versioned_plugin("v2"));
    let host = HostSpec::default().versioned_app().start();
    let traffic = SteadyTraffic::start(vec![host.url("/hooks/app")]);

    for round in 0..6 {
        let (bytes, answer_now, version) = if round % 2 == 0 {
            (&v2, "v2", "2.0.0")
        } else {
            (&v1, "v1", "1.0.0")
        };
        let (status, body) = deploy(&host, "app", bytes, None);
        assert_eq!(status, 200, "round {round}: {body}");
        assert_eq!(body["id"], "app", "{body}");
        assert_eq!(body["version"], version, "{body}");
        assert_eq!(body["sha256"], sha256_hex(bytes), "{body}");

        // Current as soon as the deploy has answered: no waiting for the watcher.
        assert_eq!(
            host.hook_answer("app").as_deref(),
            Some(answer_now),
            "round {round}"
        );
        let entry = plugin_entry(&host, "app", None).unwrap();
        assert_eq!(entry["sha256"], sha256_hex(bytes), "{entry}");
        assert_eq!(entry["status"], "ok", "{entry}");
        assert_eq!(
            &std::fs::read(host.plugins_dir().join("app.wasm")).unwrap(),
            bytes,
            "round {round}: the plugins directory holds the deployed bytes"
        );
    }
    let seen = traffic.stop_all_succeeded();
    assert!(seen.iter().any(|(_, body)| body == "v2"));
    assert_eq!(plugin_dir_names(&host), ["app.wasm"]);
    assert!(host.log().contains("plugin deployed"), "{}", host.log());
    eprintln!("{} requests across 6 deploys, all 2xx", seen.len());

    // Still the deployed version after a restart: it is the file that is loaded.
    let mut host = host;
    host.kill_and_restart();
    assert_eq!(host.hook_answer("app").as_deref(), Some("v1"));
}

#[test]
fn a_deploy_can_add_a_plugin() {
    let host = HostSpec::default().start();
    assert_eq!(host.hook_answer("late"), None);
    let v2 = versioned_plugin("v2");
    let (status, body) = deploy(&host, "late", &v2, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(host.hook_answer("late").as_deref(), Some("v2"));
    assert_eq!(
        plugin_entry(&host, "late", None).unwrap()["sha256"],
        sha256_hex(&v2)
    );
    assert_eq!(plugin_dir_names(&host), ["late.wasm"]);
}

#[test]
fn what_does_not_load_gets_400_and_changes_nothing() {
    let v1 = versioned_plugin("v1");
    let v2 = versioned_plugin("v2");
    let host = HostSpec::default().versioned_app().start();
    let before = plugin_entry(&host, "app", None).unwrap();
    let cases: [(&str, &str, Vec<u8>, &str); 5] = [
        (
            "truncated",
            "app",
            v2[..v2.len() / 2].to_vec(),
            "not a loadable WebAssembly component",
        ),
        (
            "not wasm",
            "app",
            b"#!/bin/sh\necho hi\n".to_vec(),
            "not a loadable WebAssembly component",
        ),
        (
            "empty",
            "app",
            Vec::new(),
            "not a loadable WebAssembly component",
        ),
        (
            "wrong world",
            "app",
            std::fs::read(test_plugin("wrong-world")).unwrap(),
            "does not export hookhost:plugin/guest@0.1.0",
        ),
        ("bad id", "App", v2.clone(), "is not a plugin id"),
    ];
    for (case, id, bytes, reason) in cases {
        let (status, body) = deploy(&host, id, &bytes, None);
        assert_eq!(status, 400, "{case}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(reason), "{case}: {message}");
        assert!(
            ["invalid_component", "bad_request"].contains(&body["error"].as_str().unwrap()),
            "{case}: {body}"
        );

        let now = plugin_entry(&host, "app", None).unwrap();
        assert_eq!(now["status"], "ok", "{case}: no load error recorded: {now}");
        assert_eq!(now["sha256"], before["sha256"], "{case}");
        assert_eq!(
            now["loaded_at"], before["loaded_at"],
            "{case}: not reloaded"
        );
        assert_eq!(host.hook_answer("app").as_deref(), Some("v1"), "{case}");
        assert_eq!(
            std::fs::read(host.plugins_dir().join("app.wasm")).unwrap(),
            v1,
            "{case}: the file is untouched"
        );
        assert_eq!(plugin_dir_names(&host), ["app.wasm"], "{case}");
    }
}

#[test]
fn deploying_needs_the_admin_token() {
    let host = HostSpec::default()
        .versioned_app()
        .admin_token(TOKEN)
        .start();
    let v2 = versioned_plugin("v2");
    for token in [None, Some("wrong")] {
        let (status, body) = deploy(&host, "app", &v2, token);
        assert_eq!(status, 401, "{token:?}: {body}");
    }
    assert_eq!(host.hook_answer("app").as_deref(), Some("v1"));
    assert_eq!(
        std::fs::read(host.plugins_dir().join("app.wasm")).unwrap(),
        versioned_plugin("v1")
    );

    let (status, body) = deploy(&host, "app", &v2, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(host.hook_answer("app").as_deref(), Some("v2"));
}

fn hookhost_cli(args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookhost"));
    command
        .args(args)
        .env_remove("HOOKHOST_ADMIN_TOKEN")
        .env_remove("HOOKHOST_URL")
        .env("RUST_LOG", "warn");
    if let Some(token) = token {
        command.env("HOOKHOST_ADMIN_TOKEN", token);
    }
    command.output().expect("running hookhost")
}

#[test]
fn the_cli_deploys_a_file_as_its_stem_or_as_id() {
    let host = HostSpec::default()
        .versioned_app()
        .admin_token(TOKEN)
        .start();
    let url = host.base_url.as_str();
    let v2_path = test_plugin("versioned-v2");
    let v2 = std::fs::read(&v2_path).unwrap();
    let files = tempfile::tempdir().unwrap();
    let app_file = files.path().join("app.wasm");
    std::fs::copy(&v2_path, &app_file).unwrap();
    let app_file = app_file.to_str().unwrap();

    // Without the token: exit 4, nothing changed.
    let refused = hookhost_cli(&["deploy", app_file, "--url", url], None);
    assert_eq!(refused.status.code(), Some(4), "{}", output_text(&refused));
    assert_eq!(host.hook_answer("app").as_deref(), Some("v1"));

    // The id is the file stem; the output names what the host now runs.
    let deployed = hookhost_cli(&["deploy", app_file, "--url", url], Some(TOKEN));
    assert!(deployed.status.success(), "{}", output_text(&deployed));
    let stdout = String::from_utf8_lossy(&deployed.stdout);
    assert!(stdout.contains("deployed app"), "{stdout}");
    assert!(stdout.contains("2.0.0"), "{stdout}");
    assert!(stdout.contains(&sha256_hex(&v2)), "{stdout}");
    assert_eq!(host.hook_answer("app").as_deref(), Some("v2"));

    // --id, with the host's JSON.
    let as_json = hookhost_cli(
        &[
            "deploy",
            v2_path.to_str().unwrap(),
            "--id",
            "other",
            "--url",
            url,
            "--json",
        ],
        Some(TOKEN),
    );
    assert!(as_json.status.success(), "{}", output_text(&as_json));
    let json: Value = serde_json::from_slice(&as_json.stdout).unwrap();
    assert_eq!(json["id"], "other", "{json}");
    assert_eq!(json["sha256"], sha256_hex(&v2), "{json}");
    assert_eq!(host.hook_answer("other").as_deref(), Some("v2"));

    // A component that does not load: exit 1 with the host's reason.
    let broken = hookhost_cli(
        &[
            "deploy",
            test_plugin("wrong-world").to_str().unwrap(),
            "--id",
            "app",
            "--url",
            url,
        ],
        Some(TOKEN),
    );
    assert_failed(&broken, 1, "hookhost:plugin/guest@0.1.0");
    assert_eq!(host.hook_answer("app").as_deref(), Some("v2"));

    // A file whose name is no plugin id, without --id: a usage error.
    let badly_named = files.path().join("My Plugin.wasm");
    std::fs::copy(&v2_path, &badly_named).unwrap();
    let usage = hookhost_cli(
        &["deploy", badly_named.to_str().unwrap(), "--url", url],
        Some(TOKEN),
    );
    assert_failed(&usage, 2, "--id");
    let missing = hookhost_cli(
        &["deploy", "/nonexistent/x.wasm", "--url", url],
        Some(TOKEN),
    );
    assert_eq!(missing.status.code(), Some(1), "{}", output_text(&missing));
}
