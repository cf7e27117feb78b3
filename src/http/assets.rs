//! Files embedded in the binary (the `/ui` pages, the `/docs` reference) and the headers that keep
//! those pages' requests on this server.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// Scripts, styles, images, fonts and connections come from this server only: nothing a page
/// loads leaves its origin, and no injected inline script or style runs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'";

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl Asset {
    pub const fn new(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Self {
        Asset {
            path,
            content_type,
            body,
        }
    }
}

/// Embedded files by path, each with an ETag of its content, so browsers revalidate cheaply
/// (`304`) and never run a stale script after an upgrade.
pub struct AssetSet {
    by_path: HashMap<&'static str, (&'static Asset, HeaderValue)>,
}

impl AssetSet {
    /// The assets of all `groups` (e.g. vendored files beside our own).
    pub fn new(groups: &[&'static [Asset]]) -> Self {
        let by_path = groups
            .iter()
            .flat_map(|group| group.iter())
            .map(|asset| {
                let digest = hex::encode(Sha256::digest(asset.body));
                let etag = HeaderValue::try_from(format!("\"{}\"", &digest[..32]))
                    .expect("a hex ETag is a valid header value");
                (asset.path, (asset, etag))
            })
            .collect();
        AssetSet { by_path }
    }

    /// The asset at `path`, or `304 Not Modified` when the client holds it already.
    pub fn serve(&self, path: &str, request: &HeaderMap) -> Response {
        let Some((asset, etag)) = self.by_path.get(path) else {
            return ApiError::NotFound(format!("no asset {path}")).into_response();
        };
        let cached = request
            .get(header::IF_NONE_MATCH)
            .is_some_and(|held| held == etag);
        let headers = [
            (header::ETAG, etag.clone()),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
        ];
        if cached {
            (StatusCode::NOT_MODIFIED, headers).into_response()
        } else {
            (headers, asset.body).into_response()
        }
    }
}

/// Response headers of every page and asset (a `map_response` layer).
pub async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Deploy ids in page URLs stay on this server.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    static FILES: &[Asset] = &[Asset::new("app.js", "text/javascript", b"let x = 1;")];

    #[test]
    fn an_asset_is_served_with_its_etag_and_revalidated_with_a_304() {
        let set = AssetSet::new(&[FILES]);
        let first = set.serve("app.js", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CONTENT_TYPE], "text/javascript");
        let etag = first.headers()[header::ETAG].clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(
            set.serve("app.js", &request).status(),
            StatusCode::NOT_MODIFIED
        );
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"old\""));
        assert_eq!(set.serve("app.js", &request).status(), StatusCode::OK);
        assert_eq!(
            set.serve("missing.js", &request).status(),
            StatusCode::NOT_FOUND
        );
    }
}
