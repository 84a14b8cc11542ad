//! Who may use the admin surface: one middleware in front of every route, which
//! lets a request through with the admin token and answers 401 otherwise.
//!
//! Deny by default: every path needs the token except the few that must stay open
//! (`/hooks/*` for providers, `/healthz` and `/metrics` for probes and scrapers,
//! the login form's routes and the page's static assets). A route added later is
//! therefore protected unless someone decides otherwise here.
//!
//! Two ways to present the token:
//! - `Authorization: Bearer <token>`, for the CLI, scripts and curl;
//! - a session cookie, for the dashboard: a browser cannot put a header on a page
//!   navigation or an `EventSource`. `POST /login` takes the token from the login
//!   form and, when it matches, sets `hookhost_session`. The cookie holds no token:
//!   it is `v1.<expiry>.<HMAC-SHA256(per-process key, "v1.<expiry>")>`, so it cannot
//!   be turned back into the token, stops working at its expiry, and every session
//!   ends when the host restarts (the key is drawn at start-up, so rotating the token,
//!   which needs a restart, also logs every browser out). It is `HttpOnly` (page
//!   scripts cannot read it) and `SameSite=Strict` (other sites cannot make the
//!   browser send it), and a cookie-authenticated request that changes something is
//!   refused (403) when the browser says it came from another origin
//!   (`Sec-Fetch-Site`, which also covers sibling subdomains and other ports that
//!   count as the same site), or, from a browser that does not say, when its
//!   `Origin` is not this host (`request_origin`).
//!
//! Both comparisons take the same time whatever the input: the token by comparing
//! SHA-256 digests with `subtle` (fixed length, so not even the token's length
//! leaks), the cookie with `hmac`'s constant-time `verify_slice`.
//!
//! Without a token (the open admin: allowed on a loopback admin address, or when
//! `allow_unauthenticated_admin` is set) the admin surface is meant for the one
//! developer on this machine, and everyone else is kept out by what their requests
//! cannot hide:
//! - a request that came through a proxy (`Forwarded`, `X-Forwarded-For` and their
//!   kin, or HTTP/1.0) is refused with 403, and the log says to set a token: a proxy
//!   on this machine would otherwise make the open admin public while the loopback
//!   check on the listen address passes;
//! - a request whose `Host` is not a loopback name on the listener's port gets 421:
//!   that is how a DNS-rebinding page (`attacker.example:8080` re-resolved to
//!   127.0.0.1) reaches a loopback listener, and it cannot change its `Host`;
//! - a request that changes something from another site's page gets 403, as with a
//!   session (a page may POST to a loopback address without reading the answer).
//!
//! `allow_unauthenticated_admin = true` is the operator saying that something in
//! front of hookhost guards the admin surface. That something is a proxy, and it
//! reaches hookhost under its own name, so the proxy and `Host` checks are off
//! then; the cross-site check stays (the guard's own login cookie would otherwise
//! ride along on another site's POST). Such a listener is no longer protected from
//! DNS rebinding by hookhost: the README recommends a token instead.
//!
//! `/hooks/*`, `/healthz`, `/metrics` and the login form are answered under any host
//! name: providers, probes and scrapers call them by whatever name reaches them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::admin::request_origin::{is_addressed_to_loopback, is_cross_site, proxy_evidence};
use crate::config::{Config, ADMIN_TOKEN_ENV};
use crate::http::error::ApiError;

pub const SESSION_COOKIE: &str = "hookhost_session";
/// How long a dashboard login lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Shorter tokens get a warning at start-up: the token is all that guards the API.
const SHORT_TOKEN: usize = 16;

/// The admin token and the key that signs session cookies; `None` when the admin
/// surface is open.
pub struct AdminAuth {
    secret: Option<Secret>,
    /// `allow_unauthenticated_admin`: something in front guards an open admin, so
    /// requests may come through a proxy and under any host name.
    behind_guard: bool,
}

/// The middleware's state: who may pass, and the port of the listener it guards
/// (`None` when the router is driven without a socket; any port counts then).
#[derive(Clone)]
pub struct AdminGuard {
    pub auth: Arc<AdminAuth>,
    pub port: Option<u16>,
}

struct Secret {
    token_sha256: [u8; 32],
    session_key: [u8; 32],
}

/// How a request proved that it may use the admin surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    /// No token is configured.
    Open,
    Bearer,
    Session,
}

impl AdminAuth {
    /// From the config's `admin_token`; logs once how the admin surface is guarded.
    pub fn from_config(config: &Config) -> Result<AdminAuth> {
        match &config.admin_token {
            Some(token) => {
                if token.len() < SHORT_TOKEN {
                    tracing::warn!(
                        "the admin token is shorter than {SHORT_TOKEN} characters; \
                         a long random one (openssl rand -hex 32) is much harder to guess"
                    );
                }
                AdminAuth::with_token(token)
            }
            None => {
                let address = config.admin_address();
                if config.allow_unauthenticated_admin {
                    tracing::warn!(
                        "no admin_token is set and allow_unauthenticated_admin is: /api and \
                         the dashboard on {address} are open to everyone who can reach it, \
                         under any host name and through any proxy"
                    );
                } else {
                    tracing::warn!(
                        "no admin_token is set: /api and the dashboard on {address} are open \
                         to every program on this machine (browsers only from their own pages \
                         and by a loopback name; nothing through a proxy)"
                    );
                }
                Ok(AdminAuth {
                    secret: None,
                    behind_guard: config.allow_unauthenticated_admin,
                })
            }
        }
    }

    pub fn with_token(token: &str) -> Result<AdminAuth> {
        let mut session_key = [0; 32];
        getrandom::fill(&mut session_key)
            .map_err(|error| anyhow::anyhow!("{error}"))
            .context("drawing the session-cookie key")?;
        Ok(AdminAuth {
            secret: Some(Secret {
                token_sha256: Sha256::digest(token.as_bytes()).into(),
                session_key,
            }),
            behind_guard: false,
        })
    }

    /// No token: the admin surface is open to this machine's own clients (see the
    /// module docs).
    pub fn open() -> AdminAuth {
        AdminAuth {
            secret: None,
            behind_guard: false,
        }
    }

    pub fn is_required(&self) -> bool {
        self.secret.is_some()
    }

    /// Whether `presented` is the admin token, in time independent of both.
    pub fn token_matches(&self, presented: &str) -> bool {
        self.secret.as_ref().is_some_and(|secret| {
            let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
            presented.ct_eq(&secret.token_sha256).into()
        })
    }

    /// A session cookie value that is good until `expires`.
    fn session_value(&self, expires: u64) -> Option<String> {
        let secret = self.secret.as_ref()?;
        let signed = format!("v1.{expires}");
        let tag = session_mac(&secret.session_key, &signed)
            .finalize()
            .into_bytes();
        Some(format!("{signed}.{}", hex::encode(tag)))
    }

    /// Whether `value` is a cookie this process issued that has not expired at `now`.
    fn session_is_valid(&self, value: &str, now: u64) -> bool {
        let Some(secret) = &self.secret else {
            return false;
        };
        let Some((signed, tag)) = value.rsplit_once('.') else {
            return false;
        };
        let Some(expires) = signed
            .strip_prefix("v1.")
            .and_then(|text| text.parse::<u64>().ok())
        else {
            return false;
        };
        let Ok(tag) = hex::decode(tag) else {
            return false;
        };
        session_mac(&secret.session_key, signed)
            .verify_slice(&tag)
            .is_ok()
            && now < expires
    }

    fn check(&self, headers: &HeaderMap) -> Result<Proof, ApiError> {
        if self.secret.is_none() {
            return Ok(Proof::Open);
        }
        if let Some(authorization) = headers.get(header::AUTHORIZATION) {
            // The scheme is case-insensitive (RFC 9110); a header that is present
            // but wrong is an error even when a valid cookie comes along.
            let token = authorization
                .to_str()
                .ok()
                .and_then(|value| value.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim());
            return match token {
                Some(token) if self.token_matches(token) => Ok(Proof::Bearer),
                _ => Err(unauthorized(
                    "invalid_token",
                    "the admin token in the Authorization header is not the right one",
                )),
            };
        }
        let now = unix_seconds(SystemTime::now());
        if session_cookies(headers).any(|value| self.session_is_valid(value, now)) {
            return Ok(Proof::Session);
        }
        Err(unauthorized(
            "unauthorized",
            "this route needs the admin token: send `Authorization: Bearer <token>`, \
             or log in to the dashboard",
        ))
    }
}

fn session_mac(key: &[u8; 32], signed: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(signed.as_bytes());
    mac
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every `hookhost_session` value in the request's `Cookie` headers.
fn session_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// 401 in the API's JSON shape, with the challenge RFC 6750 asks for.
fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

fn challenge(error: &ApiError) -> HeaderValue {
    if error.code == "invalid_token" {
        HeaderValue::from_static(r#"Bearer realm="hookhost", error="invalid_token""#)
    } else {
        HeaderValue::from_static(r#"Bearer realm="hookhost""#)
    }
}

/// Paths anyone may reach: providers, probes and scrapers cannot hold the admin
/// token, and the login form must be reachable to get a session.
fn is_open(path: &str) -> bool {
    path.starts_with("/hooks/")
        || path.starts_with("/assets/")
        || matches!(path, "/healthz" | "/metrics" | "/login" | "/logout")
}

/// The middleware: see the module docs.
pub async fn require_admin(
    State(guard): State<AdminGuard>,
    request: Request,
    next: Next,
) -> Response {
    if is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let refusal = match guard.auth.check(request.headers()) {
        Ok(Proof::Open) => guard.auth.open_refusal(&request, guard.port),
        Ok(Proof::Session) => cross_site_refusal(
            &request,
            "the dashboard's session may only be used from the dashboard's own pages",
        ),
        Ok(Proof::Bearer) => None,
        Err(error) => return unauthorized_response(&request, error),
    };
    match refusal {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    }
}

impl AdminAuth {
    /// Why an open admin surface will not serve `request` (see the module docs).
    fn open_refusal(&self, request: &Request, port: Option<u16>) -> Option<ApiError> {
        if !self.behind_guard {
            if let Some(evidence) = proxy_evidence(request.headers(), request.version()) {
                tracing::warn!(
                    path = request.uri().path(),
                    "refused an admin request that came through a proxy ({evidence}): \
                     without an admin token the admin surface serves only this machine's \
                     own clients. To reach it through a proxy, set an admin token \
                     (`admin_token` in the config or {ADMIN_TOKEN_ENV})"
                );
                return Some(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "proxied",
                    "without an admin token the admin surface does not answer through a \
                     proxy; set an admin token on the host",
                ));
            }
            if !is_addressed_to_loopback(request.headers(), request.uri(), port) {
                let host = request.headers().get(header::HOST);
                tracing::warn!(
                    path = request.uri().path(),
                    ?host,
                    "refused an admin request addressed to a name that is not loopback \
                     (a web page using DNS rebinding sends such requests): without an \
                     admin token the admin surface answers only to localhost, 127.0.0.1 \
                     and [::1]"
                );
                let on_port = port
                    .map(|port| format!(" on port {port}"))
                    .unwrap_or_default();
                return Some(ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "misdirected",
                    format!(
                        "without an admin token the admin surface answers only to a \
                         loopback name (localhost, 127.0.0.1, [::1]){on_port}"
                    ),
                ));
            }
        }
        cross_site_refusal(
            request,
            "without an admin token the admin surface may be changed only from its own \
             pages or by programs that are not browsers",
        )
    }
}

/// 403 for a request that changes something and that a browser sent from another
/// origin's page.
fn cross_site_refusal(request: &Request, message: &'static str) -> Option<ApiError> {
    (!is_safe(request.method()) && is_cross_site(request.headers(), request.uri()))
        .then(|| ApiError::new(StatusCode::FORBIDDEN, "cross_origin", message))
}

/// 401 with the challenge; the login form for a person opening the dashboard.
fn unauthorized_response(request: &Request, error: ApiError) -> Response {
    tracing::debug!(path = request.uri().path(), "{}", error.message);
    let challenge = challenge(&error);
    let mut response = if request.uri().path() == "/" && request.method() == Method::GET {
        (
            StatusCode::UNAUTHORIZED,
            crate::admin::dashboard::login_page(None),
        )
            .into_response()
    } else {
        error.into_response()
    };
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    response
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The largest login form accepted: a token of any sane length and then some.
/// The route is open, so it should not buffer more than that for anyone.
const MAX_LOGIN_FORM_BYTES: usize = 16 * 1024;

/// `POST /login` and `POST /logout`, the dashboard's way in and out.
pub fn routes<S: Clone + Send + Sync + 'static>(auth: Arc<AdminAuth>) -> Router<S> {
    Router::new()
        .route(
            "/login",
            post(login).layer(DefaultBodyLimit::max(MAX_LOGIN_FORM_BYTES)),
        )
        .route("/logout", post(logout))
        .with_state(auth)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(auth): State<Arc<AdminAuth>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        // A client too slow with the form gets the API's 408, like on every route.
        Err(rejection) => {
            return match crate::http::body_deadline::elapsed_in(&rejection) {
                Some(elapsed) => crate::http::body::body_deadline_response(elapsed).into_response(),
                None => rejection.into_response(),
            }
        }
    };
    if !auth.is_required() {
        return Redirect::to("/").into_response();
    }
    if !auth.token_matches(form.token.trim()) {
        tracing::warn!("dashboard login with a wrong admin token");
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="hookhost""#),
            )],
            crate::admin::dashboard::login_page(Some("That is not the admin token.")),
        )
            .into_response();
    }
    let expires = unix_seconds(SystemTime::now() + SESSION_LIFETIME);
    let value = auth
        .session_value(expires)
        .expect("a session is issued only when a token is set");
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        secure_attribute(&headers)
    );
    session_response(&cookie)
}

async fn logout(headers: HeaderMap) -> Response {
    let cookie = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure_attribute(&headers)
    );
    session_response(&cookie)
}

/// 303 to the dashboard, setting `cookie`.
fn session_response(cookie: &str) -> Response {
    let mut response = Redirect::to("/").into_response();
    match HeaderValue::from_str(cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        Err(error) => {
            return ApiError::internal(&format!("session cookie: {error}")).into_response()
        }
    }
    response
}

/// `; Secure` behind a TLS-terminating proxy that says so. hookhost itself speaks
/// plain HTTP, where a `Secure` cookie would never be sent back.
fn secure_attribute(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    if https {
        "; Secure"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::test_headers as headers;

    #[test]
    fn the_token_is_compared_by_digest() {
        let auth = AdminAuth::with_token("correct horse battery staple").unwrap();
        assert!(auth.token_matches("correct horse battery staple"));
        assert!(!auth.token_matches("correct horse battery stapl"));
        assert!(!auth.token_matches(""));
        assert!(!AdminAuth::open().token_matches(""));
    }

    #[test]
    fn a_bearer_header_or_a_session_cookie_proves_the_token() {
        let auth = AdminAuth::with_token("t0ken-t0ken-t0ken").unwrap();
        assert_eq!(
            auth.check(&headers(&[("authorization", "Bearer t0ken-t0ken-t0ken")]))
                .ok(),
            Some(Proof::Bearer)
        );
        assert_eq!(
            auth.check(&headers(&[("authorization", "bearer  t0ken-t0ken-t0ken ")]))
                .ok(),
            Some(Proof::Bearer)
        );
        let wrong = auth
            .check(&headers(&[("authorization", "Bearer nope")]))
            .unwrap_err();
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.code, "invalid_token");
        assert!(auth
            .check(&headers(&[("authorization", "Basic dDp0")]))
            .is_err());
        assert_eq!(
            auth.check(&HeaderMap::new()).unwrap_err().code,
            "unauthorized"
        );

        let now = unix_seconds(SystemTime::now());
        let session = auth.session_value(now + 60).unwrap();
        let cookie = format!("theme=dark; {SESSION_COOKIE}={session}");
        assert_eq!(
            auth.check(&headers(&[("cookie", &cookie)])).ok(),
            Some(Proof::Session)
        );
        assert_eq!(
            AdminAuth::open().check(&HeaderMap::new()).ok(),
            Some(Proof::Open)
        );
    }

    #[test]
    fn sessions_expire_and_cannot_be_forged_or_moved_between_processes() {
        let auth = AdminAuth::with_token("t0ken-t0ken-t0ken").unwrap();
        let value = auth.session_value(1_000).unwrap();
        assert!(auth.session_is_valid(&value, 999));
        assert!(!auth.session_is_valid(&value, 1_000), "expired");
        let extended = value.replacen("v1.1000", "v1.9999", 1);
        assert!(!auth.session_is_valid(&extended, 999), "expiry is signed");
        for junk in ["", "v1", "v1.1000", "v1.x.00", "v1.1000.zz", "v2.1000.00"] {
            assert!(!auth.session_is_valid(junk, 999), "{junk:?}");
        }
        let restarted = AdminAuth::with_token("t0ken-t0ken-t0ken").unwrap();
        assert!(
            !restarted.session_is_valid(&value, 999),
            "new key per process"
        );
        assert!(!value.contains("t0ken"));
    }

    #[test]
    fn only_providers_probes_and_the_login_form_are_open() {
        for open in [
            "/hooks/github",
            "/hooks/a/b",
            "/healthz",
            "/metrics",
            "/login",
            "/logout",
            "/assets/dashboard.js",
        ] {
            assert!(is_open(open), "{open}");
        }
        for guarded in [
            "/",
            "/api/events",
            "/api/stream",
            "/hooks",
            "/healthz/",
            "/anything",
        ] {
            assert!(!is_open(guarded), "{guarded}");
        }
    }
}
