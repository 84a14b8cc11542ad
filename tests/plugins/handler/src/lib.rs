//! A test handler plugin: subscribes to events and succeeds or fails on request.
//!
//! - `describe` subscribes to the comma-separated patterns in
//!   `config.get("subscriptions")` (none when unset) and emits nothing.
//! - `on-event` looks at the event's JSON payload:
//!   - `{"fail_attempts": N}`: fails with `unavailable` on attempts 1 to N, then
//!     succeeds (a plugin keeps no state between calls, so it counts on the
//!     host's `attempt`);
//!   - `{"always_fail": true}`: fails every attempt with `internal`;
//!   - `{"fail_until_ms": T}`: fails with `unavailable` while the wall clock reads
//!     before T (milliseconds since the Unix epoch), then succeeds: a handler that
//!     was down for a while, whatever the attempt number;
//!   - `{"sleep_first_attempt_ms": N}`: on attempt 1 logs `sleeping in <source>/<event
//!     id> attempt 1` and sleeps N ms (a WASI clock wait) before going on, so a test
//!     can kill the node that holds the delivery mid-call;
//!   - anything else: succeeds.
//!
//!   On success it logs `handled <source>/<event id> attempt <n>` at info level.
//! - `handle-webhook` and `poll` are errors.

use hookhost_sdk::log::{log, Level};
use hookhost_sdk::{config, Manifest, Plugin, PluginError, StoredEvent};

struct Handler;

impl Plugin for Handler {
    fn describe() -> Manifest {
        let subscriptions: Vec<String> = config::get("subscriptions")
            .map(|list| list.split(',').map(|p| p.trim().to_string()).collect())
            .unwrap_or_default();
        Manifest::new("Handler", "1", "fails or succeeds on request, for tests")
            .subscribes_to(subscriptions)
    }

    fn on_event(stored: StoredEvent) -> Result<(), PluginError> {
        let payload = stored.json_payload()?;
        if payload["always_fail"] == true {
            return Err(PluginError::Internal(format!(
                "always failing, attempt {}",
                stored.attempt
            )));
        }
        if let Some(until) = payload["fail_until_ms"].as_u64() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|since| since.as_millis() as u64)
                .unwrap_or(0);
            if now < until {
                return Err(PluginError::Unavailable(format!(
                    "down for another {} ms",
                    until - now
                )));
            }
        }
        if let Some(ms) = payload["sleep_first_attempt_ms"].as_u64() {
            if stored.attempt == 1 {
                log(
                    Level::Info,
                    &format!(
                        "sleeping in {}/{} attempt 1",
                        stored.source, stored.event.id
                    ),
                );
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }
        if let Some(n) = payload["fail_attempts"].as_u64() {
            if u64::from(stored.attempt) <= n {
                return Err(PluginError::Unavailable(format!(
                    "failing attempt {} of {n}",
                    stored.attempt
                )));
            }
        }
        log(
            Level::Info,
            &format!(
                "handled {}/{} attempt {}",
                stored.source, stored.event.id, stored.attempt
            ),
        );
        Ok(())
    }
}

hookhost_sdk::export!(Handler);
