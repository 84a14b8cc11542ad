//! The dashboard at `/`: one HTML page, its stylesheet and script, embedded in the
//! binary so that running it needs no front-end build. The page reads everything
//! through the same `/api/*` routes as any client and follows `/api/stream` for
//! live updates; this module only serves the files.
//!
//! Every page is sent with a Content-Security-Policy that allows scripts and styles
//! from this origin only: event payloads are attacker-controlled, and although the
//! script writes them with `textContent` alone, a slip there still could not run
//! anything. `frame-ancestors 'none'` keeps the Retry buttons out of other sites'
//! frames.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("page.html");
const LOGIN: &str = include_str!("login.html");
const STYLE: &str = include_str!("dashboard.css");
const SCRIPT: &str = include_str!("dashboard.js");
const LOGIN_SCRIPT: &str = include_str!("login.js");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

/// The page and its assets; `login_required` when an admin token is set (the page
/// then shows a Log out button).
pub fn routes<S: Clone + Send + Sync + 'static>(login_required: bool) -> Router<S> {
    Router::new()
        .route("/", get(move || page(login_required)))
        .route("/assets/dashboard.css", get(|| asset(STYLE, "text/css")))
        .route(
            "/assets/dashboard.js",
            get(|| asset(SCRIPT, "text/javascript")),
        )
        .route(
            "/assets/login.js",
            get(|| asset(LOGIN_SCRIPT, "text/javascript")),
        )
}

/// The dashboard itself; the admin-auth middleware has let the request through.
async fn page(login_required: bool) -> Response {
    // The page shows a Log out button only when there is a session to end.
    let login = if login_required { "required" } else { "off" };
    html_page(StatusCode::OK, PAGE.replace("{{login}}", login))
}

/// The login form, with `error` above it. The admin-auth middleware sends it
/// (status 401) instead of the dashboard when there is no valid session.
pub fn login_page(error: Option<&str>) -> Response {
    let error = error
        .map(|text| {
            format!(
                r#"<p class="login-error" role="alert">{}</p>"#,
                escape_html(text)
            )
        })
        .unwrap_or_default();
    html_page(StatusCode::OK, LOGIN.replace("{{error}}", &error))
}

fn html_page(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A static file; `no-cache` makes the browser check again, so a new binary's
/// files are picked up without a stale mix of old script and new page.
async fn asset(body: &'static str, content_type: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 3] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    (headers, body).into_response()
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_error_is_escaped() {
        assert_eq!(
            escape_html(r#"<b a="1">'&'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn the_page_loads_nothing_inline() {
        // The Content-Security-Policy forbids inline scripts and styles.
        for html in [PAGE, LOGIN] {
            assert!(!html.contains("<script>"), "inline script");
            assert!(!html.contains("<style"), "inline style");
            assert!(!html.contains(" style="), "inline style attribute");
            let handler = html.match_indices(" on").any(|(at, _)| {
                let rest = &html[at + 3..];
                let name = rest.chars().take_while(char::is_ascii_lowercase).count();
                name > 0 && rest[name..].starts_with('=')
            });
            assert!(!handler, "inline event handler");
        }
    }
}
