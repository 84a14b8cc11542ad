//! Hot reload: plugins appear, change and disappear with the files in the plugins
//! directory, without a failed request, and bad files never replace good ones.

mod common;

use std::time::Duration;

use common::traffic::SteadyTraffic;
use common::{eventually, test_plugin, versioned_plugin, HostSpec};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn replacing_a_plugin_20_times_under_load_fails_no_request() {
    let v1 = versioned_plugin("v1");
    let v2 = versioned_plugin("v2");
    let host = HostSpec::default().versioned_app().start();
    let url = host.url("/hooks/app");

    let traffic = SteadyTraffic::start(vec![url]);

    let path = host.plugins_dir().join("app.wasm");
    for round in 0..20 {
        let (bytes, expected) = if round % 2 == 0 {
            (&v2, "v2")
        } else {
            (&v1, "v1")
        };
        if round % 4 < 2 {
            // In place: truncate and write, as `cp` does; the watcher sees partial files.
            std::fs::write(&path, bytes).unwrap();
        } else {
            host.replace_plugin_file("app", bytes);
        }
        let since = traffic.count();
        eventually(&format!("round {round} to answer {expected}"), WAIT, || {
            traffic.answered_since(since, expected)
        });
    }
    let seen = traffic.stop_all_succeeded();
    assert!(seen.iter().any(|(_, body)| body == "v1"));
    assert!(seen.iter().any(|(_, body)| body == "v2"));
    eprintln!("{} requests across 20 reloads, all 2xx", seen.len());
}

#[test]
fn bad_files_leave_the_previous_version_serving() {
    let host = HostSpec::default().versioned_app().start();
    let path = host.plugins_dir().join("app.wasm");
    let v2 = versioned_plugin("v2");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "truncated",
            v2[..v2.len() / 2].to_vec(),
            "not a loadable WebAssembly component",
        ),
        (
            "not wasm",
            b"#!/bin/sh\necho hi\n".to_vec(),
            "not a loadable WebAssembly component",
        ),
        (
            "wrong world",
            std::fs::read(test_plugin("wrong-world")).unwrap(),
            "does not export hookhost:plugin/guest@0.1.0",
        ),
    ];
    for (case, bytes, reason) in cases {
        std::fs::write(&path, &bytes).unwrap();
        eventually(&format!("{case} to be reported"), WAIT, || {
            host.plugin_listing("app")
                .is_some_and(|s| s["status"] == "failed")
        });
        let entry = host.plugin_listing("app").unwrap();
        let message = entry["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{case}: {message}");
        assert_eq!(
            entry["version"], "1.0.0",
            "{case}: the old version must stay loaded"
        );
        assert_eq!(host.hook_answer("app").as_deref(), Some("v1"), "{case}");

        // Back to a good file clears the failure.
        std::fs::write(&path, versioned_plugin("v1")).unwrap();
        eventually(&format!("recovery after {case}"), WAIT, || {
            host.plugin_listing("app")
                .is_some_and(|s| s["status"] == "ok")
        });
    }
    assert!(host.log().contains("the previous version keeps serving"));
}

#[test]
fn new_files_go_live_and_deleted_files_unload() {
    let host = HostSpec::default().start();
    assert_eq!(host.hook_answer("late"), None);

    std::fs::copy(
        test_plugin("versioned-v2"),
        host.plugins_dir().join("late.wasm"),
    )
    .unwrap();
    eventually("a new plugin file to go live", WAIT, || {
        host.hook_answer("late").as_deref() == Some("v2")
    });

    std::fs::remove_file(host.plugins_dir().join("late.wasm")).unwrap();
    eventually("a deleted plugin to answer 404", WAIT, || {
        host.post("/hooks/late").status() == 404
    });
    assert!(host.plugin_listing("late").is_none());
}

#[test]
fn restarts_load_from_the_compiled_cache_and_rebuild_corrupt_entries() {
    let mut host = HostSpec::default().versioned_app().start();
    assert!(host.log().contains("compiled=true"), "{}", host.log());
    let entries: Vec<_> = std::fs::read_dir(host.data_dir().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");

    host.kill_and_restart();
    assert!(host.log().contains("compiled=false"), "{}", host.log());
    assert_eq!(host.hook_answer("app").as_deref(), Some("v1"));

    // Flip a byte in the middle of the entry: the checksum must catch it.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entries[0], &bytes).unwrap();
    host.kill_and_restart();
    let log = host.log();
    assert!(
        log.contains("discarding compiled-component cache entry"),
        "{log}"
    );
    assert!(log.contains("checksum mismatch"), "{log}");
    assert_eq!(host.hook_answer("app").as_deref(), Some("v1"));
    assert_eq!(log.matches("compiled=true").count(), 2, "{log}");
}
