//! The plugin-id rule, in one place. A plugin id is the file stem of
//! `<plugins_dir>/<id>.wasm`; it appears in URLs, logs, metrics labels and config
//! keys, so it is kept to a safe alphabet.

/// The rule, as shown in error messages.
pub const PLUGIN_ID_PATTERN: &str = "[a-z0-9][a-z0-9_-]{0,63}";

/// Whether `id` matches `PLUGIN_ID_PATTERN`.
pub fn is_valid_plugin_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Why `id` is refused: `"App" is not a plugin id: it must match [a-z0-9][a-z0-9_-]{0,63}`.
pub fn not_a_plugin_id(id: &str) -> String {
    format!("{id:?} is not a plugin id: it must match {PLUGIN_ID_PATTERN}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_ids_follow_the_documented_alphabet() {
        for ok in [
            "github",
            "a",
            "0x",
            "standard-rust",
            "my_plugin",
            &"a".repeat(64),
        ] {
            assert!(is_valid_plugin_id(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "GitHub",
            "a.b",
            "a/b",
            "ü",
            &"a".repeat(65),
            "a b",
        ] {
            assert!(!is_valid_plugin_id(bad), "{bad}");
        }
    }
}
