//! The console's stylesheet and script, embedded in the binary and served
//! with a content hash in their URL, so browsers cache them for good and
//! fetch them again only after an upgrade.
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset { name: "console.css", content_type: "text/css; charset=utf-8", body: include_str!("assets/console.css") },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/console.js"),
    },
];

static VERSIONS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| hex::encode(&Sha256::digest(a.body.as_bytes())[..6])).collect());

/// The asset's path with its version, e.g. `/assets/console.js?v=1a2b3c4d5e6f`.
pub fn url(name: &str) -> String {
    let v = ASSETS.iter().position(|a| a.name == name).map(|i| VERSIONS[i].as_str()).unwrap_or("0");
    format!("/assets/{name}?v={v}")
}

pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let a = &ASSETS[i];
    let mut resp = a.body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", VERSIONS[i])) {
        h.insert(header::ETAG, etag);
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_weight_stays_small() {
        // The budget: all JS and CSS a page loads under 150 KB.
        let total: usize = super::ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 150_000, "{total} bytes");
        assert!(super::url("console.js").starts_with("/assets/console.js?v="));
    }
}
