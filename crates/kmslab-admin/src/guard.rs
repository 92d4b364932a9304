//! The admin API's request guard: one axum middleware deciding, for every request, whether
//! it reaches a handler, and adding the security headers to every answer.
//!
//! In order:
//! 1. **Host** (DNS rebinding): the `Host` header must be an IP address (any: a browser
//!    sends an IP literal only for a page loaded from that very address, which no DNS
//!    answer can repoint), `localhost`, or a name given with `--admin-host`. A page on
//!    `http://evil.example:8688` whose name was re-pointed at 127.0.0.1 sends
//!    `Host: evil.example:8688` and is refused, so it can neither read nor change anything.
//!    A request without a `Host` header does not come from a browser and is judged on.
//! 2. **Cross-site** (CSRF): a state-changing request (anything but GET and HEAD) is
//!    refused when `Sec-Fetch-Site` says it is not same-origin, when its `Origin` (or, without
//!    one, its `Referer`) is not this very origin, or when its body is not declared
//!    `application/json`. A browser sends a cross-site JSON request only after a CORS
//!    preflight, and the API answers no CORS (an `OPTIONS` preflight is refused like any
//!    cross-site request), so a web page can change nothing.
//! 3. **Source rules**: a source in `--admin-local-network` (default loopback) or a request
//!    with the right `Authorization: Bearer <token>` may do everything; other sources may
//!    read when they are in `--admin-read-network`; the public paths (`/healthz`) are
//!    readable by everyone.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kmslab_core::hresult::HResult;
use kmslab_runtime::cidr::{Cidr, any_contains};
use tokio::time::Instant;

use crate::answer::ApiError;
use crate::token::AdminToken;

/// `E_ACCESSDENIED`, the HRESULT of every refusal here.
pub const E_ACCESSDENIED: HResult = HResult::ACCESS_DENIED;

/// The CSP of a JSON-only API: nothing may be loaded, framed or run from its answers.
pub const CSP_API: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// How often one kind of refusal is logged at most (a web page can send thousands).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Who may call an admin API, and what its answers carry. Built once from the config.
#[derive(Debug)]
pub struct AdminAccess {
    /// The listener's address: judges requests that came through no socket (the router
    /// driven in-process) and is named in refusals.
    pub bind: SocketAddr,
    /// Sources allowed everything without the token (`--admin-local-network`).
    pub local: Vec<Cidr>,
    /// Sources allowed to read without the token (`--admin-read-network`).
    pub read: Vec<Cidr>,
    /// The bearer token (`--admin-token`, `--admin-token-file`).
    pub token: Option<AdminToken>,
    /// Names accepted in the `Host` header besides IP addresses and `localhost`
    /// (`--admin-host`), lower case, without a final dot.
    pub names: Vec<String>,
    /// Paths every source may read (orchestrators' probes).
    pub public_paths: &'static [&'static str],
    /// The `Content-Security-Policy` of every answer.
    pub csp: &'static str,
    /// The daemon's name in refusals ("kms-host", "kms-client").
    pub daemon: &'static str,
    log: Mutex<HashMap<&'static str, Instant>>,
}

impl AdminAccess {
    /// The rules for a listener on `bind`, every other field at its default: loopback is
    /// local, nobody else may read, no token, no extra names, `/healthz` public.
    pub fn new(daemon: &'static str, bind: SocketAddr) -> AdminAccess {
        AdminAccess {
            bind,
            local: Cidr::loopback(),
            read: Vec::new(),
            token: None,
            names: Vec::new(),
            public_paths: &["/healthz"],
            csp: CSP_API,
            daemon,
            log: Mutex::default(),
        }
    }

    /// True when `host` (a `Host` header value) names this listener; see the module docs.
    pub fn host_is_served(&self, host: &str) -> bool {
        let host = host.trim();
        if let Some(rest) = host.strip_prefix('[') {
            // [v6] or [v6]:port
            let Some((ip, after)) = rest.split_once(']') else { return false };
            return ip.parse::<Ipv6Addr>().is_ok() && (after.is_empty() || after.strip_prefix(':').is_some_and(valid_port));
        }
        let name = match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        };
        if name.parse::<Ipv4Addr>().is_ok() {
            return true;
        }
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        !name.is_empty() && (name == "localhost" || self.names.contains(&name))
    }

    fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return false };
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        given.is_some_and(|g| token.matches(g))
    }

    /// Logs a refusal at most once a minute per kind, with how many went unlogged.
    fn log_refusal(&self, kind: &'static str, source: IpAddr, detail: &str) {
        let now = Instant::now();
        let mut last = self.log.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(kind) {
            Some(t) if now.saturating_duration_since(*t) < REFUSAL_LOG_EVERY => {}
            _ => {
                last.insert(kind, now);
                tracing::warn!(%source, reason = kind, detail, "admin request refused (logged once a minute per reason)");
            }
        }
    }

    /// The decision for one request: `None` lets it through.
    fn refuse(&self, source: IpAddr, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
        let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or("\u{fffd}"));
        if let Some(host) = host
            && !self.host_is_served(host)
        {
            self.log_refusal("host", source, host);
            return Some(error(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "Host {host:?} is not an address or name of this {} admin API (DNS rebinding defence): use its IP address or localhost, or start it with --admin-host NAME",
                    self.daemon
                ),
            ));
        }
        let read_only = matches!(*method, Method::GET | Method::HEAD);
        if !read_only {
            if let Some(why) = cross_site(headers, host) {
                self.log_refusal("cross_site", source, &why);
                return Some(error(StatusCode::FORBIDDEN, format!("cross-site request refused: {why}")));
            }
            let json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
            if !json {
                self.log_refusal("content_type", source, path);
                return Some(error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "state-changing admin requests need Content-Type: application/json",
                ));
            }
        }
        if any_contains(&self.local, source) || self.bearer_ok(headers) {
            return None;
        }
        if read_only {
            if self.public_paths.contains(&path) || any_contains(&self.read, source) {
                return None;
            }
            tracing::debug!(%source, path, "admin read refused: source not in --admin-read-network");
            return Some(error(
                StatusCode::FORBIDDEN,
                format!("{source} may not read this admin API: add its network with --admin-read-network, or send the --admin-token"),
            ));
        }
        tracing::warn!(%source, %method, path, "mutating admin request refused from a non-local source");
        if self.token.is_none() {
            return Some(error(
                StatusCode::FORBIDDEN,
                format!("mutating requests from non-local sources need --admin-token on the {}", self.daemon.trim_start_matches("kms-")),
            ));
        }
        Some(error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (--admin-token)"))
    }
}

/// The CSP source expression (`'sha256-...'`) allowing one inline `<script>` or `<style>`
/// whose text is exactly `text`.
pub fn inline_source_hash(text: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes())))
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
}

/// Why a state-changing request is cross-site, or `None` when nothing says so.
fn cross_site(headers: &HeaderMap, host: Option<&str>) -> Option<String> {
    let text = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned());
    if let Some(site) = headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or("\u{fffd}"))
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!("Sec-Fetch-Site: {site}"));
    }
    let (what, value) = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(o), _) => ("Origin", o),
        (None, Some(r)) => ("Referer", r),
        (None, None) => return None,
    };
    let authority = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    match (authority, host) {
        (Some(a), Some(h)) if a.eq_ignore_ascii_case(h.trim()) => None,
        _ => Some(format!("{what} {value:?} is not this admin API's own origin")),
    }
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    ApiError::plain(code, E_ACCESSDENIED, message).into_response()
}

/// The middleware: `axum::middleware::from_fn_with_state(access, kmslab_admin::guard::middleware)`.
pub async fn middleware(State(access): State<Arc<AdminAccess>>, req: Request, next: Next) -> Response {
    let source = req.extensions().get::<ConnectInfo<SocketAddr>>().map_or(access.bind.ip(), |c| c.0.ip());
    let mut response = match access.refuse(source, req.method(), req.uri().path(), req.headers()) {
        Some(refusal) => refusal,
        None => next.run(req).await,
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(access.csp));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_are_ip_addresses_localhost_or_configured_names() {
        let mut a = AdminAccess::new("kms-host", "0.0.0.0:8688".parse().unwrap());
        a.names = vec!["kms1.lab.test".into()];
        for ok in
            ["127.0.0.1:8688", "10.1.2.3", "[::1]:8688", "[fd00::1]", "localhost:8688", "LOCALHOST", "kms1.lab.test:8688", "KMS1.lab.test."]
        {
            assert!(a.host_is_served(ok), "{ok}");
        }
        for bad in ["evil.example:8688", "127.0.0.1.evil.example", "::1", "[::1", "[::1]x", "localhost:99999", "localhost:", "", "kms1.lab"]
        {
            assert!(!a.host_is_served(bad), "{bad}");
        }
    }

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_same_origin_state_changes_get_through() {
        let host = Some("127.0.0.1:8688");
        assert_eq!(cross_site(&headers(&[]), host), None);
        assert_eq!(cross_site(&headers(&[("origin", "http://127.0.0.1:8688")]), host), None);
        assert_eq!(cross_site(&headers(&[("referer", "http://127.0.0.1:8688/clients?x=1")]), host), None);
        assert_eq!(cross_site(&headers(&[("sec-fetch-site", "same-origin")]), host), None);
        for bad in [
            headers(&[("origin", "http://evil.example")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "http://127.0.0.1:9999")]),
            headers(&[("referer", "http://evil.example/page")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
        ] {
            assert!(cross_site(&bad, host).is_some(), "{bad:?}");
        }
        assert!(cross_site(&headers(&[("origin", "http://127.0.0.1:8688")]), None).is_some());
    }
}
