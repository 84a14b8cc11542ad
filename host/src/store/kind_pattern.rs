//! Event-kind patterns, the one rule for `prefix.*` wherever a kind is matched:
//! manifests' `subscriptions` and `emits` (see `subscriptions`) and the `kind`
//! filter of the events API (see `sql::reads`, which says it in SQL).
//!
//! An exact kind such as `github.push` covers itself. A prefix ending in `.*`
//! such as `stripe.invoice.*` covers the kinds below the prefix only:
//! `stripe.invoice.paid` but not `stripe.invoice`, `stripe.invoice.` or
//! `stripe.invoices.x`. Matching is byte for byte (case counts), and a `*` that
//! does not follow a dot is an ordinary character.
//!
//! It depends on nothing, so any module may use it.

/// A parsed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindPattern<'a> {
    Exact(&'a str),
    /// The kinds that start with this prefix (which ends in a dot) and go on.
    Below(&'a str),
}

impl<'a> KindPattern<'a> {
    pub fn parse(pattern: &'a str) -> Self {
        match pattern.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('.') => KindPattern::Below(prefix),
            _ => KindPattern::Exact(pattern),
        }
    }

    pub fn matches(self, kind: &str) -> bool {
        match self {
            KindPattern::Exact(exact) => kind == exact,
            KindPattern::Below(prefix) => kind.len() > prefix.len() && kind.starts_with(prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KindPattern;

    fn matches(pattern: &str, kind: &str) -> bool {
        KindPattern::parse(pattern).matches(kind)
    }

    #[test]
    fn exact_and_prefix_patterns() {
        assert!(matches("github.push", "github.push"));
        assert!(!matches("github.push", "github.push.x"));
        assert!(!matches("github.push", "GitHub.push"));
        assert!(matches("stripe.invoice.*", "stripe.invoice.paid"));
        assert!(matches("stripe.invoice.*", "stripe.invoice.payment.failed"));
        assert!(!matches("stripe.invoice.*", "stripe.invoice"));
        assert!(!matches("stripe.invoice.*", "stripe.invoice."));
        assert!(!matches("stripe.invoice.*", "stripe.invoices.paid"));
        assert!(!matches("stripe.invoice.*", "Stripe.invoice.paid"));
        assert!(!matches("stripe*", "stripe.x"));
        assert!(matches("stripe*", "stripe*"));
        assert!(!matches("*", "github.push"));
        assert_eq!(KindPattern::parse("a.*"), KindPattern::Below("a."));
        assert_eq!(KindPattern::parse("a*"), KindPattern::Exact("a*"));
    }
}
