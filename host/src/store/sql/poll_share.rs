//! One node's round of poll leases, and how the fleet shares them out.
//!
//! Each round records, in `poll_wants`, which polling plugins the node has
//! loaded (until `now + ttl`: a node that stops renewing drops out by itself).
//! A lease is then spread by one rule, `decide`: a node takes a free lease only
//! if no other live node that can poll that plugin holds fewer leases than it
//! does, and gives a held one up when such a node holds at least two fewer. So
//! the first node to start takes everything, and hands plugins over as others
//! join, one round at a time, until no two nodes differ by more than one; a
//! plugin only one node has stays with it.
//!
//! Nothing here may leave a plugin unpolled: a lease that has been free for
//! longer than `ttl / 2` (its rightful taker is paused, or gone without
//! releasing) is taken by any node that can poll it, and the balancing moves it
//! on later. Every lease row is written in plugin order, on every node, so that
//! two rounds cannot deadlock on each other's rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Result;

use super::conn::{query_opt, Sql, SqlRowExt};
use crate::store::{PollLease, UnixMs};

/// What a node does with one plugin's lease this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Renew it (held) or take it (free or run out).
    Keep,
    /// Give it up: the plugin is no longer loaded here, or another node that can
    /// poll it holds fewer leases.
    Release,
    /// Leave it as it is (another node holds it, or should take it).
    Leave,
}

/// One plugin's lease as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub expires_at: UnixMs,
}

/// What `node` does with the lease of a plugin it can poll (`wanted`) or holds.
/// `held` is how many live leases `node` holds; `others` how many each other
/// live node that can poll this plugin holds.
pub fn decide(
    node: &str,
    wanted: bool,
    lease: Option<&LeaseRow>,
    held: usize,
    others: &[usize],
    now: UnixMs,
    grace: UnixMs,
) -> Action {
    let live = lease.is_some_and(|lease| lease.expires_at > now);
    let mine = lease.is_some_and(|lease| lease.holder == node);
    if mine && live {
        if !wanted || others.iter().any(|&count| count + 1 < held) {
            return Action::Release;
        }
        return Action::Keep;
    }
    if !wanted || live {
        return Action::Leave;
    }
    let free_long = lease.is_none_or(|lease| lease.expires_at.saturating_add(grace) <= now);
    if free_long || others.iter().all(|&count| held <= count) {
        Action::Keep
    } else {
        Action::Leave
    }
}

const WANT: &str = "INSERT INTO poll_wants (plugin, node, seen_until) VALUES ($1, $2, $3)
     ON CONFLICT (plugin, node) DO UPDATE SET seen_until = $3";
// Rows of this node not renewed by this round: plugins it no longer has.
const FORGET_WANTS: &str = "DELETE FROM poll_wants WHERE node = $1 AND seen_until < $2";
// Rows of nodes long gone (a node id is new at every start).
const PRUNE_WANTS: &str = "DELETE FROM poll_wants WHERE seen_until < $1";
const WANTS: &str = "SELECT plugin, node FROM poll_wants WHERE seen_until > $1";
const LEASES: &str = "SELECT plugin, holder, expires_at FROM poll_leases";

// The token grows only when the lease changes hands, so the holder's polls in
// flight stay valid across its renewals.
const KEEP_LEASE: &str = "INSERT INTO poll_leases AS l (plugin, holder, token, expires_at)
     VALUES ($1, $2, 1, $3)
     ON CONFLICT (plugin) DO UPDATE SET
         token = CASE WHEN l.holder = $2 THEN l.token ELSE l.token + 1 END,
         holder = $2,
         expires_at = $3
     WHERE l.holder = $2 OR l.expires_at <= $4
     RETURNING token";

// Free from `now`, not from the epoch: the nodes that hold fewer get the first
// chance to take it (see `decide`'s grace).
const RELEASE_ONE: &str =
    "UPDATE poll_leases SET expires_at = $3 WHERE plugin = $1 AND holder = $2";

/// Forgotten after this long unrenewed.
const PRUNE_AFTER: UnixMs = 3_600_000;

/// `node`'s round at `now` (see the module docs); the leases it holds after it.
pub async fn keep<C: Sql>(
    conn: &C,
    node: &str,
    plugins: &[String],
    now: UnixMs,
    ttl: UnixMs,
) -> Result<Vec<PollLease>> {
    let until = now.saturating_add(ttl);
    let wanted: BTreeSet<&str> = plugins.iter().map(String::as_str).collect();
    for plugin in &wanted {
        conn.execute(WANT, &[(*plugin).into(), node.into(), until.into()])
            .await?;
    }
    conn.execute(FORGET_WANTS, &[node.into(), until.into()])
        .await?;
    conn.execute(PRUNE_WANTS, &[now.saturating_sub(PRUNE_AFTER).into()])
        .await?;

    let mut wanters: HashMap<String, Vec<String>> = HashMap::new();
    for (plugin, wanter) in conn
        .query(WANTS, &[now.into()], |row| {
            Ok((row.required_text(0)?, row.required_text(1)?))
        })
        .await?
    {
        if wanter != node {
            wanters.entry(plugin).or_default().push(wanter);
        }
    }
    let leases: BTreeMap<String, LeaseRow> = conn
        .query(LEASES, &[], |row| {
            let lease = LeaseRow {
                holder: row.required_text(1)?,
                expires_at: row.required_int(2)? as UnixMs,
            };
            Ok((row.required_text(0)?, lease))
        })
        .await?
        .into_iter()
        .collect();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for lease in leases.values().filter(|lease| lease.expires_at > now) {
        *counts.entry(lease.holder.clone()).or_default() += 1;
    }

    // The plugins this node can poll, and those whose lease it still holds.
    let mut plugins: BTreeSet<&str> = wanted.clone();
    plugins.extend(
        leases
            .iter()
            .filter(|(_, lease)| lease.holder == node && lease.expires_at > now)
            .map(|(plugin, _)| plugin.as_str()),
    );
    let grace = ttl / 2;
    let mut held = Vec::new();
    for plugin in plugins {
        let lease = leases.get(plugin);
        let others: Vec<usize> = wanters
            .get(plugin)
            .into_iter()
            .flatten()
            .map(|wanter| counts.get(wanter).copied().unwrap_or(0))
            .collect();
        let mine = counts.get(node).copied().unwrap_or(0);
        let action = decide(
            node,
            wanted.contains(plugin),
            lease,
            mine,
            &others,
            now,
            grace,
        );
        match action {
            Action::Leave => {}
            Action::Release => {
                conn.execute(RELEASE_ONE, &[plugin.into(), node.into(), now.into()])
                    .await?;
                *counts.entry(node.to_string()).or_default() -= 1;
                // The node holding fewest is the likeliest taker; counting it
                // keeps this round from giving away more than evens the load.
                if let Some(taker) = wanters.get(plugin).and_then(|wanters| {
                    wanters
                        .iter()
                        .min_by_key(|wanter| counts.get(*wanter).copied().unwrap_or(0))
                }) {
                    *counts.entry(taker.clone()).or_default() += 1;
                }
            }
            Action::Keep => {
                let params = [plugin.into(), node.into(), until.into(), now.into()];
                let token = query_opt(conn, KEEP_LEASE, &params, |row| row.required_int(0)).await?;
                if let Some(token) = token {
                    let renewed = lease.is_some_and(|l| l.holder == node && l.expires_at > now);
                    if !renewed {
                        *counts.entry(node.to_string()).or_default() += 1;
                    }
                    held.push(PollLease {
                        plugin: plugin.to_string(),
                        token: token as u64,
                        expires_at: until,
                    });
                }
            }
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: UnixMs = 5_000;

    fn lease(holder: &str, expires_at: UnixMs) -> LeaseRow {
        LeaseRow {
            holder: holder.into(),
            expires_at,
        }
    }

    #[test]
    fn a_free_lease_goes_to_the_nodes_holding_fewest() {
        // Nobody else can poll it, or they hold as many: take it.
        assert_eq!(decide("a", true, None, 3, &[], 100, GRACE), Action::Keep);
        assert_eq!(
            decide("a", true, None, 1, &[1, 2], 100, GRACE),
            Action::Keep
        );
        // Another node that can poll it holds fewer: leave it to that node...
        let released = lease("a", 100);
        assert_eq!(
            decide("b", true, Some(&released), 2, &[1], 100, GRACE),
            Action::Leave
        );
        // ...unless it has stayed free past the grace (that node is stuck).
        assert_eq!(
            decide("b", true, Some(&released), 2, &[1], 100 + GRACE, GRACE),
            Action::Keep
        );
        // A lease released at shutdown (run out at 0) is free long at any real time.
        let now = 1_800_000_000_000;
        assert_eq!(
            decide("b", true, Some(&lease("a", 0)), 2, &[1], now, GRACE),
            Action::Keep
        );
    }

    #[test]
    fn a_held_lease_is_kept_until_another_node_holds_two_fewer() {
        let held = lease("a", 1_000);
        assert_eq!(
            decide("a", true, Some(&held), 2, &[1], 100, GRACE),
            Action::Keep
        );
        assert_eq!(
            decide("a", true, Some(&held), 3, &[1], 100, GRACE),
            Action::Release
        );
        // A node that cannot poll it is not counted (it is not among `others`).
        assert_eq!(
            decide("a", true, Some(&held), 5, &[], 100, GRACE),
            Action::Keep
        );
    }

    #[test]
    fn a_lease_of_a_plugin_no_longer_loaded_is_released_and_another_nodes_is_left() {
        let held = lease("a", 1_000);
        assert_eq!(
            decide("a", false, Some(&held), 1, &[], 100, GRACE),
            Action::Release
        );
        // Run out already: nothing to release.
        assert_eq!(
            decide("a", false, Some(&held), 1, &[], 1_000, GRACE),
            Action::Leave
        );
        let theirs = lease("b", 1_000);
        assert_eq!(
            decide("a", true, Some(&theirs), 0, &[5], 100, GRACE),
            Action::Leave
        );
        // Run out: taken back by whoever may.
        assert_eq!(
            decide("a", true, Some(&theirs), 0, &[5], 1_000, GRACE),
            Action::Keep
        );
    }
}
