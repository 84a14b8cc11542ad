//! What may cross between plugins and the admin's origin, in both directions.
//!
//! Plugins come from anyone, but their responses are served by hookhost itself,
//! from the same host name as the dashboard (and, without `admin_listen`, from the
//! very same origin). Browsers scope much of their state by origin or by host name
//! alone, ports ignored: cookies above all. So:
//!
//! - Out of a plugin (`contain_response`, a layer over everything under `/hooks/`):
//!   headers whose effect reaches past the response itself are dropped (the list
//!   below says why for each group), and every response goes out with
//!   `Content-Security-Policy: sandbox` and `X-Content-Type-Options: nosniff`
//!   whatever the plugin said. A sandboxed document runs no script, submits no
//!   form and has an opaque origin of its own: it cannot read the host's cookies
//!   or storage, and a request it makes to the admin surface is cross-site to the
//!   browser, which `admin::auth` refuses. `nosniff` keeps a plugin's answer from
//!   being taken for a script or stylesheet by a page that includes it.
//! - Into a plugin (`without_admin_credentials`): the dashboard's session cookie and
//!   an `Authorization` header that carries the admin token are removed before the
//!   request is handed to a plugin or stored, and again before a stored request is
//!   replayed (rows stored before this rule existed may still hold them).
//!
//! Kept on purpose: `Location` and `Refresh` (navigation only; a page from another
//! origin can navigate there just as well), CORS headers (they open only the
//! plugin's own responses, which hold nothing of the admin's), `Content-Type`,
//! caching headers and the plugin's own `x-` headers.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

use crate::admin::auth::{AdminAuth, SESSION_COOKIE};

/// The policy every response under `/hooks/` is sent with.
pub const SANDBOX_POLICY: &str = "sandbox";

/// Response headers a plugin may not send.
const WITHHELD: &[&str] = &[
    // Cookies belong to the host name, whatever the port or path: a plugin could
    // plant or overwrite the dashboard's `hookhost_session` or any other cookie.
    "set-cookie",
    "set-cookie2",
    // State the browser keeps for the whole origin or site: clearing its cookies
    // and storage; pinning HTTPS or keys for the host name and its subdomains;
    // sending every later request to the origin through another server (Alt-Svc);
    // reporting every later request to the origin to the plugin's server (NEL and
    // its report endpoints); agent-cluster keying and client hints the origin
    // remembers; widening a service worker's scope.
    "clear-site-data",
    "strict-transport-security",
    "public-key-pins",
    "public-key-pins-report-only",
    "expect-ct",
    "alt-svc",
    "nel",
    "report-to",
    "reporting-endpoints",
    "origin-agent-cluster",
    "accept-ch",
    "critical-ch",
    "service-worker-allowed",
    // A credential prompt in the host's origin: an operator could type the admin
    // token into it, and the browser would send it to the plugin from then on.
    "www-authenticate",
    "proxy-authenticate",
    // Set by the host below, whatever the plugin said.
    "content-security-policy",
    "content-security-policy-report-only",
    "x-content-type-options",
    // The message's framing and the connection are the HTTP server's business.
    // hyper trusts a `content-length` header over the body it writes, so a wrong
    // one would let the rest of the body pass for the next response on a kept-alive
    // connection: one the browser may reuse for the dashboard.
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
];

/// Response middleware for `/hooks/*`: every answer there, the plugin's own or the
/// host's error, leaves without the withheld headers and with the sandbox policy.
pub async fn contain_response(mut response: Response) -> Response {
    contain(response.headers_mut());
    response
}

/// See `contain_response`.
pub fn contain(headers: &mut HeaderMap) {
    for name in WITHHELD {
        headers.remove(*name);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// A request's headers without the admin's credentials: `hookhost_session` taken
/// out of every `Cookie` header (the provider's other cookies stay; a header left
/// empty goes), and every `Authorization` header that carries the admin token
/// dropped. The token is compared in constant time by `admin`.
pub fn without_admin_credentials(
    headers: Vec<(String, String)>,
    admin: &AdminAuth,
) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter_map(|(name, value)| {
            if name.eq_ignore_ascii_case("cookie") {
                let kept = without_session_cookie(&value);
                return (!kept.is_empty()).then_some((name, kept));
            }
            if name.eq_ignore_ascii_case("authorization") && carries_token(&value, admin) {
                return None;
            }
            Some((name, value))
        })
        .collect()
}

/// `value` (a `Cookie` header) without its `hookhost_session` pairs. Names are
/// matched loosely (spaces, case): dropping too much costs a provider nothing it
/// could rely on, keeping a session would hand it the dashboard.
fn without_session_cookie(value: &str) -> String {
    value
        .split(';')
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            !pair.is_empty() && !name.trim().eq_ignore_ascii_case(SESSION_COOKIE)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether an `Authorization` value is `<scheme> <admin token>` or the bare token.
fn carries_token(value: &str, admin: &AdminAuth) -> bool {
    let value = value.trim();
    let credentials = value
        .split_once(char::is_whitespace)
        .map(|(_, credentials)| credentials.trim());
    // Both comparisons always run, so that timing does not tell which form matched.
    let bare = admin.token_matches(value);
    let with_scheme = credentials.is_some_and(|credentials| admin.token_matches(credentials));
    bare | with_scheme
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn the_session_cookie_and_the_admin_bearer_never_reach_a_plugin() {
        let admin = AdminAuth::with_token("the-admin-token-0123456789").unwrap();
        let scrubbed = without_admin_credentials(
            pairs(&[
                ("cookie", "theme=dark; hookhost_session=v1.9.ab; lang=en"),
                // HTTP/2 sends each cookie in a header of its own.
                ("cookie", "hookhost_session=v1.9.cd"),
                ("Cookie", " HookHost_Session =v1.9.ef;other=1"),
                ("authorization", "Bearer the-admin-token-0123456789"),
                ("Authorization", "token  the-admin-token-0123456789 "),
                ("authorization", "the-admin-token-0123456789"),
                ("authorization", "Bearer the-provider-secret"),
                ("x-hub-signature-256", "sha256=00"),
            ]),
            &admin,
        );
        assert_eq!(
            scrubbed,
            pairs(&[
                ("cookie", "theme=dark; lang=en"),
                ("Cookie", "other=1"),
                ("authorization", "Bearer the-provider-secret"),
                ("x-hub-signature-256", "sha256=00"),
            ])
        );
    }

    #[test]
    fn an_open_admin_has_no_token_to_strip_but_still_no_session() {
        let scrubbed = without_admin_credentials(
            pairs(&[
                ("authorization", "Bearer anything"),
                ("cookie", "hookhost_session=x"),
            ]),
            &AdminAuth::open(),
        );
        assert_eq!(scrubbed, pairs(&[("authorization", "Bearer anything")]));
    }

    #[test]
    fn a_plugins_response_loses_origin_wide_headers_and_gets_the_sandbox() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("set-cookie", "hookhost_session=planted; Path=/"),
            ("set-cookie", "other=1"),
            ("clear-site-data", "\"cookies\""),
            (
                "strict-transport-security",
                "max-age=31536000; includeSubDomains",
            ),
            ("alt-svc", "h2=\"evil.example:443\""),
            ("nel", "{\"report_to\":\"x\",\"max_age\":86400}"),
            ("www-authenticate", "Basic realm=\"hookhost admin\""),
            ("content-security-policy", "script-src * 'unsafe-inline'"),
            ("x-content-type-options", "sniff"),
            ("content-length", "1"),
            ("content-type", "text/html"),
            ("location", "/elsewhere"),
            ("x-plugin", "kept"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        contain(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-security-policy",
                "content-type",
                "location",
                "x-content-type-options",
                "x-plugin"
            ]
        );
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], "sandbox");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
