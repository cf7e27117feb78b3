//! `/ui`, the pages for people (DESIGN §9): recent deploys that update live, and one deploy as it
//! happens (phases, a readiness bar per resource, pods, Kubernetes Events, logs, the verdict with
//! its evidence, cancel). Hand-written HTML, CSS and JavaScript embedded in the binary; the pages
//! read the public API with the token the person signs in with (`ui/api.js` says why in a header
//! and not a cookie), so a token's scopes decide what they show.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::middleware;
use axum::response::Html;
use axum::routing::get;

use super::assets::{self, Asset, AssetSet};
use super::state::ApiState;

const SCRIPT: &str = "text/javascript; charset=utf-8";

static FILES: &[Asset] = &[
    Asset::new("main.js", SCRIPT, include_bytes!("ui/main.js")),
    Asset::new("api.js", SCRIPT, include_bytes!("ui/api.js")),
    Asset::new("dom.js", SCRIPT, include_bytes!("ui/dom.js")),
    Asset::new("list.js", SCRIPT, include_bytes!("ui/list.js")),
    Asset::new("deploy.js", SCRIPT, include_bytes!("ui/deploy.js")),
    Asset::new(
        "ui.css",
        "text/css; charset=utf-8",
        include_bytes!("ui/ui.css"),
    ),
    Asset::new(
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("ui/favicon.svg"),
    ),
];

static UI_ASSETS: LazyLock<AssetSet> = LazyLock::new(|| AssetSet::new(&[FILES]));

/// The one page every route serves; `main.js` shows what the path names. Its links are relative
/// (`{ui}` is the way from the route to `/ui/`), so the pages also work behind a proxy that serves
/// rollcall under a path prefix.
const SHELL: &str = include_str!("ui/index.html");

fn shell(to_ui: &str) -> Html<String> {
    Html(SHELL.replace("{ui}", to_ui))
}

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/ui", get(|| async { shell("ui/") }))
        .route("/ui/", get(|| async { shell("./") }))
        .route("/ui/deploys/{id}", get(|| async { shell("../") }))
        .route(
            "/ui/assets/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                UI_ASSETS.serve(&path, &headers)
            }),
        )
        .layer(middleware::map_response(assets::page_headers))
}
