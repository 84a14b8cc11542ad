//! `hookhost check` and `hookhost new`, run as a user would: the real binary, real
//! components, and for `new` the real one-command build of each scaffold.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{example_plugin, repo_root};

fn hookhost(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running hookhost")
}

fn check(file: &Path) -> Output {
    hookhost(&["check".as_ref(), file.as_os_str()])
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn check_prints_the_manifest_of_a_good_plugin() {
    let output = check(&example_plugin("standard-c"));
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Standard Webhooks (C)"), "{stdout}");
    assert!(stdout.contains("standard.webhook"), "{stdout}");
}

#[test]
fn check_says_what_is_wrong_with_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "notwasm",
            b"this is not wasm",
            "not a loadable WebAssembly component",
        ),
        (
            "core",
            b"\0asm\x01\0\0\0",
            "not a loadable WebAssembly component",
        ),
        // An empty component: valid, but it exports nothing.
        (
            "empty",
            b"\0asm\x0d\0\x01\0",
            "does not export hookhost:plugin/guest@0.1.0",
        ),
    ];
    for (name, bytes, expected) in cases {
        let file = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&file, bytes).unwrap();
        let output = check(&file);
        assert!(!output.status.success(), "{name}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("plugin {name}")),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
    let output = check(&dir.path().join("missing.wasm"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("reading"));
}

/// `hookhost new`, then the project's one build command, then `hookhost check`.
fn scaffold_builds_and_checks(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let id = format!("hello-{lang}");
    let output = hookhost(&[
        "new".as_ref(),
        id.as_ref(),
        "--lang".as_ref(),
        lang.as_ref(),
        "--dir".as_ref(),
        project.as_os_str(),
    ]);
    assert!(output.status.success(), "new: {}", text(&output));

    // Through sh rather than executed directly: another test thread forking while
    // this file was still open for writing would make exec fail with ETXTBSY.
    let build = Command::new("sh")
        .arg(project.join("build.sh"))
        .env("HOOKHOST_REPO", repo_root())
        .output()
        .expect("running build.sh");
    assert!(build.status.success(), "build.sh: {}", text(&build));

    let output = check(&project.join(format!("{id}.wasm")));
    assert!(output.status.success(), "check: {}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("emits:         {id}.*")),
        "{stdout}"
    );
}

#[test]
fn new_rust_plugin_builds_and_checks() {
    scaffold_builds_and_checks("rust");
}

#[test]
fn new_python_plugin_builds_and_checks() {
    scaffold_builds_and_checks("python");
}

#[test]
fn new_js_plugin_builds_and_checks() {
    scaffold_builds_and_checks("js");
}

#[test]
fn new_c_plugin_builds_and_checks() {
    scaffold_builds_and_checks("c");
}

#[test]
fn new_go_plugin_builds_and_checks() {
    scaffold_builds_and_checks("go");
}

#[test]
fn a_plugin_importing_what_the_host_lacks_is_named_and_the_others_serve() {
    let greedy = common::test_plugin("greedy");
    let output = check(&greedy);
    assert!(!output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("plugin greedy"), "{stderr}");
    assert!(
        stderr.contains("imports that hookhost does not provide"),
        "{stderr}"
    );
    assert!(stderr.contains("test:greedy/secrets"), "{stderr}");

    let host = common::HostSpec::default()
        .plugin("greedy", greedy)
        .plugin("faulty", common::test_plugin("faulty"))
        .start();
    let listed: serde_json::Value = common::client()
        .get(host.url("/api/plugins"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let entry = |id: &str| {
        listed["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {listed}"))
    };
    assert_eq!(entry("greedy")["status"], "failed", "{listed}");
    assert!(entry("greedy")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("test:greedy/secrets"));
    assert_eq!(entry("faulty")["status"], "ok", "{listed}");
    let response = common::client()
        .post(host.url("/hooks/faulty/ok"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
}
