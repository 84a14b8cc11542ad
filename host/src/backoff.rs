//! The one backoff rule: a wait that doubles with each consecutive failure, up to a
//! cap, with jitter so that many things failing together do not retry together.
//! Deliveries (`dispatch`) and polls (`schedule`) both wait this way; they differ
//! only in where the doubling starts and how the jitter is laid over it.

use std::time::Duration;

/// `base * 2^doublings`, at most `cap` (the exponent stops at 30; the cap is
/// reached long before).
pub fn doubled(base: Duration, doublings: u32, cap: Duration) -> Duration {
    base.saturating_mul(1 << doublings.min(30)).min(cap)
}

/// "Equal jitter": the lower half of `full` is fixed and the upper half random
/// (`random` in `[0, 1)`), so that every wait below the cap is at least as long as
/// the one before it.
pub fn equal_jitter(full: Duration, random: f64) -> Duration {
    full / 2 + full.mul_f64(random.clamp(0.0, 1.0) / 2.0)
}

/// `wait` plus up to `fraction` of it at random (`random` in `[0, 1)`): never
/// earlier than `wait`, for a schedule that must not run early.
pub fn added_jitter(wait: Duration, fraction: f64, random: f64) -> Duration {
    wait + wait.mul_f64(fraction * random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_stops_at_the_cap_and_at_any_count() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        assert_eq!(doubled(base, 0, cap), base);
        assert_eq!(doubled(base, 3, cap), Duration::from_secs(8));
        assert_eq!(doubled(base, 6, cap), cap);
        assert_eq!(doubled(base, u32::MAX, cap), cap);
    }
}
