//! The listener against clients that hold connections without using them: the
//! connection cap (`max_connections`), the idle timeout (sockets that send nothing,
//! half an HTTP/2 preface, a finished HTTP/2 handshake, idle keep-alive, a request
//! head that stops), the body deadline (the open login form, HTTP/2), and the send
//! timeout (peers that read none of a response), while clients that are merely
//! slow are served. Real binary, real sockets; the host's timeouts are its real
//! ones (10 s, the send timeout 60 s), so each test waits them out once, with
//! every socket waiting at the same time.

mod common;

use std::convert::Infallible;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{client, HostSpec};
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The host's `IDLE_TIMEOUT` and `BODY_READ_TIMEOUT` (`host/src/http/listener.rs`).
const HOST_TIMEOUT: Duration = Duration::from_secs(10);
/// The host's `SEND_TIMEOUT`.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How much later than its timeout the host may close a socket on a loaded
/// machine. A correctness bound, not a target.
const MARGIN: Duration = Duration::from_secs(20);

/// The first 16 of the 24 bytes a prior-knowledge HTTP/2 client opens with.
const HALF_H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
/// The whole preface and an empty SETTINGS frame: a finished HTTP/2 handshake
/// from the client's side, after which it opens no stream.
const H2_HANDSHAKE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn connect(host: &common::Host) -> TcpStream {
    let stream = TcpStream::connect(host.base_url.trim_start_matches("http://")).unwrap();
    // Longer than the host's timeout plus the margin: if this fires, the host did
    // not close the socket.
    stream
        .set_read_timeout(Some(HOST_TIMEOUT + MARGIN + Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `first` (if anything) on a new connection, then reads until the host
/// closes it; returns what the host sent and how long after sending it closed.
fn hold_open(host: &common::Host, first: &'static [u8]) -> JoinHandle<(Vec<u8>, Duration)> {
    let mut stream = connect(host);
    std::thread::spawn(move || {
        stream.write_all(first).unwrap();
        let sent = Instant::now();
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => {}
            // A reset is the host closing with unread bytes; still closed by the host.
            Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
            Err(error) => panic!(
                "the host did not close a connection that sent {:?} within {:?}: {error}",
                String::from_utf8_lossy(first),
                sent.elapsed()
            ),
        }
        (answer, sent.elapsed())
    })
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(line_start))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[test]
fn idle_and_half_open_connections_past_the_cap_neither_stop_service_nor_stay_open() {
    let host = HostSpec::default()
        .test_plugin("hostile")
        .config("max_connections = 4\n")
        .start();
    // Twice the cap: sockets that send nothing and sockets stuck in the middle of
    // the HTTP/2 preface, all connected before anyone asks for anything.
    let attackers: Vec<_> = (0..8)
        .map(|i| hold_open(&host, if i % 2 == 0 { b"" } else { HALF_H2_PREFACE }))
        .collect();

    // A client with a request to send is served while the attackers hold the cap:
    // idle connections make room for it.
    let ok = host.post("/hooks/hostile/ok");
    assert_eq!(ok.status(), 200);

    let metrics = host.get("/metrics");
    let metrics = metrics.text().unwrap();
    let open = metric(&metrics, "hookhost_connections_open{listener=\"listen\"} ");
    assert!(
        open <= 4,
        "{open} connections open with max_connections = 4"
    );
    // 8 attackers and the client above through 4 slots: at least 5 made room.
    let evicted = metric(
        &metrics,
        "hookhost_connections_closed_by_host_total{listener=\"listen\",reason=\"evicted\"} ",
    );
    assert!(evicted >= 5, "{evicted} evicted:\n{metrics}");
    assert!(
        metric(
            &metrics,
            "hookhost_connections_waited_total{listener=\"listen\"} "
        ) >= 5,
        "{metrics}"
    );

    // Every attacker's socket was closed by the host: evicted, or after the idle
    // timeout.
    for attacker in attackers {
        let (answer, elapsed) = attacker.join().unwrap();
        assert!(answer.is_empty(), "{answer:?}");
        assert!(elapsed < HOST_TIMEOUT + MARGIN, "closed after {elapsed:?}");
    }
    // Once per episode, not once per connection.
    let log = host.log();
    assert_eq!(
        log.matches("connection cap reached").count(),
        1,
        "the cap is logged once per episode:\n{log}"
    );
    common::eventually("the end of the episode logged", MARGIN, || {
        host.log().contains("well below the cap again")
    });

    // And the host still serves.
    let ok = host.post("/hooks/hostile/ok");
    assert_eq!(ok.status(), 200);
}

#[test]
fn connections_without_a_request_in_flight_are_closed_after_the_idle_timeout() {
    let host = HostSpec::default().test_plugin("hostile").start();
    let idle = [
        ("nothing sent", &b""[..]),
        ("half an HTTP/2 preface", HALF_H2_PREFACE),
        ("an HTTP/2 handshake and no stream", H2_HANDSHAKE),
        (
            "half an HTTP/1 request head",
            b"POST /hooks/hostile/ok HTTP/1.",
        ),
        (
            "an answered HTTP/1.1 request, then keep-alive",
            b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
        ),
    ];
    let held: Vec<_> = idle
        .iter()
        .map(|(what, first)| (*what, hold_open(&host, first)))
        .collect();
    for (what, held) in held {
        let (answer, elapsed) = held.join().unwrap();
        // The idle timeout closed it: not sooner (nothing else would), and not
        // much later.
        assert!(
            elapsed >= HOST_TIMEOUT / 2 && elapsed < HOST_TIMEOUT + MARGIN,
            "{what}: closed after {elapsed:?}"
        );
        if what.contains("keep-alive") {
            assert!(answer.starts_with(b"HTTP/1.1 200"), "{what}: {answer:?}");
        }
        if what.contains("handshake") {
            // The host's SETTINGS, and a GOAWAY (type 7) before it closes.
            assert!(answer.len() >= 9 && answer[3] == 4, "{what}: {answer:?}");
        }
    }
}

#[test]
fn a_request_in_flight_longer_than_the_idle_timeout_is_answered() {
    let host = HostSpec::default()
        .test_plugin("hostile")
        .config("[plugins.hostile]\ntimeout = \"15s\"\n")
        .start();
    let started = Instant::now();
    let response = host.post("/hooks/hostile/spin");
    // The plugin's deadline ended the call (504), not the idle timeout the
    // connection: it was busy.
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() > HOST_TIMEOUT, "{:?}", started.elapsed());
}

/// A host whose admin surface needs a token, so that `/login` reads a form.
fn host_with_admin_token() -> common::Host {
    HostSpec::default()
        .config("admin_token = \"a-long-enough-admin-token\"\n")
        .start()
}

#[test]
fn a_login_form_that_never_finishes_gets_408() {
    let host = host_with_admin_token();
    let mut stream = connect(&host);
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
              content-length: 100\r\n\r\ntoken=a-lo",
        )
        .unwrap();
    let sent = Instant::now();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok(),
        "{read:?} after {:?}: {answer}",
        sent.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"body""#), "{answer}");
    assert!(
        sent.elapsed() < HOST_TIMEOUT + MARGIN,
        "{:?}",
        sent.elapsed()
    );

    // A form larger than any token is refused without being buffered.
    let large = format!("token={}", "a".repeat(64 * 1024));
    let response = client()
        .post(host.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(large)
        .send()
        .unwrap();
    assert_eq!(response.status(), 413);
}

/// Reads one HTTP/1 answer (head and a `content-length` body) from `stream`,
/// leaving the connection open; the head in lower case, and the body.
fn read_answer(stream: &mut TcpStream) -> (String, String) {
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "the host closed mid-head"
        );
        received.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&received).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (head, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn an_answer_given_before_the_body_was_read_says_the_connection_closes() {
    let host = host_with_admin_token();

    // Refused before its body is read: the rest of the body is in the way of any
    // next request, so the answer says so and the host closes the connection.
    let mut stream = connect(&host);
    stream
        .write_all(
            b"PUT /api/plugins/refused HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n\0asm",
        )
        .unwrap();
    let (head, _) = read_answer(&mut stream);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest)),
        // Closed with the body still arriving.
        Err(error) => assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}"),
    }

    // A body that was read leaves the connection open for the next request.
    let mut stream = connect(&host);
    let form = "token=not-the-token";
    for _ in 0..2 {
        write!(
            stream,
            "POST /login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n\
             content-length: {}\r\n\r\n{form}",
            form.len()
        )
        .unwrap();
        let (head, body) = read_answer(&mut stream);
        assert!(head.starts_with("http/1.1 401"), "{head}\n{body}");
        assert!(!head.contains("connection: close"), "{head}");
    }
}

#[test]
fn http2_requests_are_served_and_a_stalled_http2_body_gets_408() {
    let host = HostSpec::default().test_plugin("hostile").start();
    let url = host.url("/hooks/hostile/ok");
    let address = host.base_url.trim_start_matches("http://").to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake::<
            _,
            _,
            UnsyncBoxBody<Bytes, Infallible>,
        >(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
        tokio::spawn(connection);

        let whole = Full::new(Bytes::from_static(b"{}")).boxed_unsync();
        let request = http::Request::post(&url).body(whole).unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);

        // A body that starts and never ends, on the same connection.
        let stalled = futures_util::stream::iter([Ok(Frame::data(Bytes::from_static(b"{")))])
            .chain(futures_util::stream::pending());
        let request = http::Request::post(&url)
            .body(StreamBody::new(stalled).boxed_unsync())
            .unwrap();
        let sent = Instant::now();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 408);
        assert!(
            sent.elapsed() < HOST_TIMEOUT + MARGIN,
            "{:?}",
            sent.elapsed()
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(r#""error":"body""#), "{body}");
    });
}

/// A host whose `hostile` plugin may answer `/huge-response` with `LARGE` bytes.
fn large_response_host() -> common::Host {
    HostSpec::default()
        .test_plugin("hostile")
        .config("[plugins.hostile]\nmax_response_bytes = \"8MiB\"\n")
        .start()
}

/// Far more than the socket buffers on both sides hold, so the host's writes block
/// whenever the client is not reading.
const LARGE: usize = 4 * 1024 * 1024;

fn large_response_request() -> String {
    format!(
        "POST /hooks/hostile/huge-response HTTP/1.1\r\nhost: x\r\nx-bytes: {LARGE}\r\n\
         content-length: 0\r\n\r\n"
    )
}

/// A connection whose receive buffer is as small as the kernel allows, so that a
/// client that does not read stops the host's writes at once.
fn connect_with_small_receive_buffer(host: &common::Host) -> TcpStream {
    let address = host.base_url.trim_start_matches("http://").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(address).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(SEND_TIMEOUT + MARGIN))
        .unwrap();
    stream
}

/// A connection with a small receive buffer that has asked for a large response
/// over HTTP/1.1 and read nothing of it yet.
fn ask_for_a_large_response(host: &common::Host) -> TcpStream {
    let mut stream = connect_with_small_receive_buffer(host);
    stream
        .write_all(large_response_request().as_bytes())
        .unwrap();
    stream
}

#[test]
fn a_slow_reader_gets_all_of_a_large_response() {
    let host = large_response_host();
    let mut stream = ask_for_a_large_response(&host);
    // About 256 KiB/s: the download takes longer than the idle timeout, and the
    // host's writes are blocked most of that time.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut body_start = None;
    while body_start.is_none_or(|start| answer.len() - start < LARGE) {
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "closed after {} bytes", answer.len());
        answer.extend_from_slice(&chunk[..read]);
        body_start = body_start.or_else(|| {
            let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n");
            head_end.map(|end| end + 4)
        });
        std::thread::sleep(Duration::from_millis(60));
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{:?}", &answer[..64]);
    assert_eq!(answer.len() - body_start.unwrap(), LARGE);
}

#[test]
fn peers_that_take_none_of_a_response_are_closed_after_the_send_timeout() {
    let host = large_response_host();
    // HTTP/1.1: asks for a large response and never reads it.
    let mut stalled = ask_for_a_large_response(&host);
    let asked = Instant::now();

    // HTTP/2: a stream window of 0, never opened, so the host cannot send a byte
    // of any response body.
    let address = host.base_url.trim_start_matches("http://").to_string();
    let url = host.url("/hooks/hostile/ok");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let h2_closed_after = runtime.block_on(async move {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(0)
                .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .unwrap();
        let closed = tokio::spawn(connection);
        let request = http::Request::post(&url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let started = Instant::now();
        let _ = closed.await.unwrap();
        drop(response);
        started.elapsed()
    });
    assert!(
        h2_closed_after >= SEND_TIMEOUT / 2 && h2_closed_after < SEND_TIMEOUT + MARGIN,
        "HTTP/2 closed after {h2_closed_after:?}"
    );

    // By now the HTTP/1.1 connection was closed too: what arrives is what the
    // buffers held, not the whole response.
    let remaining = (asked + SEND_TIMEOUT + MARGIN).saturating_duration_since(Instant::now());
    std::thread::sleep(remaining);
    let mut answer = Vec::new();
    match stalled.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the stalled connection is still open: {error}"),
    }
    assert!(answer.len() < LARGE, "{} bytes arrived", answer.len());

    let metrics = host.metrics();
    let closed = metric(
        &metrics,
        "hookhost_connections_closed_by_host_total{listener=\"listen\",reason=\"send_timeout\"} ",
    );
    assert_eq!(closed, 2, "{metrics}");
}
