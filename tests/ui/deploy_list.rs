//! The deploy list: signing in with the keyboard, new deploys and status changes appearing without a
//! reload, filters, a narrow screen, the accessibility basics. A server without a runner: deploys
//! submitted through the API stay queued until cancelled.

use serde_json::json;

use super::browser::{Browser, eventually};
use super::common::app::{TestApp, deploy_body, spawn_app};

/// The releases the list shows, top to bottom.
async fn listed(browser: &Browser) -> Vec<String> {
    let releases = browser
        .run("return [...document.querySelectorAll('table.deploys tbody tr td:first-child a')].map(a => a.textContent)")
        .await;
    serde_json::from_value(releases).expect("release names")
}

async fn wait_for_listing(browser: &Browser, what: &str, expected: &[&str]) {
    eventually(what, || async {
        (listed(browser).await == expected).then_some(())
    })
    .await;
}

async fn cancel(app: &TestApp, id: uuid::Uuid) {
    let response = app
        .post(&format!("/v1/deploys/{id}/cancel"), &app.admin_token)
        .json(&json!({"reason": "superseded"}))
        .send()
        .await
        .expect("cancel");
    assert_eq!(
        response.status(),
        200,
        "a queued deploy is cancelled at once"
    );
}

#[tokio::test]
async fn new_deploys_appear_live_and_filters_narrow_the_list() {
    let app = spawn_app().await;
    app.submit(&deploy_body("prod", "api")).await;
    let browser = Browser::start(1280, 900).await;
    browser.sign_in(&app.address, &app.admin_token).await;
    wait_for_listing(&browser, "the existing deploy", &["api"]).await;
    assert_eq!(
        browser.text("main .live").await,
        "Live",
        "the firehose is followed"
    );

    // Marks this document: a reload would lose the mark.
    browser.run("window.sameDocument = true").await;
    let web = app.submit(&deploy_body("prod", "web")).await;
    wait_for_listing(&browser, "the new deploy on top", &["web", "api"]).await;
    cancel(&app, web).await;
    browser
        .wait_for_text(
            &format!("tr[data-id='{web}'] td[data-label='Status']"),
            |status| status == "cancelled",
        )
        .await;
    assert_eq!(
        browser.run("return window.sameDocument === true").await,
        true,
        "the page was not reloaded"
    );
    browser.screenshot("deploy-list").await;

    // Filtered by release: another release's new deploy stays out, this one's comes in.
    browser.type_into("#filter-release", "web").await;
    wait_for_listing(&browser, "only web", &["web"]).await;
    assert!(
        browser.run("return location.search").await == "?release=web",
        "the filter is in the page's address, to share"
    );
    app.submit(&deploy_body("prod", "api")).await;
    app.submit(&deploy_body("staging", "web")).await;
    wait_for_listing(&browser, "the new web deploy", &["web", "web"]).await;

    // Filtered by status too: the cancelled one goes.
    browser
        .run("const s = document.getElementById('filter-status'); s.value = 'queued'; s.dispatchEvent(new Event('change'))")
        .await;
    wait_for_listing(&browser, "only the queued web deploy", &["web"]).await;
    assert_eq!(
        browser
            .text("table.deploys tbody tr td[data-label='Namespace']")
            .await,
        "staging"
    );

    let problems = browser.accessibility_problems().await;
    assert!(problems.is_empty(), "{problems:#?}");
    // Keyboard: from the status filter, Tab reaches the deploy's link; Enter opens it.
    let tab: char = fantoccini::key::Key::Tab.into();
    browser.type_into("#filter-status", &tab.to_string()).await;
    let focused = browser
        .run("return document.activeElement.closest('table.deploys') !== null && document.activeElement.tagName")
        .await;
    assert_eq!(focused, "A", "Tab goes from the filters to the list");
    let enter: char = fantoccini::key::Key::Enter.into();
    browser
        .client
        .active_element()
        .await
        .expect("focused element")
        .send_keys(&enter.to_string())
        .await
        .expect("Enter");
    browser
        .wait_for_text("main h1", |title| title.starts_with("web"))
        .await;

    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto(&app.url("/ui")).await;
    wait_for_listing(
        &browser,
        "the list on a phone",
        &["web", "api", "web", "api"],
    )
    .await;
    browser
        .assert_fits_the_window("the deploy list on a phone")
        .await;
    browser.screenshot("deploy-list-narrow").await;
    browser.assert_stayed_on(&app.address).await;
    assert!(
        browser
            .requests_containing(&app.admin_token)
            .await
            .is_empty(),
        "the token travelled in a URL"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_token_that_is_not_accepted_is_told_so_and_stays_signed_out() {
    let app = spawn_app().await;
    let browser = Browser::start(1280, 900).await;
    browser.goto(&app.url("/ui")).await;
    browser.type_into("#token", "rc_not-a-token").await;
    browser.press_enter("#token").await;
    browser
        .wait_for_text(".sign-in .problem", |problem| {
            problem.contains("does not know this token")
        })
        .await;
    assert_eq!(
        browser
            .run("return sessionStorage.getItem('rollcall.token')")
            .await,
        serde_json::Value::Null
    );
    let problems = browser.accessibility_problems().await;
    assert!(problems.is_empty(), "{problems:#?}");
    browser.screenshot("sign-in-refused").await;
    browser.assert_stayed_on(&app.address).await;
    browser.close().await;
}
