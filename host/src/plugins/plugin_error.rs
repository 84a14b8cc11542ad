//! The one name for each way a plugin can refuse a call (its own `plugin-error`),
//! spelled as the WIT spells the case: a poll's and a delivery's `last_error` and
//! the logs of webhooks, polls and deliveries all say `bad-request: <message>`.
//! A call that did not return (trap, timeout, busy) is a `CallError`, named by its
//! `Display` and answered over HTTP by `http::call_failure`.

use crate::plugins::bindings::PluginError;

/// The WIT name of `error`'s case, and the plugin's own message.
pub fn reason(error: &PluginError) -> (&'static str, &str) {
    match error {
        PluginError::Unauthorized(message) => ("unauthorized", message),
        PluginError::BadRequest(message) => ("bad-request", message),
        PluginError::Unavailable(message) => ("unavailable", message),
        PluginError::Internal(message) => ("internal", message),
    }
}

/// `<case>: <message>`, as a `last_error` records it.
pub fn describe(error: &PluginError) -> String {
    let (case, message) = reason(error);
    format!("{case}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_is_named_as_the_wit_names_it() {
        let cases = [
            (PluginError::Unauthorized("a".into()), "unauthorized: a"),
            (PluginError::BadRequest("b".into()), "bad-request: b"),
            (PluginError::Unavailable("c".into()), "unavailable: c"),
            (PluginError::Internal("d".into()), "internal: d"),
        ];
        for (error, described) in cases {
            assert_eq!(describe(&error), described);
        }
    }
}
