//! A JSON feed on 127.0.0.1 for the `feed` example plugin to poll, with what it was
//! asked and a switch for how it answers (tests/polling.rs, tests/fleet.rs).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// How the test's feed answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the items and an ETag, or 304 when `If-None-Match` matches.
    Serve,
    /// 500.
    Fail,
    /// Holds each request until the mode changes, then answers as the new mode.
    Hold,
}

#[derive(Debug)]
pub struct Seen {
    pub at: Instant,
    pub if_none_match: Option<String>,
}

pub struct FeedState {
    /// Newest first, as the feed plugin expects.
    pub items: Vec<Value>,
    /// Bumped with every change of `items`; the ETag is `"v<n>"`.
    pub version: u32,
    pub mode: Mode,
    pub requests: Vec<Seen>,
}

/// A JSON feed (`{"items": [...]}`) on 127.0.0.1, served from its own thread.
pub struct Feed {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FeedState>>,
}

impl Feed {
    pub fn start(ids: &[u32]) -> Feed {
        let state = Arc::new(Mutex::new(FeedState {
            items: Vec::new(),
            version: 0,
            mode: Mode::Serve,
            requests: Vec::new(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/feed.json", axum::routing::get(serve_feed))
            .with_state(state.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let feed = Feed { addr, state };
        feed.publish(ids);
        feed
    }

    /// Adds items (oldest first in `ids`) to the top of the feed.
    pub fn publish(&self, ids: &[u32]) {
        let mut state = self.state.lock().unwrap();
        for id in ids {
            state.items.insert(
                0,
                json!({ "id": id.to_string(), "title": format!("item {id}") }),
            );
        }
        state.version += 1;
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    pub fn url(&self) -> String {
        format!("http://{}/feed.json", self.addr)
    }

    /// `[plugins.feed]` polling this feed every `interval`.
    /// A host with the `feed` example plugin polling this feed every `interval`.
    pub fn host_spec(&self, interval: &str) -> super::HostSpec {
        super::HostSpec::default()
            .example_plugin("feed")
            .config(&self.config(interval, ""))
    }

    pub fn config(&self, interval: &str, extra: &str) -> String {
        format!(
            "[plugins.feed]\npoll_interval = \"{interval}\"\nallowed_hosts = [\"{}\"]\nconfig = {{ url = \"{}\" }}\n{extra}",
            self.addr,
            self.url()
        )
    }
}

async fn serve_feed(State(state): State<Arc<Mutex<FeedState>>>, headers: HeaderMap) -> Response {
    let if_none_match = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    state.lock().unwrap().requests.push(Seen {
        at: Instant::now(),
        if_none_match: if_none_match.clone(),
    });
    while state.lock().unwrap().mode == Mode::Hold {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state = state.lock().unwrap();
    if state.mode == Mode::Fail {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let etag = format!("\"v{}\"", state.version);
    if if_none_match.as_deref() == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    (
        [("etag", etag), ("content-type", "application/json".into())],
        json!({ "items": state.items }).to_string(),
    )
        .into_response()
}
