//! `/docs` works with no internet: Swagger UI from the binary lists every operation of the
//! OpenAPI document, and the browser asks nothing of any other origin.

use serde_json::Value;

use super::browser::{Browser, eventually};
use super::common::app::{Answer, spawn_app};

#[tokio::test]
async fn the_api_reference_lists_every_operation_without_leaving_the_server() {
    let app = spawn_app().await;
    let spec: Value = app.client.get(app.url("/openapi.json")).json_body().await;
    let operations: usize = spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|path| path.as_object().expect("operations").len())
        .sum();
    assert!(operations >= 10, "{operations} operations");
    for path in [
        "/docs",
        "/docs/assets/swagger-ui-bundle.js",
        "/ui",
        "/ui/",
        "/ui/deploys/01a2493e-e295-740a-97ce-d876046b2100",
        "/ui/assets/main.js",
    ] {
        let page = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(
            page.headers()["content-security-policy"],
            "default-src 'self'",
            "{path}"
        );
    }

    let browser = Browser::start(1280, 900).await;
    browser.goto(&app.url("/docs")).await;
    let listed = eventually("the operations listed", || async {
        let count = browser
            .run("return document.querySelectorAll('.opblock').length")
            .await;
        (count.as_u64() == Some(operations as u64)).then_some(count)
    })
    .await;
    assert_eq!(listed.as_u64(), Some(operations as u64));
    let paths = browser.text(".swagger-ui").await;
    for path in ["/v1/deploys/{id}/cancel", "/v1/events", "/v1/tokens"] {
        assert!(paths.contains(path), "{path} is not listed");
    }
    browser.screenshot("docs").await;
    browser.assert_stayed_on(&app.address).await;
    browser.close().await;
}
