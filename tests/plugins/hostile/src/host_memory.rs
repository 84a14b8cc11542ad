//! Attacks on the host's own memory: each makes the host hold memory on the
//! plugin's behalf (wasi:http bodies and fields, resource-table entries, open
//! connections, staged `state` writes, output buffers) rather than in the plugin's
//! linear memory, which `memory` limits. Each repeats its step `count` times,
//! keeping everything it made, and reports what it held if the host let it finish;
//! a host that contains it ends the call first.

use hookhost_sdk::state;
use wasip2::clocks::monotonic_clock;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, RequestOptions, Scheme,
};
use wasip2::io::streams::OutputStream;

/// What one write may carry: wasmtime's default outgoing-body chunk size, so that
/// a host that still allows it is filled at full speed.
const CHUNK: usize = 1 << 20;

/// Writes into `stream` for as long as check-write allows, never waiting for the
/// host to drain it; returns the bytes written.
fn fill(stream: &OutputStream, chunk: &[u8]) -> usize {
    let mut written = 0;
    while let Ok(allowed) = stream.check_write() {
        let n = (allowed as usize).min(chunk.len());
        if n == 0 || stream.write(&chunk[..n]).is_err() {
            break;
        }
        written += n;
    }
    written
}

/// A mutable `fields` holding 56 KiB: as much as fits under the host's size limit
/// (64 KiB; going over it traps).
fn full_fields() -> Fields {
    let fields = Fields::new();
    let value = vec![b'v'; 1024];
    for i in 0..56 {
        let _ = fields.append(&format!("x-{i}"), &value);
    }
    fields
}

/// Outgoing request bodies filled to check-write and never sent (wasmtime buffers
/// each in a channel of its own).
pub fn request_bodies(count: usize) -> String {
    let new = || OutgoingRequest::new(Fields::new());
    filled_bodies(count, "request", new, OutgoingRequest::body)
}

/// The same through `outgoing-response` bodies, which no guest of this world can
/// ever send.
pub fn response_bodies(count: usize) -> String {
    let new = || OutgoingResponse::new(Fields::new());
    filled_bodies(count, "response", new, OutgoingResponse::body)
}

/// `count` bodies of new requests or responses (`new`, `body`), each filled to
/// check-write and kept with its stream; `what` names them in the report.
fn filled_bodies<R>(
    count: usize,
    what: &str,
    new: impl Fn() -> R,
    body: impl Fn(&R) -> Result<OutgoingBody, ()>,
) -> String {
    let chunk = vec![b'x'; CHUNK];
    let mut held = Vec::new();
    let mut bytes = 0;
    for _ in 0..count {
        let parent = new();
        let body = body(&parent).expect("a new message's body");
        let stream = body.write().expect("a new body's stream");
        bytes += fill(&stream, &chunk);
        // Dropped in this order (a stream before its body) if the call survives.
        held.push((stream, body, parent));
    }
    format!("held {} {what} bodies with {bytes} bytes", held.len())
}

/// Requests whose bodies are finished with full trailers: the trailers move out
/// of the resource table into the request.
pub fn trailers(count: usize) -> String {
    let mut held = Vec::new();
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        let body = request.body().expect("a new request's body");
        let _ = OutgoingBody::finish(body, Some(full_fields()));
        held.push(request);
    }
    format!("held {} requests with trailers", held.len())
}

/// Full `fields`.
pub fn fields(count: usize) -> String {
    let held: Vec<Fields> = (0..count).map(|_| full_fields()).collect();
    format!("held {} full fields", held.len())
}

/// Full headers moved into a request, then kept through the request's
/// (immutable, shared) `headers` view after the request is dropped.
pub fn header_views(count: usize) -> String {
    let mut held = Vec::new();
    for _ in 0..count {
        let request = OutgoingRequest::new(full_fields());
        held.push(request.headers());
    }
    format!("held {} header views", held.len())
}

/// Requests carrying a 1 MiB authority, a 1 MiB method and a long path, which the
/// host keeps as they are given.
pub fn request_strings(count: usize) -> String {
    let authority = "a".repeat(1 << 20);
    let method = Method::Other("A".repeat(1 << 20));
    let path = format!("/{}", "p".repeat(60 * 1024));
    let mut held = Vec::new();
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_authority(Some(&authority));
        let _ = request.set_method(&method);
        let _ = request.set_path_with_query(Some(&path));
        held.push(request);
    }
    format!("held {} requests with long strings", held.len())
}

/// Small resources (timers' pollables, request options) until the resource table
/// is full.
pub fn handles(count: usize) -> String {
    let mut pollables = Vec::new();
    let mut options = Vec::new();
    for _ in 0..count {
        pollables.push(monotonic_clock::subscribe_duration(u64::MAX / 2));
        options.push(RequestOptions::new());
    }
    format!("held {} handles", pollables.len() + options.len())
}

/// Requests sent to `target` (`host:port`, which must be allowed and should never
/// answer), all in flight at once; each holds a connection and its buffers.
pub fn in_flight(count: usize, target: &str) -> String {
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..count {
        let (request, body) = get_root(target);
        match outgoing_handler::handle(request, None) {
            Ok(response) => {
                let _ = OutgoingBody::finish(body, None);
                held.push(response);
            }
            Err(_) => refused += 1,
        }
    }
    format!("held {} requests in flight ({refused} refused)", held.len())
}

/// Requests to `target` (`host:port`, which must be allowed and should answer with
/// large headers), one at a time; each response is kept after its body is
/// dropped (which ends the connection), so only its headers stay.
pub fn received_headers(count: usize, target: &str) -> String {
    let mut held = Vec::new();
    for _ in 0..count {
        let (request, body) = get_root(target);
        let Ok(future) = outgoing_handler::handle(request, None) else {
            break;
        };
        let _ = OutgoingBody::finish(body, None);
        future.subscribe().block();
        let Some(Ok(Ok(response))) = future.get() else {
            break;
        };
        drop(response.consume());
        held.push(response);
    }
    format!("held {} received responses", held.len())
}

/// A `GET http://<target>/` and its body, not yet sent.
fn get_root(target: &str) -> (OutgoingRequest, OutgoingBody) {
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(target));
    let _ = request.set_path_with_query(Some("/"));
    let body = request.body().expect("a new request's body");
    (request, body)
}

/// 64 MiB to stdout without a newline: one line the host must not buffer whole.
pub fn stdout_without_newline(mebibytes: usize) -> String {
    let chunk = "x".repeat(1 << 20);
    for _ in 0..mebibytes {
        print!("{chunk}");
    }
    format!("wrote {mebibytes} MiB without a newline")
}

/// For a poll: `state` writes, which the host stages until the poll is saved.
/// Large values under as many new keys as the plugin may hold, then deletes of
/// distinct keys that do not exist, each staged too.
pub fn staged_state(count: usize) -> Result<String, state::StateError> {
    let value = vec![b'v'; 64 * 1024];
    let mut sets = 0;
    for i in 0..1000 {
        match state::set(&format!("big-{i}"), &value) {
            Ok(()) => sets += 1,
            Err(state::StateError::TooManyKeys(_)) => break,
            Err(other) => return Err(other),
        }
    }
    let padding = "k".repeat(200);
    for i in 0..count {
        state::delete(&format!("{padding}-{i}"))?;
    }
    Ok(format!("staged {sets} large values and {count} deletes"))
}
