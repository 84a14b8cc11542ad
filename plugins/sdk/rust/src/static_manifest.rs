//! The manifest a plugin declares as a constant ([`Plugin::MANIFEST`]) rather
//! than building it in `describe`: most plugins say the same things on every
//! load (a name, what they emit, how often to poll them), so they only write
//! those, and the SDK's default `describe` adds the crate's version and
//! description.
//!
//! [`Plugin::MANIFEST`]: super::Plugin::MANIFEST

use super::Manifest;

/// What a plugin says of itself, all known at compile time:
///
/// ```ignore
/// const MANIFEST: StaticManifest = StaticManifest::named("Acme").emits(&["acme.*"]);
/// ```
///
/// By default it emits nothing, is not polled and subscribes to nothing; the
/// methods add what it does, as [`Manifest`]'s own builder methods do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticManifest {
    name: &'static str,
    description: Option<&'static str>,
    emits: &'static [&'static str],
    poll_interval_seconds: Option<u32>,
    subscriptions: &'static [&'static str],
}

impl StaticManifest {
    /// A plugin called `name`, described by its crate's Cargo.toml
    /// `description`.
    pub const fn named(name: &'static str) -> Self {
        StaticManifest {
            name,
            description: None,
            emits: &[],
            poll_interval_seconds: None,
            subscriptions: &[],
        }
    }

    /// Described as `description` rather than by Cargo.toml's `description`.
    pub const fn description(self, description: &'static str) -> Self {
        StaticManifest {
            description: Some(description),
            ..self
        }
    }

    /// The event-kind patterns it emits (`github.push`, `github.*`).
    pub const fn emits(self, patterns: &'static [&'static str]) -> Self {
        StaticManifest {
            emits: patterns,
            ..self
        }
    }

    /// Asks to be polled every `seconds` unless the operator configures another
    /// interval.
    pub const fn polls_every(self, seconds: u32) -> Self {
        StaticManifest {
            poll_interval_seconds: Some(seconds),
            ..self
        }
    }

    /// The event-kind patterns whose events `on_event` gets (`github.push`,
    /// `stripe.invoice.*`).
    pub const fn subscribes_to(self, patterns: &'static [&'static str]) -> Self {
        StaticManifest {
            subscriptions: patterns,
            ..self
        }
    }

    /// The manifest `describe` returns: this one at `version`, described by
    /// its own description or else by `crate_description`.
    pub fn to_manifest(&self, version: &str, crate_description: &str) -> Manifest {
        let manifest = Manifest::new(
            self.name,
            version,
            self.description.unwrap_or(crate_description),
        )
        .emits(self.emits.iter().copied())
        .subscribes_to(self.subscriptions.iter().copied());
        match self.poll_interval_seconds {
            Some(seconds) => manifest.polls_every(seconds),
            None => manifest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_manifest_becomes_the_one_its_builder_would_make() {
        const DECLARED: StaticManifest = StaticManifest::named("Feed")
            .description("polls a feed")
            .emits(&["feed.item"])
            .polls_every(300)
            .subscribes_to(&["github.push", "stripe.*"]);
        let built = Manifest::new("Feed", "1.2.3", "polls a feed")
            .emits(["feed.item"])
            .polls_every(300)
            .subscribes_to(["github.push", "stripe.*"]);
        assert_eq!(
            format!("{:?}", DECLARED.to_manifest("1.2.3", "from Cargo.toml")),
            format!("{built:?}")
        );
    }

    #[test]
    fn without_a_description_the_crates_is_used_and_nothing_is_polled() {
        let manifest = StaticManifest::named("Acme")
            .emits(&["acme.*"])
            .to_manifest("0.1.0", "from Cargo.toml");
        assert_eq!(manifest.name, "Acme");
        assert_eq!(manifest.version, "0.1.0");
        assert_eq!(manifest.description, "from Cargo.toml");
        assert_eq!(manifest.emits, ["acme.*"]);
        assert_eq!(manifest.poll_interval_seconds, None);
        assert!(manifest.subscriptions.is_empty());
    }
}
