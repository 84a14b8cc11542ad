//! This process's node id: `{hostname}-{pid}-{4 random hex digits}`, made once at
//! start. Several nodes share one store; the id is what a poll lease names as its
//! holder, and what `/healthz` and the log show, so that an operator can tell the
//! nodes apart. The random part keeps a restarted process on a recycled pid (a
//! container is often pid 1 every time) from passing for its predecessor.

use std::fmt;
use std::sync::Arc;

/// One hookhost process among the nodes sharing a store. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// A new id for this process.
    pub fn generate() -> Self {
        NodeId::from_parts(&hostname(), std::process::id(), fastrand::u16(..))
    }

    fn from_parts(hostname: &str, pid: u32, random: u16) -> Self {
        NodeId(format!("{hostname}-{pid}-{random:04x}").into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kernel's host name, or `$HOSTNAME`, or `localhost` when neither is known.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_hostname_pid_and_four_hex_digits() {
        assert_eq!(
            NodeId::from_parts("web-1", 42, 0xab).as_str(),
            "web-1-42-00ab"
        );
        let id = NodeId::generate();
        let random = id.as_str().rsplit('-').next().unwrap();
        assert_eq!(random.len(), 4, "{id}");
        assert!(random.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert!(id.as_str().contains(&format!("-{}-", std::process::id())));
    }
}
