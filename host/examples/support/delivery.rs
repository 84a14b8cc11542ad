//! The GitHub push delivery the webhook benchmarks send (`loadgen`, `call_loop`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A GitHub push delivery of ~1.4 KiB, the size of a small real one.
pub fn push_body() -> Vec<u8> {
    let commits: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            serde_json::json!({
                "id": format!("{:040x}", i + 1),
                "message": "Fix the widget frobnicator when the gizmo is absent",
                "author": { "name": "Ada", "email": "ada@example.com" },
                "added": [], "removed": [], "modified": ["src/widget.rs"],
            })
        })
        .collect();
    let body = serde_json::json!({
        "ref": "refs/heads/main",
        "before": format!("{:040x}", 0),
        "after": format!("{:040x}", 3),
        "repository": { "id": 1, "full_name": "acme/widgets", "private": false },
        "pusher": { "name": "ada", "email": "ada@example.com" },
        "sender": { "login": "ada", "id": 7 },
        "commits": commits,
    });
    body.to_string().into_bytes()
}

/// `X-Hub-Signature-256` for `body` under `secret`: `sha256=<hex HMAC-SHA256>`.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
