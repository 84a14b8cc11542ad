//! What the provider modules share: posting a delivery with the headers a test
//! chooses, the events a plugin stored, and checking an exact JSON answer.

use reqwest::blocking::Response;
use serde_json::Value;

use crate::common::{client, Host, HostSpec};

/// A host running the example plugin `plugin` alone, configured with `config`:
/// the inside of its `config = { ... }` table.
pub fn provider_host(plugin: &str, config: &str) -> Host {
    HostSpec::default()
        .example_plugin(plugin)
        .config(&format!("[plugins.{plugin}]\nconfig = {{ {config} }}\n"))
        .start()
}

/// POSTs `body` as `application/json` to `/hooks/<plugin>` with each header
/// whose value is `Some`, so a test leaves one out by passing `None`.
pub fn post(host: &Host, plugin: &str, headers: &[(&str, Option<&str>)], body: &[u8]) -> Response {
    let mut request = client()
        .post(host.url(&format!("/hooks/{plugin}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        if let Some(value) = value {
            request = request.header(*name, *value);
        }
    }
    request.send().unwrap()
}

/// A refused delivery: what the case is, the signature sent (`None` for none)
/// and the body.
pub type Refused = (&'static str, Option<String>, Vec<u8>);

/// The deliveries any signature check refuses, for a provider that signs `body`
/// into `valid`: signed with another secret (`forged`), the body tampered with
/// after signing, no signature, an empty one.
pub fn forgeries(body: &[u8], valid: &str, forged: String, tampered: Vec<u8>) -> Vec<Refused> {
    vec![
        ("forged: another secret", Some(forged), body.to_vec()),
        ("tampered body", Some(valid.to_string()), tampered),
        ("no signature", None, body.to_vec()),
        ("empty signature", Some(String::new()), body.to_vec()),
    ]
}

/// Every event `plugin` has stored, from the admin API.
pub fn stored(host: &Host, plugin: &str) -> Vec<Value> {
    host.get_list(&format!("/api/events?plugin={plugin}&limit=500"), "events")
}

/// The stored event the provider calls `event_id` in `events`; panics naming
/// them all when there is none.
pub fn event<'a>(events: &'a [Value], event_id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event_id"] == event_id)
        .unwrap_or_else(|| panic!("{event_id} is not stored: {events:?}"))
}

/// Asserts a 200 `application/json` answer whose body is the JSON `expected`.
pub fn assert_json(response: Response, expected: &Value, host: &Host) {
    assert_eq!(response.status(), 200, "{}", host.log());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(&response.json::<Value>().unwrap(), expected);
}
