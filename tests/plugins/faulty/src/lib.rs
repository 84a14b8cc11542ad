//! A test plugin that misbehaves on request. The webhook path picks the behaviour:
//!
//! - `/ok`: 200 with body `ok` and one event (`faulty.ok`, id from the `x-id` header).
//! - `/event`: as `/ok`, but the event's kind is the `x-kind` header and its payload
//!   is the request body.
//! - `/trap`: panics, which is a trap in the host.
//! - `/spin`: loops forever, so only the host's call deadline ends it.
//! - `/sleep/<ms>`: sleeps (a WASI clock wait, not a busy loop), then as `/ok`; a
//!   call that is slow but well-behaved, for graceful-shutdown tests.
//! - `/error/<case>`: returns `plugin-error::<case>` with message `said <case>`.
//! - `/bad-payload`: emits an event whose payload is not JSON.
//! - `/bad-status`: answers HTTP status 1000.
//! - `/print`: writes `to stdout` to stdout and `to stderr` to stderr, then as `/ok`.
//!
//! `describe` reports version `config.get("version")`, or `1` when unset, so tests can
//! tell two loads apart.

use hookhost_sdk::prelude::*;

struct Faulty;

impl Plugin for Faulty {
    fn describe() -> Manifest {
        Manifest::new(
            "Faulty",
            config::get("version").unwrap_or_else(|| "1".into()),
            "misbehaves on request, for tests",
        )
        .emits(["faulty.*"])
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let header = |name: &str| request.header(name).map(str::to_string);
        let ok = |payload: &str| WebhookOutcome {
            response: HttpResponse::text(200, "ok"),
            events: vec![Event::new(
                header("x-id").unwrap_or_else(|| "1".into()),
                "faulty.ok",
                payload,
            )],
        };
        match request.path.as_str() {
            "/ok" => Ok(ok("{}")),
            "/event" => {
                let mut outcome = ok(&String::from_utf8_lossy(&request.body));
                outcome.events[0].kind = header("x-kind").unwrap_or_else(|| "faulty.ok".into());
                Ok(outcome)
            }
            "/trap" => panic!("asked to trap"),
            "/spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "/error/unauthorized" => Err(PluginError::Unauthorized("said unauthorized".into())),
            "/error/bad-request" => Err(PluginError::BadRequest("said bad-request".into())),
            "/error/unavailable" => Err(PluginError::Unavailable("said unavailable".into())),
            "/error/internal" => Err(PluginError::Internal("said internal".into())),
            path if path.starts_with("/sleep/") => {
                let ms: u64 = path["/sleep/".len()..]
                    .parse()
                    .map_err(|_| PluginError::BadRequest(format!("not milliseconds: {path}")))?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(ok("{}"))
            }
            "/bad-payload" => Ok(ok("{not json")),
            "/bad-status" => {
                let mut outcome = ok("{}");
                outcome.response.status = 1000;
                Ok(outcome)
            }
            "/print" => {
                println!("to stdout");
                eprintln!("to stderr");
                Ok(ok("{}"))
            }
            other => Err(PluginError::BadRequest(format!("unknown path {other}"))),
        }
    }
}

hookhost_sdk::export!(Faulty);
