//! The web page: one HTML page, its script and style, and hls.js, all
//! built into the binary (no CDN, nothing fetched at run time). hls.js is
//! vendored from the npm package the player tests lock
//! (`tests/player/package-lock.json`); a test checks they are the same.
//! The page holds no secret: it asks for a token and calls the API with
//! it, like any other client.

use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::body::{Body, full};

const INDEX: &str = include_str!("../ui/index.html");
const APP: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/style.css");
const HLS_JS: &[u8] = include_bytes!("../ui/vendor/hls.min.js");

/// The page's own files are its only sources: no inline script, no
/// other origin; hls.js feeds the video from blob: URLs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; media-src 'self' blob:; \
     worker-src 'self' blob:; img-src 'self' data:; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The asset at `path`, if the page has one.
pub fn asset(path: &str) -> Option<Response<Body>> {
    let (body, kind): (Body, &'static str) = match path {
        "/" | "/index.html" => (full(INDEX), "text/html; charset=utf-8"),
        "/ui/app.js" => (full(APP), "text/javascript; charset=utf-8"),
        "/ui/style.css" => (full(STYLE), "text/css; charset=utf-8"),
        "/ui/vendor/hls.min.js" => (full(HLS_JS), "text/javascript; charset=utf-8"),
        _ => return None,
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    Some(response)
}
