//! Several hookhost nodes on one PostgreSQL behave as one host (issue 10): three
//! real nodes on loopback, each with its own plugins and data directory, sharing a
//! real PostgreSQL server started by the test (tests/common/postgres.rs).
//!
//! A node is killed with SIGKILL, never stopped politely, so what is shown is what
//! the store and the leases guarantee, not what a graceful shutdown tidies up.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::feed::Feed;
use common::postgres::Postgres;
use common::traffic::SteadyTraffic;
use common::{
    client, eventually, example_plugin, github_signature, sha256_hex, test_plugin,
    versioned_plugin, Host,
};
use serde_json::Value;

const SECRET: &str = "fleet-secret";
const WAIT: Duration = Duration::from_secs(90);

/// `count` nodes on `database`, each with the same plugins and config.
fn start_nodes(
    database: &Postgres,
    count: usize,
    plugins: &[(&str, PathBuf)],
    config: &str,
) -> Vec<Host> {
    (0..count)
        .map(|_| database.node(plugins, config).start())
        .collect()
}

/// Every event `plugin` stored, as seen through `host`, by event id with how many
/// times each is stored.
fn stored_counts(host: &Host, plugin: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let mut before = String::new();
    loop {
        let page = host.get_json(&format!("/api/events?plugin={plugin}&limit=500{before}"));
        let events = page["events"].as_array().unwrap();
        for event in events {
            *counts
                .entry(event["event_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        match events.last() {
            Some(last) if events.len() == 500 => before = format!("&before={}", last["id"]),
            _ => return counts,
        }
    }
}

fn push_body(n: usize) -> String {
    format!(r#"{{"ref":"refs/heads/main","repository":{{"full_name":"acme/widgets"}},"n":{n}}}"#)
}

/// Sends the GitHub push delivery `id` to `url`: the status, or `None` when the
/// node did not answer (it was killed).
fn send_push(client: &reqwest::blocking::Client, url: &str, id: &str, n: usize) -> Option<u16> {
    let body = push_body(n);
    client
        .post(format!("{url}/hooks/github"))
        .header("x-github-event", "push")
        .header("x-github-delivery", id)
        .header(
            "x-hub-signature-256",
            github_signature(SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .ok()
        .map(|response| response.status().as_u16())
}

#[test]
fn webhooks_sent_round_robin_are_stored_once_while_a_node_is_killed() {
    let database = Postgres::start();
    let mut nodes = start_nodes(
        &database,
        3,
        &[("github", example_plugin("github"))],
        &format!("[plugins.github]\nconfig = {{ secret = \"{SECRET}\" }}\n"),
    );
    // The nodes a sender may use; the killed one is taken out of the rotation only
    // after it is dead, so some deliveries certainly reach it as it dies.
    let urls: Arc<RwLock<Vec<String>>> = Arc::new(RwLock::new(
        nodes.iter().map(|n| n.base_url.clone()).collect(),
    ));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let resent_elsewhere = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|thread| {
            let (urls, acknowledged, resent_elsewhere, stop) = (
                urls.clone(),
                acknowledged.clone(),
                resent_elsewhere.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let client = client();
                let mut next = thread;
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let id = format!("t{thread}-{n}");
                    // As a provider does: retry the same delivery, on whichever node
                    // the balancer picks next, until one acknowledges it.
                    let acknowledged_by = loop {
                        let url = {
                            let urls = urls.read().unwrap();
                            next += 1;
                            urls[next % urls.len()].clone()
                        };
                        match send_push(&client, &url, &id, n) {
                            Some(200) => break url,
                            Some(status) => panic!("{id}: unexpected status {status} from {url}"),
                            None => std::thread::sleep(Duration::from_millis(20)),
                        }
                    };
                    acknowledged.lock().unwrap().push(id.clone());
                    // Every fifth delivery is retried by the provider anyway (a lost
                    // acknowledgement), and the retry reaches another node.
                    if n % 5 == 0 {
                        let other = {
                            let urls = urls.read().unwrap();
                            urls.iter().find(|u| **u != acknowledged_by).cloned()
                        };
                        if let Some(other) = other {
                            if send_push(&client, &other, &id, n) == Some(200) {
                                resent_elsewhere.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        })
        .collect();

    eventually("150 acknowledged webhooks", WAIT, || {
        acknowledged.lock().unwrap().len() >= 150
    });
    let victim = nodes.remove(1);
    let victim_url = victim.base_url.clone();
    let mut victim = victim;
    victim.kill();
    urls.write().unwrap().retain(|u| *u != victim_url);
    let at_kill = acknowledged.lock().unwrap().len();
    eventually(
        "150 more acknowledged webhooks after the kill",
        WAIT,
        || acknowledged.lock().unwrap().len() >= at_kill + 150,
    );
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.join().unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    let counts = stored_counts(&nodes[0], "github");
    for id in &acknowledged {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "acknowledged {id} is stored exactly once"
        );
    }
    assert!(
        counts.values().all(|&n| n == 1),
        "no event is stored twice: {:?}",
        counts.iter().filter(|(_, &n)| n > 1).collect::<Vec<_>>()
    );
    assert!(
        resent_elsewhere.load(Ordering::Relaxed) >= 50,
        "provider retries reached other nodes"
    );
    // Both survivors see the same log.
    assert_eq!(stored_counts(&nodes[1], "github"), counts);
    println!(
        "{} deliveries acknowledged ({} before the kill), {} retried on another node, {} events stored",
        acknowledged.len(),
        at_kill,
        resent_elsewhere.load(Ordering::Relaxed),
        counts.len()
    );
}

#[test]
fn a_one_second_poller_is_polled_once_per_second_by_the_whole_fleet_and_survives_its_holder() {
    let database = Postgres::start();
    let feed = Feed::start(&[1, 2, 3]);
    let mut nodes = start_nodes(
        &database,
        3,
        &[("feed", example_plugin("feed"))],
        &feed.config("1s", ""),
    );
    eventually("the first items stored", WAIT, || {
        stored_counts(&nodes[0], "feed").len() == 3
    });

    // Over a stretch of steady polling: about one request a second in all. Three
    // nodes each polling would make three.
    let window = Duration::from_secs(12);
    let before = feed.request_count();
    let mut next_item = 4;
    let started = Instant::now();
    while started.elapsed() < window {
        feed.publish(&[next_item]);
        next_item += 1;
        std::thread::sleep(Duration::from_millis(1500));
    }
    let polls = feed.request_count() - before;
    let per_second = polls as f64 / started.elapsed().as_secs_f64();
    println!(
        "{polls} polls in {:?}: {per_second:.2}/s fleet-wide",
        started.elapsed()
    );
    assert!(
        (0.5..=1.6).contains(&per_second),
        "the fleet polls about once a second, not once per node: {per_second:.2}/s"
    );
    let holders: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].holds_poll_lease("feed"))
        .collect();
    assert_eq!(holders.len(), 1, "exactly one node holds the poll lease");

    // Kill the holder: another node takes the lease over and polling goes on.
    let mut holder = nodes.remove(holders[0]);
    holder.kill();
    let killed_at = Instant::now();
    let polls_at_kill = feed.request_count();
    feed.publish(&[next_item]);
    let last_item = next_item;
    eventually("polling to resume on another node", WAIT, || {
        feed.request_count() > polls_at_kill + 1
    });
    println!(
        "polling resumed {:?} after the holder was killed",
        killed_at.elapsed()
    );
    eventually("the item published at the kill stored", WAIT, || {
        stored_counts(&nodes[0], "feed").contains_key(&last_item.to_string())
    });
    let counts = stored_counts(&nodes[0], "feed");
    assert_eq!(
        counts.len(),
        last_item as usize,
        "every item is stored: {counts:?}"
    );
    assert!(
        counts.values().all(|&n| n == 1),
        "every item is stored once: {counts:?}"
    );
    let holders: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].holds_poll_lease("feed"))
        .collect();
    assert_eq!(
        holders.len(),
        1,
        "exactly one survivor holds the poll lease"
    );
}

#[test]
fn a_handler_delivery_whose_node_died_mid_call_is_completed_by_another_node() {
    let database = Postgres::start();
    let mut nodes = start_nodes(
        &database,
        3,
        &[
            ("faulty", test_plugin("faulty")),
            ("handler", test_plugin("handler")),
        ],
        "[plugins.handler]\nconfig = { subscriptions = \"faulty.slow.*\" }\ntimeout = \"12s\"\n",
    );
    let response = client()
        .post(nodes[0].url("/hooks/faulty/event"))
        .header("x-id", "slow-1")
        .header("x-kind", "faulty.slow.job")
        .body(r#"{"sleep_first_attempt_ms": 10000}"#)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);

    // Whichever node claimed the delivery is inside the handler's first attempt.
    let mut claimant = None;
    eventually("a node to start the first attempt", WAIT, || {
        claimant = (0..nodes.len()).find(|&i| {
            nodes[i]
                .log()
                .contains("sleeping in faulty/slow-1 attempt 1")
        });
        claimant.is_some()
    });
    let mut dead = nodes.remove(claimant.unwrap());
    dead.kill();

    let mut delivery = Value::Null;
    eventually(
        "another node to deliver it",
        Duration::from_secs(180),
        || {
            delivery = nodes[0].get_json("/api/deliveries?plugin=handler")["deliveries"][0].clone();
            delivery["state"] == "delivered"
        },
    );
    assert_eq!(delivery["attempts"], 2, "{delivery}");
    assert!(
        nodes
            .iter()
            .any(|n| n.log().contains("handled faulty/slow-1 attempt 2")),
        "a surviving node ran the second attempt"
    );
}

#[test]
fn a_component_deployed_through_one_node_is_served_by_all_three_while_requests_succeed() {
    let database = Postgres::start();
    let v1 = versioned_plugin("v1");
    let v2 = versioned_plugin("v2");
    let nodes = start_nodes(&database, 3, &[("app", test_plugin("versioned-v1"))], "");
    for node in &nodes {
        assert_eq!(node.running_sha256("app"), Some(sha256_hex(&v1)));
    }

    // Steady traffic to every node for the whole deploy: each request must succeed.
    let traffic = SteadyTraffic::start(nodes.iter().map(|n| n.url("/hooks/app")).collect());
    std::thread::sleep(Duration::from_millis(500));

    let deployed = client()
        .put(nodes[0].url("/api/plugins/app"))
        .body(v2.clone())
        .send()
        .unwrap();
    assert_eq!(deployed.status(), 200, "{}", deployed.text().unwrap());
    let deployed_at = Instant::now();
    let mut everywhere = None;
    eventually("every node to run v2", WAIT, || {
        let done = nodes
            .iter()
            .all(|n| n.running_sha256("app").as_deref() == Some(sha256_hex(&v2).as_str()));
        if done && everywhere.is_none() {
            everywhere = Some(deployed_at.elapsed());
        }
        done
    });
    let everywhere = everywhere.unwrap();
    println!("v2 ran on all three nodes {everywhere:?} after the deploy answered");
    assert!(
        everywhere <= Duration::from_secs(5),
        "deployed everywhere within 5 s: {everywhere:?}"
    );
    for node in &nodes {
        let answer = client()
            .post(node.url("/hooks/app"))
            .body("{}")
            .send()
            .unwrap();
        assert_eq!(answer.text().unwrap(), "v2");
    }
    std::thread::sleep(Duration::from_millis(500));
    let answers = traffic.stop_all_succeeded();
    assert!(
        answers.iter().any(|(_, body)| body == "v1"),
        "v1 served before the deploy"
    );
    assert!(
        answers.iter().any(|(_, body)| body == "v2"),
        "v2 served after it"
    );

    // A node that starts later runs the fleet's version, not the file it was given.
    let late = start_nodes(&database, 1, &[("app", test_plugin("versioned-v1"))], "");
    eventually("the late node to run v2", WAIT, || {
        late[0].running_sha256("app").as_deref() == Some(sha256_hex(&v2).as_str())
    });
}

#[test]
fn while_postgres_is_down_webhooks_get_503_and_nothing_is_stored_then_nodes_recover() {
    let mut database = Postgres::start();
    let nodes = start_nodes(
        &database,
        3,
        &[("github", example_plugin("github"))],
        &format!("[plugins.github]\nconfig = {{ secret = \"{SECRET}\" }}\n"),
    );
    let client = client();
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            send_push(&client, &node.base_url, &format!("before-{i}"), i),
            Some(200)
        );
    }

    database.stop();
    for (i, node) in nodes.iter().enumerate() {
        let body = push_body(i);
        let response = client
            .post(node.url("/hooks/github"))
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("down-{i}"))
            .header(
                "x-hub-signature-256",
                github_signature(SECRET, body.as_bytes()),
            )
            .body(body)
            .send()
            .unwrap();
        assert_eq!(
            response.status(),
            503,
            "node {i} while the database is down"
        );
        assert!(
            response.headers().contains_key("retry-after"),
            "node {i}: Retry-After"
        );
        let health = client.get(node.url("/healthz")).send().unwrap();
        assert_eq!(health.status(), 503, "node {i}'s /healthz");
        let health: Value = health.json().unwrap();
        assert_eq!(health["database"], "down", "{health}");
    }

    database.start_again();
    for (i, node) in nodes.iter().enumerate() {
        eventually(&format!("node {i} to take webhooks again"), WAIT, || {
            send_push(&client, &node.base_url, &format!("after-{i}"), i) == Some(200)
        });
        let health = client.get(node.url("/healthz")).send().unwrap();
        assert_eq!(health.status(), 200, "node {i}'s /healthz after recovery");
    }
    let counts = stored_counts(&nodes[2], "github");
    for i in 0..nodes.len() {
        assert_eq!(counts.get(&format!("before-{i}")), Some(&1));
        assert_eq!(counts.get(&format!("after-{i}")), Some(&1));
        assert_eq!(
            counts.get(&format!("down-{i}")),
            None,
            "nothing stored while down"
        );
    }
}
