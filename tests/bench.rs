//! Requests per second through the host for the valid-signature case of the
//! Standard Webhooks conformance subject, per language, over loopback. Ignored by
//! default (it measures, it asserts nothing about speed); run it with
//!     cargo test --release --test bench -- --ignored --nocapture
//! and record the figures in BENCHMARKS.md.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use hmac::{Hmac, Mac};
use sha2::Sha256;

const LANGUAGES: [&str; 5] = common::STANDARD_LANGUAGES;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CLIENTS: usize = 4;
const DURATION: Duration = Duration::from_secs(5);

#[test]
#[ignore = "a benchmark: run explicitly, see the module docs"]
fn requests_per_second_for_a_valid_delivery() {
    let host = common::standard_receivers_host(SECRET, "");
    let body = br#"{"type":"invoice.paid","data":{"id":"in_1","amount":1200,"currency":"eur"}}"#;
    let key = BASE64
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();

    println!(
        "language  req/s  ({CLIENTS} clients, {DURATION:?}, {} byte body)",
        body.len()
    );
    for lang in LANGUAGES {
        let url = host.url(&format!("/hooks/standard-{lang}"));
        let run = |until: Instant| {
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..CLIENTS)
                    .map(|_| {
                        scope.spawn(|| {
                            let client = common::client();
                            let mut done = 0u64;
                            while Instant::now() < until {
                                let ts = SystemTime::now()
                                    .duration_since(UNIX_EPOCH)
                                    .unwrap()
                                    .as_secs()
                                    .to_string();
                                let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                                mac.update(format!("msg_bench.{ts}.").as_bytes());
                                mac.update(body);
                                let signature =
                                    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
                                let response = client
                                    .post(&url)
                                    .header("webhook-id", "msg_bench")
                                    .header("webhook-timestamp", ts)
                                    .header("webhook-signature", signature)
                                    .body(body.to_vec())
                                    .send()
                                    .unwrap();
                                assert_eq!(response.status(), 200, "{lang}");
                                done += 1;
                            }
                            done
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
            })
        };
        run(Instant::now() + Duration::from_millis(500)); // warm-up
        let start = Instant::now();
        let done = run(start + DURATION);
        let rate = done as f64 / start.elapsed().as_secs_f64();
        println!("{lang:<8}  {rate:>6.0}");
    }
}
