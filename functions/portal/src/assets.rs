//! The portal's files, compiled into the binary: no S3, no CloudFront.
//!
//! `web/src/` holds our pages, script and styles; `web/vendor/` the
//! libraries, copied from `web/node_modules` after `npm ci` of the
//! committed lockfile (`make portal-vendor`; `make test` fails when a copy
//! differs from the locked package).

use keygate::portal::{Asset, Site};

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "src/index.html", HTML),
    asset!("docs.html", "src/docs.html", HTML),
    asset!("assets/portal.css", "src/portal.css", CSS),
    asset!("assets/app.js", "src/app.js", JS),
    asset!("assets/charts.js", "src/charts.js", JS),
    asset!("assets/docs.js", "src/docs.js", JS),
    asset!(
        "assets/vendor/uPlot.iife.min.js",
        "vendor/uPlot.iife.min.js",
        JS
    ),
    asset!("assets/vendor/uPlot.min.css", "vendor/uPlot.min.css", CSS),
    asset!(
        "assets/vendor/swagger-ui-bundle.js",
        "vendor/swagger-ui-bundle.js",
        JS
    ),
    asset!("assets/vendor/swagger-ui.css", "vendor/swagger-ui.css", CSS),
];

/// The embedded API reference: the repository's own contract.
static SPEC: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../infra/openapi.yaml"
));

/// Everything the portal serves from the binary.
pub fn site() -> Site {
    Site {
        assets: ASSETS,
        spec: SPEC,
    }
}
