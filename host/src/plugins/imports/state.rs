//! The host side of the `state` import: each plugin's key-value pairs, kept in the
//! event store under the plugin's id, with limits that answer the plugin with an
//! error rather than a trap.
//!
//! A call either writes through (webhooks, `on-event`: a `set` is durable when it
//! returns) or stages its writes (`poll`: they are saved with the poll's events and
//! cursor in one transaction, see `store::PollRecord`, and dropped if the poll fails).
//! Staged writes are held in host memory until then; `staged_bytes` says how much,
//! for the call's host memory budget (`CallState` charges it).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::plugins::bindings::state::StateError;
use crate::store::{
    now_ms, StateChange, StateRefused, StateStore, STATE_MAX_KEYS, STATE_MAX_KEY_BYTES,
    STATE_MAX_VALUE_BYTES,
};

/// How one call's `state` writes reach the store.
pub enum Mode {
    WriteThrough,
    /// Held until the poll's outcome is saved; the last write of a key wins.
    Staged(BTreeMap<String, Staged>),
}

impl Mode {
    pub fn staged() -> Self {
        Mode::Staged(BTreeMap::new())
    }
}

/// A write held back during a poll.
pub struct Staged {
    /// `None` deletes.
    value: Option<Vec<u8>>,
    /// Whether the store held the key when it was first written in this poll.
    existed: bool,
}

/// One call's view of its plugin's state.
pub struct KeyValue {
    plugin: Arc<str>,
    /// `None` where the host runs without a store (`hookhost check`).
    store: Option<Arc<dyn StateStore>>,
    mode: Mode,
    /// What the staged writes hold, as `staged_size` counts it.
    staged_bytes: usize,
}

/// A staged write's share of host memory: its key and value, and the map entry
/// and allocations around them.
fn staged_size(key_len: usize, value: Option<&Vec<u8>>) -> usize {
    const ENTRY_OVERHEAD: usize = 128;
    key_len + value.map_or(0, Vec::len) + ENTRY_OVERHEAD
}

impl KeyValue {
    pub fn new(plugin: Arc<str>, store: Option<Arc<dyn StateStore>>, mode: Mode) -> Self {
        Self {
            plugin,
            store,
            mode,
            staged_bytes: 0,
        }
    }

    /// Host memory the staged writes hold (none when writing through).
    pub fn staged_bytes(&self) -> usize {
        self.staged_bytes
    }

    /// The staged writes, in key order, for the poll's transaction.
    pub fn into_staged(self) -> Vec<StateChange> {
        match self.mode {
            Mode::WriteThrough => Vec::new(),
            Mode::Staged(writes) => writes
                .into_iter()
                .map(|(key, staged)| match staged.value {
                    Some(value) => StateChange::Set(key, value),
                    None => StateChange::Delete(key),
                })
                .collect(),
        }
    }

    fn store(&self) -> Result<&Arc<dyn StateStore>, StateError> {
        self.store.as_ref().ok_or_else(|| {
            StateError::Unavailable("plugin state is not available outside `serve`".into())
        })
    }

    pub async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, StateError> {
        check_key(&key)?;
        if let Mode::Staged(writes) = &self.mode {
            if let Some(staged) = writes.get(&key) {
                return Ok(staged.value.clone());
            }
        }
        self.store()?
            .state_get(&self.plugin, &key)
            .await
            .map_err(|error| self.unavailable(error))
    }

    pub async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), StateError> {
        check_key(&key)?;
        if value.len() > STATE_MAX_VALUE_BYTES {
            return Err(StateError::ValueTooLarge(format!(
                "a value of {} bytes is over the limit of {STATE_MAX_VALUE_BYTES}",
                value.len()
            )));
        }
        self.write(key, Some(value)).await
    }

    pub async fn delete(&mut self, key: String) -> Result<(), StateError> {
        check_key(&key)?;
        self.write(key, None).await
    }

    async fn write(&mut self, key: String, value: Option<Vec<u8>>) -> Result<(), StateError> {
        let store = self.store()?.clone();
        match &mut self.mode {
            Mode::WriteThrough => {
                let change = match value {
                    Some(value) => StateChange::Set(key, value),
                    None => StateChange::Delete(key),
                };
                match store
                    .state_apply(&self.plugin, vec![change], now_ms())
                    .await
                {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(refused)) => Err(too_many_keys(refused)),
                    Err(error) => Err(self.unavailable(error)),
                }
            }
            Mode::Staged(writes) => {
                let plugin = &self.plugin;
                let existed = match writes.get(&key) {
                    Some(staged) => staged.existed,
                    None => store
                        .state_get(plugin, &key)
                        .await
                        .map_err(|error| unavailable(plugin, error))?
                        .is_some(),
                };
                if value.is_some() && !existed {
                    // Checked here so that the plugin hears of the limit at `set`;
                    // the poll's transaction checks again when it saves.
                    let stored = store
                        .state_len(plugin)
                        .await
                        .map_err(|error| unavailable(plugin, error))?;
                    let mut would_hold = stored + 1;
                    for (_, staged) in writes.iter().filter(|(other, _)| **other != key) {
                        match (&staged.value, staged.existed) {
                            (Some(_), false) => would_hold += 1,
                            (None, true) => would_hold -= 1,
                            _ => {}
                        }
                    }
                    if would_hold > STATE_MAX_KEYS {
                        return Err(too_many_keys(StateRefused::TooManyKeys {
                            plugin: plugin.to_string(),
                            would_hold,
                        }));
                    }
                }
                let key_len = key.len();
                self.staged_bytes += staged_size(key_len, value.as_ref());
                if let Some(old) = writes.insert(key, Staged { value, existed }) {
                    self.staged_bytes -= staged_size(key_len, old.value.as_ref());
                }
                Ok(())
            }
        }
    }

    fn unavailable(&self, error: anyhow::Error) -> StateError {
        unavailable(&self.plugin, error)
    }
}

fn unavailable(plugin: &str, error: anyhow::Error) -> StateError {
    tracing::error!(plugin, "plugin state: {error:#}");
    StateError::Unavailable("the host could not reach its store; retry later".into())
}

fn too_many_keys(refused: StateRefused) -> StateError {
    StateError::TooManyKeys(format!("{refused}; delete keys before adding more"))
}

fn check_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() || key.len() > STATE_MAX_KEY_BYTES {
        return Err(StateError::InvalidKey(format!(
            "a key must be 1 to {STATE_MAX_KEY_BYTES} bytes; this one is {}",
            key.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Commit, SqliteStore};

    fn kv(store: &Arc<dyn StateStore>, mode: Mode) -> KeyValue {
        KeyValue::new("feed".into(), Some(store.clone()), mode)
    }

    #[tokio::test]
    async fn staged_writes_are_seen_by_the_call_and_reach_the_store_only_when_saved() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn StateStore> =
            Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3"), Commit::Grouped).unwrap());
        let mut direct = kv(&store, Mode::WriteThrough);
        direct.set("old".into(), b"1".to_vec()).await.unwrap();

        let mut poll = kv(&store, Mode::staged());
        poll.set("etag".into(), b"v2".to_vec()).await.unwrap();
        poll.delete("old".into()).await.unwrap();
        assert_eq!(poll.get("etag".into()).await.unwrap(), Some(b"v2".to_vec()));
        assert_eq!(poll.get("old".into()).await.unwrap(), None);
        // Nothing is in the store until the poll's outcome is saved.
        assert_eq!(store.state_get("feed", "etag").await.unwrap(), None);
        assert_eq!(
            store.state_get("feed", "old").await.unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(
            poll.into_staged(),
            [
                StateChange::Set("etag".into(), b"v2".to_vec()),
                StateChange::Delete("old".into()),
            ]
        );
    }

    #[tokio::test]
    async fn staged_bytes_count_what_a_poll_holds_and_an_overwrite_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn StateStore> =
            Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3"), Commit::Grouped).unwrap());
        let mut direct = kv(&store, Mode::WriteThrough);
        direct.set("k".into(), vec![0; 1000]).await.unwrap();
        assert_eq!(
            direct.staged_bytes(),
            0,
            "nothing is held when writing through"
        );

        let mut poll = kv(&store, Mode::staged());
        poll.set("k".into(), vec![0; 1000]).await.unwrap();
        let one = poll.staged_bytes();
        assert!(one > 1000, "{one}");
        poll.set("k".into(), vec![0; 10]).await.unwrap();
        assert_eq!(poll.staged_bytes(), one - 990);
        poll.delete("k".into()).await.unwrap();
        poll.delete("gone".into()).await.unwrap();
        assert!(poll.staged_bytes() > one - 1000, "a delete is held too");
    }

    #[tokio::test]
    async fn limits_are_errors_for_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn StateStore> =
            Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3"), Commit::Grouped).unwrap());
        let mut direct = kv(&store, Mode::WriteThrough);
        let long = "k".repeat(STATE_MAX_KEY_BYTES + 1);
        assert!(matches!(
            direct.get(long).await,
            Err(StateError::InvalidKey(_))
        ));
        assert!(matches!(
            direct.set(String::new(), vec![]).await,
            Err(StateError::InvalidKey(_))
        ));
        let big = vec![0; STATE_MAX_VALUE_BYTES + 1];
        assert!(matches!(
            direct.set("k".into(), big).await,
            Err(StateError::ValueTooLarge(_))
        ));
        let almost: Vec<StateChange> = (1..STATE_MAX_KEYS)
            .map(|n| StateChange::Set(format!("k{n}"), vec![]))
            .collect();
        store.state_apply("feed", almost, 1).await.unwrap().unwrap();

        // One key is left: a poll may stage it (and overwrite it), not a second.
        let mut poll = kv(&store, Mode::staged());
        poll.set("last".into(), vec![1]).await.unwrap();
        poll.set("last".into(), vec![2]).await.unwrap();
        poll.set("k1".into(), vec![3]).await.unwrap();
        assert!(matches!(
            poll.set("one-more".into(), vec![]).await,
            Err(StateError::TooManyKeys(_))
        ));
        // Freeing a key in the same poll makes room.
        poll.delete("k2".into()).await.unwrap();
        poll.set("one-more".into(), vec![]).await.unwrap();

        direct.set("last".into(), vec![]).await.unwrap();
        let full = direct.set("another".into(), vec![]).await;
        assert!(matches!(full, Err(StateError::TooManyKeys(_))), "{full:?}");
    }
}
