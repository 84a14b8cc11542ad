//! Which handler plugins get an event: manifest `subscriptions` patterns matched
//! against event kinds.

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

#[cfg(test)]
mod tests {
    use super::matches;

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
}
