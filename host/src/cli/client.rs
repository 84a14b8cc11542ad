//! The admin API as the CLI sees it: one blocking HTTP client, the bearer token, and
//! the HTTP statuses that scripts branch on turned into exit codes.

use std::time::Duration;

use anyhow::anyhow;
use serde_json::Value;

/// Why a command against a running host failed, as its exit code tells scripts.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The host could not be reached, answered an error, or said something
    /// unexpected: exit code 1.
    #[error("{0:#}")]
    Host(anyhow::Error),
    /// 404: no such event (exit code 3).
    #[error("{0}")]
    NotFound(String),
    /// 401 or 403: the admin token is missing or wrong (exit code 4).
    #[error("{0}")]
    Unauthorized(String),
    /// Arguments clap accepts but the command cannot use (exit code 2).
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Host(_) => 1,
            CliError::NotFound(_) => 3,
            CliError::Unauthorized(_) => 4,
            CliError::Usage(_) => 2,
        }
    }
}

pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl AdminClient {
    pub fn new(base: &str, token: Option<String>) -> Result<AdminClient, CliError> {
        let http = reqwest::blocking::Client::builder()
            // Long enough for a replay through a slow plugin (its deadline is 10 s
            // by default), short enough that a script never hangs on a dead host.
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| CliError::Host(anyhow!("building the HTTP client: {error}")))?;
        Ok(AdminClient {
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|token| !token.is_empty()),
            http,
        })
    }

    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        self.send(self.http.get(self.url(path)).query(query), "GET", path)
    }

    pub fn post(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.post(self.url(path)), "POST", path)
    }

    pub fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.delete(self.url(path)), "DELETE", path)
    }

    /// Sends `body` as the request body. The host compiles what it is sent before
    /// it answers, which takes seconds for a large (Python, JS) component.
    pub fn put(&self, path: &str, body: Vec<u8>) -> Result<Value, CliError> {
        let request = self
            .http
            .put(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .timeout(Duration::from_secs(600))
            .body(body);
        self.send(request, "PUT", path)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(
        &self,
        mut request: reqwest::blocking::RequestBuilder,
        method: &str,
        path: &str,
    ) -> Result<Value, CliError> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().map_err(|error| {
            CliError::Host(anyhow!(
                "could not reach hookhost at {} ({method} {path}): {}",
                self.base,
                error_chain(&error)
            ))
        })?;
        let status = response.status();
        let text = response.text().map_err(|error| {
            CliError::Host(anyhow!("reading the answer to {method} {path}: {error}"))
        })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|error| {
                CliError::Host(anyhow!(
                    "{method} {path} answered {status} with something that is not JSON ({error}); \
                     is {} a hookhost?",
                    self.base
                ))
            });
        }
        // Every hookhost error is `{"error": code, "message": text}`; anything else
        // (a proxy's page) is shown as it came.
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|body| body["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        Err(match status.as_u16() {
            404 => CliError::NotFound(message),
            401 | 403 => CliError::Unauthorized(format!(
                "{status}: {message} (set --token or HOOKHOST_ADMIN_TOKEN to the host's admin_token)"
            )),
            _ => CliError::Host(anyhow!("{method} {path} answered {status}: {message}")),
        })
    }
}

/// reqwest's error and its causes on one line ("connection refused" is a cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
