//! `hookhost check` and `hookhost new`, run as a user would: the real binary, real
//! components, and for `new` the real one-command build of each scaffold.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{example_plugin, output_text, repo_root};

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

#[test]
fn check_prints_the_manifest_of_a_good_plugin() {
    let output = check(&example_plugin("standard-c"));
    assert!(output.status.success(), "{}", output_text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Standard Webhooks (C)"), "{stdout}");
    assert!(stdout.contains("standard.webhook"), "{stdout}");
    assert!(stdout.contains("memory_init:   cow (auto)"), "{stdout}");
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
        assert!(!output.status.success(), "{name}: {}", output_text(&output));
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
/// `hookhost new` in `lang`, built with its `build.sh` and checked. With `contract`
/// (`"0.1.0"`), the project's `wit/plugin.wit` is first replaced by that frozen
/// version, as in a project made before 0.2.0: the SDK must still build it.
fn scaffold_builds_and_checks_on(lang: &str, contract: &str) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    // Its own id per contract: the build dir (target/build/<id>) is per id.
    let id = format!("hello-{lang}-{}", contract.replace('.', "-"));
    let output = hookhost(&[
        "new".as_ref(),
        id.as_ref(),
        "--lang".as_ref(),
        lang.as_ref(),
        "--dir".as_ref(),
        project.as_os_str(),
    ]);
    assert!(output.status.success(), "new: {}", output_text(&output));
    if contract != "0.2.0" {
        as_made_for(&project, contract);
    }

    // Through sh rather than executed directly: another test thread forking while
    // this file was still open for writing would make exec fail with ETXTBSY.
    let build = Command::new("sh")
        .arg(project.join("build.sh"))
        .env("HOOKHOST_REPO", repo_root())
        .output()
        .expect("running build.sh");
    assert!(build.status.success(), "build.sh: {}", output_text(&build));

    let output = check(&project.join(format!("{id}.wasm")));
    assert!(output.status.success(), "check: {}", output_text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("emits:         {id}.*")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("wit:           hookhost:plugin@{contract}")),
        "{stdout}"
    );
}

/// Turns a fresh project into one made when `contract` was the newest: its
/// `wit/plugin.wit` is that frozen version and its sources import that version's
/// interfaces (the JS template names them).
fn as_made_for(project: &Path, contract: &str) {
    std::fs::copy(
        repo_root().join(format!("wit/v{contract}/plugin.wit")),
        project.join("wit/plugin.wit"),
    )
    .unwrap();
    for entry in std::fs::read_dir(project).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "js") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text.replace("@0.2.0\"", &format!("@{contract}\""))).unwrap();
        }
    }
}

/// `hookhost new` targets the newest contract.
fn scaffold_builds_and_checks(lang: &str) {
    scaffold_builds_and_checks_on(lang, "0.2.0");
}

#[test]
fn projects_on_the_frozen_0_1_0_contract_still_build_with_the_sdks() {
    for lang in ["python", "js", "c", "go"] {
        scaffold_builds_and_checks_on(lang, "0.1.0");
    }
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
    assert!(!output.status.success(), "{}", output_text(&output));
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
    let listed: serde_json::Value = host.get_json("/api/plugins");
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
    let response = host.post("/hooks/faulty/ok");
    assert_eq!(response.status(), 200);
}

/// Runs `hookhost ARGS` with `env` and without any inherited HOOKHOST_* settings.
fn remote(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args(args)
        .env_remove("HOOKHOST_URL")
        .env_remove("HOOKHOST_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("running hookhost")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn events_and_plugins_commands_read_and_replay_through_the_api() {
    let host = common::HostSpec::default()
        .plugin("faulty", common::test_plugin("faulty"))
        .start();
    let base_url = host.base_url.clone();
    let url = base_url.as_str();
    for (id, kind) in [("first", "faulty.alpha"), ("second", "faulty.beta")] {
        let response = common::client()
            .post(host.url("/hooks/faulty/event"))
            .header("x-id", id)
            .header("x-kind", kind)
            .header("x-trace", "trace-me")
            .body(format!(r#"{{"name":"{id}"}}"#))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let list = remote(&["events", "list", "--url", url], &[]);
    assert!(list.status.success(), "{}", output_text(&list));
    let table = stdout(&list);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID "), "{table}");
    assert!(lines[0].contains("KIND"), "{table}");
    // Newest first.
    assert!(
        lines[1].contains("second") && lines[1].contains("faulty.beta"),
        "{table}"
    );
    assert!(
        lines[2].contains("first") && lines[2].contains("faulty.alpha"),
        "{table}"
    );
    assert_eq!(lines.len(), 3, "{table}");

    // Filters and paging go to the API; the URL can come from the environment.
    let filtered = remote(
        &["events", "list", "--kind", "faulty.alpha"],
        &[("HOOKHOST_URL", url)],
    );
    assert!(filtered.status.success(), "{}", output_text(&filtered));
    assert!(stdout(&filtered).contains("first"));
    assert!(!stdout(&filtered).contains("second"));
    let page = remote(
        &["events", "list", "--url", url, "--limit", "1", "--json"],
        &[],
    );
    assert!(page.status.success(), "{}", output_text(&page));
    let page: serde_json::Value = serde_json::from_slice(&page.stdout).unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    let next = page["next"].as_str().unwrap().to_string();
    let rest = remote(
        &["events", "list", "--url", url, "--after", &next, "--json"],
        &[],
    );
    let rest: serde_json::Value = serde_json::from_slice(&rest.stdout).unwrap();
    assert_eq!(rest["events"][0]["event_id"], "first", "{rest}");
    let first_id = rest["events"][0]["id"].as_str().unwrap().to_string();
    let more = remote(&["events", "list", "--url", url, "--limit", "1"], &[]);
    assert!(
        String::from_utf8_lossy(&more.stderr).contains(&format!("--after {next}")),
        "{}",
        output_text(&more)
    );

    let show = remote(&["events", "show", &first_id, "--url", url], &[]);
    assert!(show.status.success(), "{}", output_text(&show));
    let shown = stdout(&show);
    assert!(shown.contains("faulty.alpha"), "{shown}");
    assert!(shown.contains(r#""name": "first""#), "{shown}");
    assert!(shown.contains("x-trace: trace-me"), "{shown}");
    assert!(shown.contains("POST /event"), "{shown}");

    let replay = remote(&["events", "replay", &first_id, "--url", url], &[]);
    assert!(replay.status.success(), "{}", output_text(&replay));
    assert!(
        stdout(&replay).contains("HTTP 200"),
        "{}",
        output_text(&replay)
    );
    assert!(
        stdout(&replay).contains("faulty.alpha"),
        "{}",
        output_text(&replay)
    );
    let replay = remote(
        &["events", "replay", &first_id, "--url", url, "--json"],
        &[],
    );
    let replay: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(replay["replay"]["status"], 200, "{replay}");

    let plugins = remote(&["plugins", "list", "--url", url], &[]);
    assert!(plugins.status.success(), "{}", output_text(&plugins));
    let listed = stdout(&plugins);
    let faulty = listed
        .lines()
        .find(|l| l.starts_with("faulty "))
        .unwrap_or("");
    assert!(
        faulty.contains(" ok ") && faulty.contains("Faulty"),
        "{listed}"
    );

    // Exit codes: 3 not found, 2 usage, 1 unreachable.
    let missing = remote(&["events", "show", "999999", "--url", url], &[]);
    assert_eq!(missing.status.code(), Some(3), "{}", output_text(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no event with id 999999"));
    let missing = remote(&["events", "replay", "999999", "--url", url], &[]);
    assert_eq!(missing.status.code(), Some(3), "{}", output_text(&missing));
    let usage = remote(&["events", "show", "not-a-number", "--url", url], &[]);
    assert_eq!(usage.status.code(), Some(2), "{}", output_text(&usage));
    let usage = remote(&["events", "list", "--limit", "0", "--url", url], &[]);
    assert_eq!(usage.status.code(), Some(1), "{}", output_text(&usage));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("limit must be between"));
    drop(host);
    let unreachable = remote(&["plugins", "list", "--url", url], &[]);
    assert_eq!(
        unreachable.status.code(),
        Some(1),
        "{}",
        output_text(&unreachable)
    );
    assert!(
        String::from_utf8_lossy(&unreachable.stderr).contains("could not reach hookhost"),
        "{}",
        output_text(&unreachable)
    );
}

#[test]
fn the_admin_token_is_sent_as_a_bearer_and_401_exits_4() {
    // A real HTTP server on loopback that refuses every request as the admin API
    // does without the right token, and reports what it was sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let body = r#"{"error":"unauthorized","message":"an admin token is required"}"#;
        write!(
            &stream,
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        head
    });
    let output = remote(
        &["plugins", "list", "--url", &url],
        &[("HOOKHOST_ADMIN_TOKEN", "s3cret-token")],
    );
    assert_eq!(output.status.code(), Some(4), "{}", output_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("an admin token is required"), "{stderr}");
    let head = server.join().unwrap().to_lowercase();
    assert!(head.starts_with("get /api/plugins "), "{head}");
    assert!(
        head.contains("authorization: bearer s3cret-token\r\n"),
        "{head}"
    );
}

#[test]
fn remote_commands_document_their_exit_codes_and_environment() {
    for args in [
        &["events", "--help"][..],
        &["events", "list", "--help"],
        &["events", "show", "--help"],
        &["events", "replay", "--help"],
        &["plugins", "list", "--help"],
    ] {
        let output = remote(args, &[]);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            output_text(&output)
        );
        let help = stdout(&output);
        for expected in [
            "HOOKHOST_URL",
            "HOOKHOST_ADMIN_TOKEN",
            "--json",
            "4  unauthorized",
        ] {
            assert!(
                help.contains(expected),
                "{args:?} --help lacks {expected}:\n{help}"
            );
        }
    }
}
