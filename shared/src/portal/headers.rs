//! The headers every portal answer carries, and the session cookie.
//!
//! - `Content-Security-Policy`: only this origin's scripts, styles, images
//!   (and `data:` images), and `fetch` to this origin; no framing, no
//!   `<base>`, forms only to this origin. No inline script or style.
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`
//!   (a page's URL never leaves it), `X-Frame-Options: DENY` (older
//!   browsers), `Cache-Control: no-store` (answers carry keys).
//!
//! The cookie is `HttpOnly` (no script reads it), `Secure`, `SameSite=Strict`
//! (no other site's page sends it) and scoped to the portal's path.

/// The session cookie's name.
pub const COOKIE: &str = "keygate_portal";

/// The strict policy of every portal document.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
form-action 'self'";

/// The policy of the API reference page: as [`CSP`], plus the configured
/// spec's origin in `connect-src` when the spec is fetched from elsewhere.
pub fn docs_csp(spec_origin: Option<&str>) -> String {
    match spec_origin {
        Some(origin) => CSP.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' {origin}"),
        ),
        None => CSP.to_owned(),
    }
}

/// The origin (`https://host[:port]`) of an absolute URL.
pub fn origin_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&url[..url.len() - rest.len() + end])
}

/// Security headers for an answer; `csp` for documents.
pub fn security(csp: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-security-policy", csp.to_owned()),
        ("x-content-type-options", "nosniff".into()),
        ("referrer-policy", "no-referrer".into()),
        ("x-frame-options", "DENY".into()),
        ("cache-control", "no-store".into()),
    ]
}

/// `Set-Cookie` for a new session lasting `max_age` seconds.
pub fn session_cookie(value: &str, path: &str, max_age: i64) -> String {
    format!("{COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict")
}

/// `Set-Cookie` that removes the session cookie.
pub fn cleared_cookie(path: &str) -> String {
    format!("{COOKIE}=; Path={path}; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

/// The session cookie's value in a `Cookie` header (`a=1; b=2`).
pub fn session_from(cookie_header: Option<&str>) -> Option<&str> {
    cookie_header?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// This portal's origin as browsers see it: `X-Forwarded-Proto` (API
/// Gateway sets `https`) and `Host`; without the former, `http` for a
/// loopback host (the local gateway) and `https` otherwise.
pub fn own_origin(host: &str, forwarded_proto: Option<&str>) -> String {
    let loopback = host.starts_with("127.0.0.1") || host.starts_with("localhost");
    let proto = forwarded_proto.unwrap_or(if loopback { "http" } else { "https" });
    format!("{proto}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(
            session_from(Some("a=1; keygate_portal=xyz; b=2")),
            Some("xyz")
        );
        assert_eq!(session_from(Some("keygate_portal_x=1")), None);
        assert_eq!(session_from(None), None);
    }

    #[test]
    fn cookies_carry_every_flag() {
        let c = session_cookie("v", "/prod/portal", 3600);
        for flag in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/prod/portal",
            "Max-Age=3600",
        ] {
            assert!(c.contains(flag), "{c}");
        }
    }

    #[test]
    fn origins_and_policies() {
        assert_eq!(
            origin_of("https://docs.example.com/v1/api.yaml"),
            Some("https://docs.example.com")
        );
        assert_eq!(origin_of("https://x.io"), Some("https://x.io"));
        assert!(docs_csp(Some("https://x.io")).contains("connect-src 'self' https://x.io;"));
        assert_eq!(own_origin("127.0.0.1:3000", None), "http://127.0.0.1:3000");
        assert_eq!(
            own_origin("api.example.com", None),
            "https://api.example.com"
        );
        assert_eq!(own_origin("h", Some("https")), "https://h");
    }
}
