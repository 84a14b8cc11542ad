//! Event-kind patterns, as a manifest lists them: `subscriptions` (which events a
//! handler plugin gets) and `emits` (which kinds a plugin may emit at all; the host
//! refuses the rest, see `loaded`).

use crate::store::kind_pattern::KindPattern;

/// Whether `pattern` covers `kind`, by the one rule for kind patterns
/// (`store::kind_pattern`, which the events API's `kind` filter uses too).
pub fn matches(pattern: &str, kind: &str) -> bool {
    KindPattern::parse(pattern).matches(kind)
}

/// Whether any of `patterns` covers `kind`; an empty list covers nothing.
pub fn covers(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|pattern| matches(pattern, kind))
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn a_list_covers_what_any_of_its_patterns_covers_and_an_empty_one_nothing() {
        let emits = ["github.*".to_string(), "ci.done".to_string()];
        assert!(covers(&emits, "github.push"));
        assert!(covers(&emits, "ci.done"));
        assert!(!covers(&emits, "ci.done.x"));
        assert!(!covers(&emits, "slack.message"));
        assert!(!covers(&[], "github.push"));
        // No pattern covers every kind: `*` alone is not a wildcard.
        assert!(!covers(&["*".to_string()], "github.push"));
    }
}
