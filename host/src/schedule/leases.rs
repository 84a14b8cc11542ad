//! Poll leases: several nodes share one store, and each polling plugin is polled
//! by one of them at a time. The store keeps one lease per plugin (holder, fencing
//! token, expiry); this node's `LeaseKeeper` renews the ones it holds and takes the
//! free or expired ones every `KEEP_EVERY`, in one store call for all plugins, and
//! `HeldLeases` is its answer, which the scheduler asks before every poll.
//!
//! The store spreads the leases over the live nodes (each takes at most its
//! share while other nodes that can poll the same plugins are alive: see
//! `store::sql::poll_share`), and a round releases the leases of plugins no
//! longer loaded here, so that another node takes them over at once.
//!
//! Why this is safe with nodes that pause, die, start together or whose clocks
//! differ:
//! - Whether a lease ran out, and when a renewed one runs out, is decided by the
//!   database's clock. This node counts a lease as held until `LEASE_TTL` after
//!   the round that renewed it started, less `EXPIRY_MARGIN`, by its own clock
//!   (the store's expiry, by the database's clock, is later than that), so a
//!   node that was paused, or whose rounds fail, stops polling on its own; another
//!   node can take the lease only once it has run out in the store. A node
//!   whose clock is off by any amount takes no lease early.
//! - Whatever a node believes, the store has the last word: a poll's save carries
//!   the token it ran under and is refused once the lease has changed hands, so a
//!   poll that outlived its lease can never write over the new holder's cursor.
//! - A node killed with SIGKILL simply stops renewing; its plugins move within
//!   `LEASE_TTL + KEEP_EVERY`. A node that stops gracefully releases its leases.
//! - Nodes starting together race for each lease inside the store's transaction;
//!   one wins each. The plugin ids go to the store sorted, so that two rounds
//!   lock the same rows in the same order.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use crate::node::NodeId;
use crate::outage::Outage;
use crate::plugins::registry::Registry;
use crate::store::{now_ms, Clock, PollBook, PollLease, UnixMs};

/// How often the keeper renews and takes leases.
pub const KEEP_EVERY: Duration = Duration::from_secs(3);
/// How long a lease lasts after the round that renewed it.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// A lease counts as lost this long before it runs out by this node's count,
/// for a clock that runs a little slower here than the database's.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(1);
/// The longest a round may take; a slower store counts as failing.
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `lease` still allows polling at `now`.
pub fn usable(lease: &PollLease, now: UnixMs) -> bool {
    now.saturating_add(EXPIRY_MARGIN.as_millis() as UnixMs) < lease.expires_at
}

/// What changed between the leases held `before` and those a round returned:
/// the plugins newly held (not held before, or under another token, or only past
/// its expiry) and those held before (and still usable) but no more.
pub fn changes(
    before: &HashMap<String, PollLease>,
    after: &[PollLease],
    now: UnixMs,
) -> (Vec<String>, Vec<String>) {
    let taken = after
        .iter()
        .filter(|lease| {
            !before
                .get(&lease.plugin)
                .is_some_and(|old| old.token == lease.token && usable(old, now))
        })
        .map(|lease| lease.plugin.clone())
        .collect();
    let mut lost: Vec<String> = before
        .values()
        .filter(|old| usable(old, now) && !after.iter().any(|new| new.plugin == old.plugin))
        .map(|old| old.plugin.clone())
        .collect();
    lost.sort();
    (taken, lost)
}

/// The poll leases this node holds, as the keeper last renewed them.
#[derive(Debug, Default)]
pub struct HeldLeases {
    /// Written by the keeper after each round and by a poll whose save was
    /// refused for a lost lease; read before every poll.
    leases: Mutex<HashMap<String, PollLease>>,
}

impl HeldLeases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PollLease>> {
        // Every update is a single assignment or removal; a poisoned map is consistent.
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fencing token to poll `plugin` under at `now`, if this node holds its
    /// lease and the lease has not (nearly) run out.
    pub fn token(&self, plugin: &str, now: UnixMs) -> Option<u64> {
        self.lock()
            .get(plugin)
            .filter(|lease| usable(lease, now))
            .map(|lease| lease.token)
    }

    /// Replaces the held leases with what a round returned; see `changes`.
    pub fn replace(&self, leases: Vec<PollLease>, now: UnixMs) -> (Vec<String>, Vec<String>) {
        let mut held = self.lock();
        let changed = changes(&held, &leases, now);
        *held = leases
            .into_iter()
            .map(|lease| (lease.plugin.clone(), lease))
            .collect();
        changed
    }

    /// Forgets the lease of `plugin` held under `token`, after the store refused a
    /// save under it: another node holds it now. The next round that returns it
    /// (with a new token) makes it held again.
    pub fn lost(&self, plugin: &str, token: u64) {
        let mut held = self.lock();
        if held.get(plugin).is_some_and(|lease| lease.token == token) {
            held.remove(plugin);
        }
    }
}

/// The loaded polling plugins, sorted.
fn polling_plugins(registry: &Registry) -> Vec<String> {
    let mut ids: Vec<String> = registry
        .snapshot()
        .into_iter()
        .filter(|(_, entry)| {
            entry
                .current
                .as_ref()
                .is_some_and(|plugin| plugin.manifest.poll_interval_seconds.is_some())
        })
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids
}

/// Renews and takes this node's poll leases every `KEEP_EVERY`.
pub struct LeaseKeeper {
    pub node: NodeId,
    pub store: Arc<dyn PollBook>,
    pub registry: Arc<Registry>,
    pub held: Arc<HeldLeases>,
    /// To the timer task, its only receiver: plugins whose lease this node has
    /// just taken, so that it re-times their first poll from the saved cursor.
    pub taken: mpsc::UnboundedSender<Vec<String>>,
    /// Asks for a round now (the timer task, when a polling plugin appears).
    pub keep_now: Arc<Notify>,
}

/// `leases` as a round that started at `started` (by this node's clock) returned
/// them: each counts as held until `LEASE_TTL` after that, by this node's clock.
/// The store's expiry (by the database's clock) is no earlier, since the round
/// renewed it after it started.
fn by_node_clock(leases: Vec<PollLease>, started: UnixMs) -> Vec<PollLease> {
    let expires_at = started.saturating_add(LEASE_TTL.as_millis() as UnixMs);
    leases
        .into_iter()
        .map(|lease| PollLease {
            expires_at,
            ..lease
        })
        .collect()
}

impl LeaseKeeper {
    /// Runs rounds (the first at once) until `stop` resolves. A round in flight
    /// then finishes first, so that nothing renews a lease after the caller
    /// released them.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut outage = Outage::new("renewing poll leases");
        // Whether the last round had polling plugins: a round after the last one
        // went away still asks the store, to release their leases.
        let mut had_plugins = false;
        let mut ticks = tokio::time::interval(KEEP_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => return,
                _ = ticks.tick() => {}
                _ = self.keep_now.notified() => {}
            }
            had_plugins = self.round(&mut outage, had_plugins).await;
        }
    }

    /// One round; returns whether there were polling plugins to keep.
    async fn round(&self, outage: &mut Outage, had_plugins: bool) -> bool {
        let plugins = polling_plugins(&self.registry);
        if plugins.is_empty() && !had_plugins {
            self.held.replace(Vec::new(), now_ms());
            return false;
        }
        let started = now_ms();
        let kept = tokio::time::timeout(
            ROUND_TIMEOUT,
            self.store
                .keep_poll_leases(self.node.as_str(), &plugins, Clock::Database, LEASE_TTL),
        )
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the store did not answer within {ROUND_TIMEOUT:?}"
            ))
        });
        let leases = match kept {
            Ok(leases) => {
                outage.succeeded();
                leases
            }
            Err(error) => {
                // The held leases stay as they were and lapse at their expiry;
                // the next round asks again (a removed plugin's release included).
                outage.failed(&error);
                return true;
            }
        };
        let leases = by_node_clock(leases, started);
        let (taken, lost) = self.held.replace(leases, now_ms());
        let (released, lost): (Vec<String>, Vec<String>) =
            lost.into_iter().partition(|id| !plugins.contains(id));
        if !released.is_empty() {
            tracing::info!(
                node = %self.node,
                plugins = %summary(&released),
                "poll leases released: the plugins are no longer loaded here"
            );
        }
        if !lost.is_empty() {
            tracing::warn!(
                node = %self.node,
                plugins = %summary(&lost),
                "poll leases no longer held (handed over to a node holding fewer, or \
                 renewed too late)"
            );
        }
        if !taken.is_empty() {
            tracing::info!(node = %self.node, count = taken.len(), plugins = %summary(&taken), "poll leases taken");
            // The timer task outlives the keeper unless the host is shutting down.
            let _ = self.taken.send(taken);
        }
        !plugins.is_empty()
    }
}

/// Up to ten ids for the log, and how many more there are.
fn summary(ids: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = ids[..ids.len().min(SHOWN)].join(",");
    if ids.len() > SHOWN {
        text.push_str(&format!(" and {} more", ids.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(plugin: &str, token: u64, expires_at: UnixMs) -> PollLease {
        PollLease {
            plugin: plugin.into(),
            token,
            expires_at,
        }
    }

    #[test]
    fn a_lease_is_usable_until_a_margin_before_it_runs_out() {
        let margin = EXPIRY_MARGIN.as_millis() as UnixMs;
        let held = lease("feed", 1, 10_000);
        assert!(usable(&held, 0));
        assert!(usable(&held, 10_000 - margin - 1));
        assert!(!usable(&held, 10_000 - margin));
        assert!(!usable(&held, 20_000));
    }

    #[test]
    fn held_leases_give_a_token_only_while_usable_and_forget_a_lost_one() {
        let held = HeldLeases::default();
        assert_eq!(held.token("feed", 0), None);
        held.replace(vec![lease("feed", 3, 10_000)], 0);
        assert_eq!(held.token("feed", 5_000), Some(3));
        // A node whose rounds fail (or that was paused) stops on its own.
        assert_eq!(held.token("feed", 9_500), None);
        // A refusal under an old token does not drop a newer lease.
        held.lost("feed", 2);
        assert_eq!(held.token("feed", 5_000), Some(3));
        held.lost("feed", 3);
        assert_eq!(held.token("feed", 5_000), None);
    }

    #[test]
    fn a_renewal_is_not_a_take_but_a_new_token_or_a_lapsed_lease_is() {
        let mut before = HashMap::new();
        before.insert("a".to_string(), lease("a", 1, 10_000));
        before.insert("b".to_string(), lease("b", 1, 10_000));
        before.insert("c".to_string(), lease("c", 1, 4_000));
        let after = [
            // Renewed under the same token: no change.
            lease("a", 1, 13_000),
            // Lost and taken back: a new token.
            lease("b", 2, 13_000),
            // Lapsed here (a failing store) and renewed: polls may have been missed.
            lease("c", 1, 13_000),
            lease("d", 1, 13_000),
        ];
        let (taken, lost) = changes(&before, &after, 3_000);
        assert_eq!(taken, ["b", "c", "d"]);
        assert!(lost.is_empty());
        let (taken, lost) = changes(&before, &after[..1], 3_000);
        assert!(taken.is_empty());
        // c had lapsed already, so only b is news.
        assert_eq!(lost, ["b"]);
    }

    #[test]
    fn a_lease_counts_as_held_from_the_round_start_by_this_nodes_clock() {
        // The database's clock is an hour behind this node's.
        let renewed = vec![lease("feed", 4, 1_000 + 10_000)];
        let started = 3_600_000;
        let held = by_node_clock(renewed, started);
        assert_eq!(held[0].token, 4);
        assert_eq!(
            held[0].expires_at,
            started + LEASE_TTL.as_millis() as UnixMs
        );
        assert!(usable(&held[0], started + 1));
    }

    #[test]
    fn the_log_summary_names_at_most_ten() {
        let ids: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
        assert_eq!(summary(&ids[..2]), "p0,p1");
        assert_eq!(summary(&ids), "p0,p1,p2,p3,p4,p5,p6,p7,p8,p9 and 2 more");
    }
}
