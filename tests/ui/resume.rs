//! The deploy page's event stream survives a cut connection: it reconnects with `Last-Event-ID` and
//! shows every event once, in order (a page that started over would show the first ones twice).

use rollcall::bus::EventWriter;
use rollcall::domain::event::{EventType, NewEvent, ResourceRef};
use serde_json::json;

use super::browser::Browser;
use super::common::app::{deploy_body, spawn_app};
use super::proxy::Relay;

const LINES: i64 = 20;

#[tokio::test]
async fn the_deploy_page_resumes_its_stream_after_a_cut_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let relay = Relay::start(&app.address).await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let browser = Browser::start(1280, 900).await;
    browser.sign_in(&relay.address, &app.admin_token).await;
    browser
        .goto(&format!("{}/ui/deploys/{id}", relay.address))
        .await;
    browser
        .wait_for_text(".title-row .live", |state| state == "Live")
        .await;
    relay.cut();
    browser
        .wait_for_text(".title-row .live", |state| state == "Reconnecting…")
        .await;

    // Written while the page is cut off: it reads them once it is back.
    let writer = EventWriter::open(&app.state.events, id);
    for index in 0..LINES {
        let line = NewEvent::new(EventType::ContainerLog, format!("line {index}"))
            .resource(ResourceRef {
                kind: "Deployment".into(),
                namespace: "prod".into(),
                name: "web".into(),
            })
            .data(json!({"pod": "web-1", "container": "web"}));
        writer.emit(line).await.unwrap();
    }
    writer.close().await.unwrap();
    let cancelled = app
        .post(&format!("/v1/deploys/{id}/cancel"), &app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    browser
        .wait_for_text(".title-row .status", |status| status == "cancelled")
        .await;

    let seqs: Vec<i64> = serde_json::from_value(
        browser
            .run("return [...document.querySelectorAll('table.events tbody tr td:first-child')].map(td => Number(td.textContent))")
            .await,
    )
    .expect("seqs");
    assert_eq!(
        seqs,
        (1..=LINES + 2).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let logs = browser
        .run("return document.querySelector(\"li.resource[data-kind='Deployment'] pre.log\").textContent")
        .await;
    assert!(
        logs.as_str()
            .unwrap_or_default()
            .contains(&format!("line {}", LINES - 1)),
        "{logs}"
    );
    let streams = browser
        .requests()
        .await
        .into_iter()
        .filter(|url| url.ends_with(&format!("/v1/deploys/{id}/events")))
        .count();
    assert!(
        streams >= 2,
        "the page reconnected ({streams} stream requests)"
    );
    browser.assert_stayed_on(&relay.address).await;
    browser.close().await;
}
