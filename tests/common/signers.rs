//! Signatures made by the providers' own libraries (Twilio's `RequestValidator`,
//! PyNaCl's Ed25519, `standardwebhooks`), not by this repository's code: each
//! `tests/signers/<name>.py` script runs in the venv `scripts/toolchains/signers`
//! installs and prints what the test sends.

use std::io::Write;
use std::process::{Command, Stdio};

use super::repo_root;

/// Runs `tests/signers/<script>.py ARGS...` with `stdin` as its standard input
/// (usually the request body) and returns its standard output, trimmed. Panics,
/// naming the script and its stderr, when it fails or the venv is missing.
pub fn sign(script: &str, args: &[&str], stdin: &[u8]) -> String {
    let root = repo_root();
    let python = root.join("target/toolchains/signers/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/toolchains/signers",
        python.display()
    );
    let path = root.join("tests/signers").join(format!("{script}.py"));
    let mut child = Command::new(&python)
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin)
        .unwrap_or_else(|e| panic!("writing to {}: {e}", path.display()));
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
