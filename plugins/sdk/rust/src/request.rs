//! Reading what a call is given: a webhook request's headers and body (as text,
//! as JSON), a stored event's JSON payload.

#[cfg(feature = "json")]
use super::StoredEvent;
use super::{PluginError, WebhookRequest};

impl WebhookRequest {
    /// The first value of header `name`, whatever its case; `None` when the
    /// request has no such header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The first value of header `name`, whatever its case, when the header
    /// carries what makes the request authentic (a signature, a signed timestamp):
    /// `unauthorized` ("missing <name> header", HTTP 401) when it is absent or
    /// empty.
    pub fn auth_header(&self, name: &str) -> Result<&str, PluginError> {
        self.header(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| PluginError::Unauthorized(format!("missing {name} header")))
    }

    /// Every value of header `name`, whatever its case, in the order received (a
    /// header sent several times arrives as several pairs).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text, unchanged, for storing a JSON body as the event's
    /// payload exactly as the provider signed it (re-serialising could change
    /// it); `bad-request` ("body is not UTF-8") when it is not text.
    pub fn body_text(&self) -> Result<String, PluginError> {
        String::from_utf8(self.body.clone())
            .map_err(|_| PluginError::BadRequest("body is not UTF-8".into()))
    }

    /// The body parsed as JSON; `bad-request` ("body is not JSON: ...") when it is
    /// not.
    #[cfg(feature = "json")]
    #[inline]
    pub fn json_body(&self) -> Result<serde_json::Value, PluginError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| PluginError::BadRequest(format!("body is not JSON: {e}")))
    }

    /// The body parsed as JSON into `T`, usually a struct of just the fields the
    /// plugin reads (`#[derive(Deserialize)]`, borrowing strings from the body):
    /// the whole body is still checked to be JSON, but what `T` does not name is
    /// skipped instead of built into a tree, which costs a fraction of
    /// `json_body` (BENCHMARKS.md, "Typed fields").
    /// `bad-request` ("body is not the expected JSON: ...") when it is not.
    #[cfg(feature = "json")]
    #[inline]
    pub fn json<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| PluginError::BadRequest(format!("body is not the expected JSON: {e}")))
    }
}

#[cfg(feature = "json")]
impl StoredEvent {
    /// The event's payload parsed as JSON; `internal` ("payload is not JSON: ...")
    /// when it is not, which the host's own check makes a bug in the source.
    #[inline]
    pub fn json_payload(&self) -> Result<serde_json::Value, PluginError> {
        serde_json::from_str(&self.event.payload)
            .map_err(|e| PluginError::Internal(format!("payload is not JSON: {e}")))
    }
}
