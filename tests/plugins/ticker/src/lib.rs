//! A test plugin that polls nothing but counts: each poll emits one `ticker.tick`
//! event whose id is one more than the cursor it was given (`1` on the first poll),
//! and returns that id as the new cursor. It exists in two builds for timer tests:
//! version `1.0.0` asks to be polled every 3,600 s, `2.0.0` (feature `v2`) every
//! second. Its webhook (`POST /hooks/<id>`) answers the `state` key from the
//! request body, or sets it when the body is `key=value`, for state tests.
//! Config `kind`, when set, replaces the kind of the events it polls (its manifest
//! still emits only `ticker.tick`), for tests of the host refusing undeclared kinds.

use hookhost_sdk::prelude::*;

const INTERVAL: u32 = if cfg!(feature = "v2") { 1 } else { 3600 };
const VERSION: &str = if cfg!(feature = "v2") {
    "2.0.0"
} else {
    "1.0.0"
};

struct Ticker;

impl Plugin for Ticker {
    fn describe() -> Manifest {
        Manifest::new(
            "Ticker",
            VERSION,
            format!("counts one tick per poll, every {INTERVAL} s, for tests"),
        )
        .emits(["ticker.tick"])
        .polls_every(INTERVAL)
    }

    fn handle_webhook(request: WebhookRequest) -> Result<WebhookOutcome, PluginError> {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let answer = match body.split_once('=') {
            Some((key, value)) => match state::set(key, value.as_bytes()) {
                Ok(()) => "ok".to_string(),
                Err(error) => format!("{error:?}"),
            },
            None => match state::get(&body) {
                Ok(Some(value)) => String::from_utf8_lossy(&value).into_owned(),
                Ok(None) => "none".to_string(),
                Err(error) => format!("{error:?}"),
            },
        };
        Ok(WebhookOutcome {
            response: HttpResponse::text(200, answer),
            events: vec![],
        })
    }

    fn poll(cursor: Option<String>) -> Result<PollOutcome, PluginError> {
        let last: u64 = match cursor {
            Some(cursor) => cursor
                .parse()
                .map_err(|_| PluginError::Internal(format!("cursor {cursor:?} is not a count")))?,
            None => 0,
        };
        let tick = (last + 1).to_string();
        let event = Event {
            subject: Some(VERSION.into()),
            ..Event::new(
                tick.clone(),
                config::get("kind").unwrap_or_else(|| "ticker.tick".into()),
                format!("{{\"tick\":{tick}}}"),
            )
        };
        Ok(PollOutcome::new(vec![event], Some(tick)))
    }
}

hookhost_sdk::export!(Ticker);
