//! Event-kind patterns, as a manifest lists them: `subscriptions` (which events a
//! handler plugin gets) and `emits` (which kinds a plugin may emit at all; the host
//! refuses the rest, see `loaded`).

/// Whether `pattern` (an exact kind such as `github.push`, or a prefix ending in
/// `.*` such as `stripe.invoice.*`) covers `kind`. A prefix pattern covers kinds
/// below the prefix only: `stripe.invoice.*` covers `stripe.invoice.paid` but not
/// `stripe.invoice` or `stripe.invoices.x`.
pub fn matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => {
            kind.len() > prefix.len() && kind.starts_with(prefix)
        }
        _ => pattern == kind,
    }
}

/// Whether any of `patterns` covers `kind`; an empty list covers nothing.
pub fn covers(patterns: &[String], kind: &str) -> bool {
    patterns.iter().any(|pattern| matches(pattern, kind))
}

#[cfg(test)]
mod tests {
    use super::{covers, matches};

    #[test]
    fn exact_and_prefix_patterns() {
        assert!(matches("github.push", "github.push"));
        assert!(!matches("github.push", "github.push.x"));
        assert!(!matches("github.push", "github.pus"));
        assert!(matches("stripe.invoice.*", "stripe.invoice.paid"));
        assert!(matches("stripe.invoice.*", "stripe.invoice.payment.failed"));
        assert!(!matches("stripe.invoice.*", "stripe.invoice"));
        assert!(!matches("stripe.invoice.*", "stripe.invoice."));
        assert!(!matches("stripe.invoice.*", "stripe.invoices.paid"));
        // A `*` that does not follow a dot is not a wildcard.
        assert!(!matches("stripe*", "stripe.x"));
        assert!(matches("stripe*", "stripe*"));
    }

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
