//! The deploy-sync task of a node in a fleet: keeps the plugins this node runs in
//! line with the components deployed to the shared `ComponentStore`.
//!
//! Every `SYNC_INTERVAL` it lists what is deployed (one small query) and, for each
//! plugin whose deployed sha256 differs from the one this node runs, fetches the
//! bytes, loads them and makes them current through the `Reloader` (written to the
//! plugins directory, swapped in as hot reload swaps: calls in flight finish on the
//! old version). A component that does not load here is logged and recorded as the
//! plugin's load error, the old version keeps serving, and it is not fetched again
//! until a different component is deployed. When the store cannot be reached the
//! node keeps serving what it has, says so once, and tries again next tick.
//!
//! A plugin the fleet undeployed (a tombstone) is unloaded and its file deleted on
//! every node, including one that was down at the time and starts later with the
//! file still in its folder: the store, not a node's folder, says what a fleet
//! runs, so a copy left on one node never brings the plugin back on that node
//! alone. (A file copied into a node's folder by hand after an undeploy is deleted
//! too; `hookhost deploy` brings the plugin back on every node.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;

use crate::deploy::reload::Reloader;
use crate::outage::Outage;
use crate::plugins::id::is_valid_plugin_id;
use crate::plugins::loaded::content_sha256;
use crate::store::components::{ComponentStore, DeployedComponent, Deployment};

/// How often a node asks the store what is deployed; a deploy reaches every node
/// within about this long (plus the time to fetch and load it).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

pub struct DeploySync {
    components: Arc<dyn ComponentStore>,
    reloader: Reloader,
    /// Per plugin, the deployed component that could not be made current here and
    /// why; it is not tried again until another component is deployed.
    refused: HashMap<String, Refusal>,
    /// Whether the last round could not reach the store, so that an outage is
    /// logged once (with reminders) rather than every tick.
    outage: Outage,
}

struct Refusal {
    sha256: String,
    reason: String,
}

impl DeploySync {
    pub fn new(components: Arc<dyn ComponentStore>, reloader: Reloader) -> Self {
        DeploySync {
            components,
            reloader,
            refused: HashMap::new(),
            outage: Outage::new("syncing deployed components"),
        }
    }

    /// Syncs every `SYNC_INTERVAL`, forever (the host aborts it at shutdown).
    pub async fn run(mut self) {
        let mut ticks = tokio::time::interval(SYNC_INTERVAL);
        // A slow round (a large component to compile) delays the next one rather
        // than being followed by a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; `Host::start` has just synced.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.sync_once().await;
        }
    }

    /// Brings this node in line with what is deployed, once. Never fails: a store
    /// that cannot be reached leaves everything as it is until the next round.
    pub async fn sync_once(&mut self) {
        // While it fails, this node keeps serving the versions it has.
        match self.sync_all().await {
            Ok(()) => self.outage.succeeded(),
            Err(error) => self.outage.failed(&error),
        }
    }

    /// `Err` only when the store could not be asked; a component that does not
    /// load is recorded and the others are still synced.
    async fn sync_all(&mut self) -> Result<()> {
        let deployed = self
            .components
            .deployed()
            .await
            .context("listing deployed components")?;
        for deployment in deployed {
            match deployment {
                Deployment::Current(component) => self.sync_plugin(component).await?,
                Deployment::Removed { plugin, .. } => self.remove_plugin(&plugin).await,
            }
        }
        Ok(())
    }

    /// Applies a tombstone: `plugin` is unloaded and its file deleted, if this
    /// node still has either.
    async fn remove_plugin(&mut self, plugin: &str) {
        self.refused.remove(plugin);
        if !is_valid_plugin_id(plugin) || !self.reloader.is_present(plugin) {
            return;
        }
        if let Err(error) = self.reloader.remove(plugin).await {
            // The disk, most likely; tried again next round.
            self.reloader.record_failure(
                plugin,
                error.context(format!("removing {plugin}, which the fleet undeployed")),
            );
        }
    }

    async fn sync_plugin(&mut self, deployed: DeployedComponent) -> Result<()> {
        let id = deployed.plugin.as_str();
        let registry = &self.reloader.registry;
        if registry
            .get(id)
            .is_some_and(|running| running.sha256 == deployed.sha256)
        {
            self.refused.remove(id);
            return Ok(());
        }
        if let Some(refusal) = self.refused.get(id) {
            if refusal.sha256 == deployed.sha256 {
                // Still refused; keep it visible in case a reload of the old file
                // cleared the record.
                if is_valid_plugin_id(id) && !registry.has_failure(id) {
                    self.reloader
                        .record_failure(id, anyhow!("{}", refusal.reason));
                }
                return Ok(());
            }
        }
        if !is_valid_plugin_id(id) {
            tracing::warn!(
                plugin = id,
                "ignoring a deployed component: {id:?} is not a plugin id"
            );
            self.refuse(&deployed, "not a plugin id".into());
            return Ok(());
        }
        let bytes = self
            .components
            .component(&deployed.sha256)
            .await
            .with_context(|| format!("fetching component {}", deployed.sha256))?;
        let Some(bytes) = bytes else {
            self.fail(
                &deployed,
                anyhow!(
                    "the deployed component {} is missing from the store",
                    deployed.sha256
                ),
            );
            return Ok(());
        };
        let actual = content_sha256(&bytes);
        if actual != deployed.sha256 {
            self.fail(
                &deployed,
                anyhow!(
                    "the store returned bytes with sha256 {actual} for component {}",
                    deployed.sha256
                ),
            );
            return Ok(());
        }
        let bytes = Bytes::from(bytes);
        let plugin = match self.reloader.validate(id, bytes.to_vec()).await {
            Ok(plugin) => plugin,
            Err(error) => {
                self.fail(
                    &deployed,
                    error.context(format!("deployed component {}", deployed.sha256)),
                );
                return Ok(());
            }
        };
        if let Err(error) = self.reloader.make_current(plugin, bytes).await {
            // Probably the disk (full, read-only): not the component's fault, so
            // it is tried again next round.
            self.reloader.record_failure(id, error);
        }
        Ok(())
    }

    /// Records that `deployed` cannot run here; the version serving keeps serving.
    fn fail(&mut self, deployed: &DeployedComponent, error: anyhow::Error) {
        self.refuse(deployed, format!("{error:#}"));
        self.reloader.record_failure(&deployed.plugin, error);
    }

    fn refuse(&mut self, deployed: &DeployedComponent, reason: String) {
        self.refused.insert(
            deployed.plugin.clone(),
            Refusal {
                sha256: deployed.sha256.clone(),
                reason,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::config::{Config, Overrides};
    use crate::plugins::registry::Registry;
    use crate::plugins::runtime::Runtime;
    use crate::store::UnixMs;

    /// The shared store, in memory: what PostgreSQL keeps in `components` and
    /// `deployments`, plus a switch that makes every call fail as an unreachable
    /// database does.
    #[derive(Default)]
    struct MemoryComponents {
        deployments: Mutex<BTreeMap<String, Deployment>>,
        components: Mutex<HashMap<String, Vec<u8>>>,
        down: AtomicBool,
        fetches: AtomicUsize,
    }

    impl MemoryComponents {
        fn reachable(&self) -> Result<()> {
            if self.down.load(Ordering::SeqCst) {
                return Err(anyhow!("connection refused"));
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl ComponentStore for MemoryComponents {
        async fn deploy(
            &self,
            plugin: &str,
            bytes: Vec<u8>,
            now: UnixMs,
        ) -> Result<DeployedComponent> {
            self.reachable()?;
            let sha256 = content_sha256(&bytes);
            self.components
                .lock()
                .unwrap()
                .insert(sha256.clone(), bytes);
            let deployed = DeployedComponent {
                plugin: plugin.to_string(),
                sha256,
                deployed_at: now,
            };
            self.deployments
                .lock()
                .unwrap()
                .insert(plugin.to_string(), Deployment::Current(deployed.clone()));
            Ok(deployed)
        }

        async fn undeploy(&self, plugin: &str, _present_here: bool, now: UnixMs) -> Result<bool> {
            self.reachable()?;
            self.deployments.lock().unwrap().insert(
                plugin.to_string(),
                Deployment::Removed {
                    plugin: plugin.to_string(),
                    removed_at: now,
                },
            );
            Ok(true)
        }

        async fn rollback(&self, _plugin: &str, _now: UnixMs) -> Result<Option<DeployedComponent>> {
            unimplemented!("the PostgreSQL store's rollback is tested in tests/fleet_deploy.rs")
        }

        async fn deployed(&self) -> Result<Vec<Deployment>> {
            self.reachable()?;
            Ok(self.deployments.lock().unwrap().values().cloned().collect())
        }

        async fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
            self.reachable()?;
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(self.components.lock().unwrap().get(sha256).cloned())
        }
    }

    fn test_plugin(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/test-plugins")
            .join(format!("{name}.wasm"));
        std::fs::read(&path).unwrap_or_else(|error| {
            panic!(
                "{}: {error}; run scripts/build-plugins before the tests",
                path.display()
            )
        })
    }

    /// A node: its own plugins directory and registry, syncing from `store`.
    struct Node {
        sync: DeploySync,
        registry: Arc<Registry>,
        plugins_dir: PathBuf,
        _dir: tempfile::TempDir,
    }

    fn node(store: &Arc<MemoryComponents>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let plugins_dir = dir.path().join("plugins");
        std::fs::create_dir(&plugins_dir).unwrap();
        let config = Config::load(
            None,
            Overrides {
                plugins_dir: Some(plugins_dir.clone()),
                data_dir: Some(dir.path().join("data")),
                ..Overrides::default()
            },
            |_| None,
        )
        .unwrap();
        let runtime = Runtime::new(Some(dir.path().join("cache"))).unwrap();
        let registry = Arc::new(Registry::default());
        let reloader = Reloader::new(
            runtime,
            registry.clone(),
            Arc::new(config),
            Default::default(),
        );
        Node {
            sync: DeploySync::new(store.clone(), reloader),
            registry,
            plugins_dir,
            _dir: dir,
        }
    }

    impl Node {
        fn running(&self, id: &str) -> Option<String> {
            self.registry.get(id).map(|plugin| plugin.sha256.clone())
        }

        fn file(&self, id: &str) -> Vec<u8> {
            std::fs::read(self.plugins_dir.join(format!("{id}.wasm"))).unwrap()
        }

        fn failure(&self, id: &str) -> Option<String> {
            self.registry
                .snapshot()
                .into_iter()
                .find(|(entry_id, _)| entry_id == id)
                .and_then(|(_, entry)| entry.failure)
                .map(|failure| failure.message)
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn nodes_follow_deploys_and_keep_serving_when_one_does_not_load() {
        let store = Arc::new(MemoryComponents::default());
        let (v1, v2) = (test_plugin("versioned-v1"), test_plugin("versioned-v2"));
        store.deploy("app", v1.clone(), 1).await.unwrap();

        // A node that starts later gets the fleet's version before serving.
        let mut node = node(&store);
        node.sync.sync_once().await;
        assert_eq!(node.running("app"), Some(content_sha256(&v1)));
        assert_eq!(node.file("app"), v1);

        store.deploy("app", v2.clone(), 2).await.unwrap();
        node.sync.sync_once().await;
        assert_eq!(node.running("app"), Some(content_sha256(&v2)));
        assert_eq!(node.file("app"), v2);
        assert_eq!(node.failure("app"), None);

        // Nothing new: no component is fetched.
        let fetches = store.fetches.load(Ordering::SeqCst);
        node.sync.sync_once().await;
        assert_eq!(store.fetches.load(Ordering::SeqCst), fetches);

        // A component this node cannot load: v2 keeps serving, from its file, and
        // the plugin's last error says why.
        store
            .deploy("app", test_plugin("wrong-world"), 3)
            .await
            .unwrap();
        node.sync.sync_once().await;
        assert_eq!(node.running("app"), Some(content_sha256(&v2)));
        assert_eq!(node.file("app"), v2);
        let failure = node.failure("app").expect("the refusal is recorded");
        assert!(
            failure.contains("does not export hookhost:plugin/guest@0.1.0"),
            "{failure}"
        );
        // ... and it is not fetched and compiled again every round, yet stays
        // reported when something clears the record.
        let fetches = store.fetches.load(Ordering::SeqCst);
        node.registry.clear_failure("app");
        node.sync.sync_once().await;
        node.sync.sync_once().await;
        assert_eq!(store.fetches.load(Ordering::SeqCst), fetches);
        assert_eq!(node.failure("app"), Some(failure));

        // A later good deploy replaces it and clears the error.
        store.deploy("app", v1.clone(), 4).await.unwrap();
        node.sync.sync_once().await;
        assert_eq!(node.running("app"), Some(content_sha256(&v1)));
        assert_eq!(node.failure("app"), None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_undeployed_plugin_is_removed_and_a_stale_file_does_not_bring_it_back() {
        let store = Arc::new(MemoryComponents::default());
        let v1 = test_plugin("versioned-v1");
        store.deploy("app", v1.clone(), 1).await.unwrap();
        let mut node = node(&store);
        node.sync.sync_once().await;
        assert_eq!(node.running("app"), Some(content_sha256(&v1)));

        store.undeploy("app", true, 2).await.unwrap();
        node.sync.sync_once().await;
        assert_eq!(node.running("app"), None);
        assert_eq!(node.failure("app"), None);
        assert!(!node.plugins_dir.join("app.wasm").exists());

        // A copy that reappears in the folder (a node restored from a backup) is
        // removed again rather than served by this node alone.
        std::fs::write(node.plugins_dir.join("app.wasm"), &v1).unwrap();
        node.sync.reloader.reload("app").await;
        assert_eq!(node.running("app"), Some(content_sha256(&v1)));
        node.sync.sync_once().await;
        assert_eq!(node.running("app"), None);
        assert!(!node.plugins_dir.join("app.wasm").exists());

        // Deployed again, it runs again.
        store.deploy("app", v1.clone(), 3).await.unwrap();
        node.sync.sync_once().await;
        assert_eq!(node.running("app"), Some(content_sha256(&v1)));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_store_changes_nothing_and_the_next_round_catches_up() {
        let store = Arc::new(MemoryComponents::default());
        let (v1, v2) = (test_plugin("versioned-v1"), test_plugin("versioned-v2"));
        store.deploy("app", v1.clone(), 1).await.unwrap();
        let mut node = node(&store);
        node.sync.sync_once().await;
        assert_eq!(node.running("app"), Some(content_sha256(&v1)));

        store.deploy("app", v2.clone(), 2).await.unwrap();
        store.down.store(true, Ordering::SeqCst);
        node.sync.sync_once().await;
        node.sync.sync_once().await;
        assert!(node.sync.outage.is_down());
        assert_eq!(node.running("app"), Some(content_sha256(&v1)));
        assert_eq!(
            node.failure("app"),
            None,
            "an outage is not the plugin's error"
        );

        store.down.store(false, Ordering::SeqCst);
        node.sync.sync_once().await;
        assert!(!node.sync.outage.is_down());
        assert_eq!(node.running("app"), Some(content_sha256(&v2)));
        assert_eq!(node.file("app"), v2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn missing_or_corrupt_components_are_reported_not_loaded() {
        let store = Arc::new(MemoryComponents::default());
        let (v1, v2) = (test_plugin("versioned-v1"), test_plugin("versioned-v2"));
        let mut node = node(&store);

        // Deployed, but its bytes are gone.
        let missing = store.deploy("gone", v1.clone(), 1).await.unwrap();
        store.components.lock().unwrap().remove(&missing.sha256);
        // Deployed, but the bytes stored under its hash are something else.
        let corrupt = store.deploy("bent", v2, 1).await.unwrap();
        store
            .components
            .lock()
            .unwrap()
            .insert(corrupt.sha256.clone(), b"not the component".to_vec());

        node.sync.sync_once().await;
        assert_eq!(node.running("gone"), None);
        assert_eq!(node.running("bent"), None);
        let gone = node.failure("gone").unwrap();
        assert!(gone.contains("missing from the store"), "{gone}");
        let bent = node.failure("bent").unwrap();
        assert!(
            bent.contains("the store returned bytes with sha256"),
            "{bent}"
        );
        assert!(!node.plugins_dir.join("gone.wasm").exists());
        assert!(!node.plugins_dir.join("bent.wasm").exists());
    }
}
