//! The portal's static files (built into the function binary by the
//! `portal` function crate) and its HTML error page.

/// The page's path below the portal (`/portal/home`). A page one level
/// below the portal's path resolves its relative links (`assets/app.js`,
/// `api/keys`) inside the portal, behind any stage prefix; `/portal/` itself
/// is not a route API Gateway's greedy `/portal/{proxy+}` is sure to match.
pub const HOME: &str = "home";

/// One static file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Path below the portal, without the leading slash (`index.html`,
    /// `assets/app.js`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Everything the portal serves that is not an API answer.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub assets: &'static [Asset],
    /// The embedded OpenAPI document (YAML) the API reference shows when no
    /// provider spec is configured.
    pub spec: &'static [u8],
}

impl Site {
    /// The file at `path` ([`HOME`] is `index.html`).
    pub fn asset(&self, path: &str) -> Option<&Asset> {
        let path = if path == HOME { "index.html" } else { path };
        self.assets.iter().find(|a| a.path == path)
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plain, styled error page: a heading, the message, a way on. No
/// script, no detail of the failure beyond its public message.
/// `base` is the portal's path as browsers see it (for the stylesheet).
pub fn error_page(base: &str, status: u16, title: &str, message: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} - developer portal</title><link rel=\"stylesheet\" href=\"{base}/assets/portal.css\"></head>\
<body><main id=\"main\" class=\"error-page\"><h1>{title}</h1><p>{message}</p>\
<p class=\"muted\">Status {status}</p></main></body></html>\n",
        base = escape(base),
        title = escape(title),
        message = escape(message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pages_escape_their_text() {
        let page = error_page("/portal", 404, "Not <found>", "a & b");
        assert!(page.contains("Not &lt;found&gt;"));
        assert!(page.contains("a &amp; b"));
    }
}
