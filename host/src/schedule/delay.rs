//! When a plugin is polled next. The interval is the manifest's
//! `poll-interval-seconds` unless `[plugins.<id>] poll_interval` overrides it; each
//! wait gets up to `JITTER_FRACTION` more at random, so plugins started together
//! drift apart; a plugin's `next-poll-seconds` hint replaces one wait; after a
//! failure the cursor stays and the wait doubles per consecutive failure up to
//! `MAX_BACKOFF` (or the interval, if longer; `backoff`), and one success resets
//! it. The first wait after a start or a takeover continues from the saved poll.

use std::time::Duration;

use crate::backoff;
use crate::plugins::loaded::LoadedPlugin;

/// The longest wait after failures, unless the interval itself is longer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Up to this fraction of a wait is added at random.
pub const JITTER_FRACTION: f64 = 0.1;
/// The first poll after start or load comes within this much (or a tenth of the
/// interval, if less) of when it is due, so that a restart does not poll every
/// plugin in the same instant.
const START_SPREAD: Duration = Duration::from_secs(5);

/// How the last poll ended, as far as the next wait is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Success {
        hint_seconds: Option<u32>,
    },
    /// `consecutive` failures so far, from 1.
    Failure {
        consecutive: u32,
    },
}

/// The wait before the next poll. `random` is in `[0, 1)`.
pub fn next_delay(interval: Duration, ended: Ended, random: f64) -> Duration {
    match ended {
        Ended::Success {
            hint_seconds: Some(seconds),
        } => Duration::from_secs(seconds.into()),
        Ended::Success { hint_seconds: None } => {
            backoff::added_jitter(interval, JITTER_FRACTION, random)
        }
        // Never sooner than the interval: a failing provider is asked no more
        // often than a healthy one.
        Ended::Failure { consecutive } => {
            let doubled = backoff::doubled(interval, consecutive, interval.max(MAX_BACKOFF));
            backoff::added_jitter(doubled, JITTER_FRACTION, random)
        }
    }
}

/// The wait before the first poll after start, load or taking the lease, when
/// the saved cursor's poll was `since_saved` ago (`None`: never, or unknown): the
/// rest of the interval since then, so that neither a restart nor a takeover polls
/// early, plus a spread of up to `START_SPREAD` (or a tenth of the interval), so
/// that many plugins due at once are not polled in the same instant. `random` is
/// in `[0, 1)`.
pub fn first_wait(interval: Duration, since_saved: Option<Duration>, random: f64) -> Duration {
    let spread = START_SPREAD
        .min(interval / 10)
        .mul_f64(random.clamp(0.0, 1.0));
    interval.saturating_sub(since_saved.unwrap_or(interval)) + spread
}

/// How often `plugin` polls, or `None` when it does not.
pub fn interval_for(plugin: &LoadedPlugin, configured: Option<Duration>) -> Option<Duration> {
    plugin
        .manifest
        .poll_interval_seconds
        .map(|seconds| configured.unwrap_or(Duration::from_secs(seconds.max(1).into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_the_interval_plus_at_most_a_tenth() {
        let interval = Duration::from_secs(60);
        let ok = Ended::Success { hint_seconds: None };
        assert_eq!(next_delay(interval, ok, 0.0), interval);
        assert_eq!(next_delay(interval, ok, 0.5), Duration::from_secs(63));
        assert!(next_delay(interval, ok, 0.999_999) < Duration::from_secs(66));
    }

    #[test]
    fn a_first_poll_comes_an_interval_after_the_saved_one_never_earlier() {
        let interval = Duration::from_secs(60);
        let saved = |s| Some(Duration::from_secs(s));
        // Taken over (or restarted) 20 s after the holder's last poll: 40 s more.
        assert_eq!(
            first_wait(interval, saved(20), 0.0),
            Duration::from_secs(40)
        );
        // Overdue (the holder died long ago) or never polled: soon, spread by at
        // most a tenth of the interval (5 s at most).
        assert_eq!(first_wait(interval, saved(600), 0.0), Duration::ZERO);
        assert_eq!(first_wait(interval, None, 0.0), Duration::ZERO);
        assert!(first_wait(interval, None, 0.999_999) < Duration::from_secs(5));
        assert!(
            first_wait(Duration::from_secs(1), saved(5), 0.999_999) < Duration::from_millis(100)
        );
        // Never earlier than the interval after the saved poll, whatever the spread.
        for random in [0.0, 0.3, 0.999_999] {
            assert!(first_wait(interval, saved(59), random) >= Duration::from_secs(1));
        }
        let hourly = Duration::from_secs(3600);
        assert!(first_wait(hourly, None, 0.999_999) <= START_SPREAD);
    }

    #[test]
    fn a_hint_replaces_the_interval_exactly() {
        let hint = |s| Ended::Success {
            hint_seconds: Some(s),
        };
        assert_eq!(
            next_delay(Duration::from_secs(60), hint(5), 0.9),
            Duration::from_secs(5)
        );
        assert_eq!(
            next_delay(Duration::from_secs(60), hint(0), 0.9),
            Duration::ZERO
        );
        assert_eq!(
            next_delay(Duration::from_secs(60), hint(7200), 0.9),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_cap_and_always_grow_until_then() {
        let interval = Duration::from_secs(10);
        let failed = |n| Ended::Failure { consecutive: n };
        assert_eq!(
            next_delay(interval, failed(1), 0.0),
            Duration::from_secs(20)
        );
        assert_eq!(
            next_delay(interval, failed(3), 0.0),
            Duration::from_secs(80)
        );
        // The longest wait after n failures is shorter than the shortest after n+1,
        // until the cap.
        for n in 1..8 {
            assert!(
                next_delay(interval, failed(n), 0.999_999)
                    < next_delay(interval, failed(n + 1), 0.0)
            );
        }
        for n in [9, 20, 31, 1000, u32::MAX] {
            let wait = next_delay(interval, failed(n), 0.0);
            assert_eq!(wait, MAX_BACKOFF, "{n}");
        }
        // An interval above the cap is never shortened by a failure.
        let daily = Duration::from_secs(86_400);
        assert_eq!(next_delay(daily, failed(1), 0.0), daily);
    }
}
