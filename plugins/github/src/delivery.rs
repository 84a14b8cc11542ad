//! What the `github` plugin reads of a delivery's body, and the event name and
//! subject it derives from it. `host/examples/native_github.rs` compiles this same
//! file, so the benchmark's native baseline does exactly the plugin's work.

use serde::Deserialize;
use std::borrow::Cow;

/// The two fields of a delivery the event is named by, typed as GitHub documents
/// them. Everything else is skipped by the parser (which still checks that it is
/// JSON) rather than built into a tree: the body itself is the payload, byte for
/// byte.
#[derive(Deserialize)]
pub struct Delivery<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    repository: Option<Repository<'a>>,
}

#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(borrow)]
    full_name: Option<Cow<'a, str>>,
}

impl Delivery<'_> {
    /// `github.<event>[.<action>]`, for `event` from `X-GitHub-Event`.
    pub fn kind(&self, event: &str) -> String {
        match &self.action {
            Some(action) => format!("github.{event}.{action}"),
            None => format!("github.{event}"),
        }
    }

    /// The repository's full name, when the delivery is about one.
    pub fn subject(&self) -> Option<String> {
        self.repository
            .as_ref()
            .and_then(|repository| repository.full_name.as_deref())
            .map(String::from)
    }
}
