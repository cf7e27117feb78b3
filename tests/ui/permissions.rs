//! A token's scopes decide what the deploy page offers: a read-only token sees no cancel button and
//! its cancel by URL is refused, while a token that may cancel cancels from the page. A server
//! without a runner: the deploy stays queued until cancelled.

use serde_json::{Value, json};

use super::browser::Browser;
use super::common::app::{TestApp, deploy_body, spawn_app};

async fn status(app: &TestApp, id: uuid::Uuid) -> String {
    app.deploy(id).await["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

async fn open_deploy(browser: &Browser, app: &TestApp, id: uuid::Uuid) {
    browser.goto(&app.url(&format!("/ui/deploys/{id}"))).await;
    browser
        .wait_for_text(".title-row .status", |status| status == "queued")
        .await;
}

#[tokio::test]
async fn a_read_only_token_sees_no_cancel_button_and_its_cancel_is_refused() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let (_, reader) = app.token(&["read"], &["*/*/*"]).await;
    let browser = Browser::start(1280, 900).await;
    browser.sign_in(&app.address, &reader).await;
    open_deploy(&browser, &app, id).await;
    let cancel_buttons = browser
        .run("return [...document.querySelectorAll('button')].filter(b => b.textContent.includes('Cancel') && b.checkVisibility()).length")
        .await;
    assert_eq!(cancel_buttons, 0, "a read-only token is offered no cancel");
    browser.screenshot("deploy-read-only").await;

    // The cancel URL opened in the browser: a GET carries no token and cancels nothing.
    browser
        .goto(&app.url(&format!("/v1/deploys/{id}/cancel")))
        .await;
    // The same request the page would send, with the read-only token: refused.
    open_deploy(&browser, &app, id).await;
    let answer = browser
        .run_with(
            "const [id, token] = arguments; \
             return fetch(`/v1/deploys/${id}/cancel`, {method: 'POST', \
               headers: {Authorization: `Bearer ${token}`}}).then(r => r.status)",
            vec![json!(id), json!(reader)],
        )
        .await;
    assert_eq!(answer, 403);
    assert_eq!(status(&app, id).await, "queued", "nothing was cancelled");
    assert!(
        browser.requests_containing(&reader).await.is_empty(),
        "the token travelled in a URL"
    );
    let page = browser
        .run("return document.documentElement.outerHTML")
        .await;
    assert!(
        !page.as_str().unwrap_or_default().contains(&reader),
        "the token is in the page"
    );
    browser.assert_stayed_on(&app.address).await;
    browser.close().await;
}

#[tokio::test]
async fn a_token_that_may_cancel_cancels_from_the_page_with_a_reason() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let (_, operator) = app.token(&["read", "cancel"], &["default/prod/*"]).await;
    let browser = Browser::start(1280, 900).await;
    browser.sign_in(&app.address, &operator).await;
    open_deploy(&browser, &app, id).await;
    browser
        .find(".title-row button.danger")
        .await
        .click()
        .await
        .unwrap();
    browser.type_into("#cancel-reason", "wrong image tag").await;
    browser.screenshot("cancel-dialog").await;
    browser
        .find("dialog button[value='cancel']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text(".title-row .status", |status| status == "cancelled")
        .await;
    let deploy: Value = app.deploy(id).await;
    assert_eq!(deploy["status"], "cancelled");
    assert_eq!(deploy["cancel_reason"], "wrong image tag");
    let verdict = browser.text(".verdict").await;
    assert!(
        verdict.contains("cancelled") && verdict.contains("wrong image tag"),
        "the verdict and the reason are shown: {verdict}"
    );
    assert!(
        !browser
            .run("return document.querySelector('.title-row button.danger').checkVisibility()")
            .await
            .as_bool()
            .unwrap_or(true),
        "a cancelled deploy offers no cancel"
    );
    let problems = browser.accessibility_problems().await;
    assert!(problems.is_empty(), "{problems:#?}");
    browser.screenshot("deploy-cancelled").await;
    browser.assert_stayed_on(&app.address).await;
    browser.close().await;
}
