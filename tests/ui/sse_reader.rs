//! The pages' Server-Sent Events reader (`ui/api.js`: `EventSource` cannot send a token, so the
//! pages parse the stream themselves), run in the browser on the module the server serves.

use serde_json::json;

use super::browser::Browser;
use super::common::app::spawn_app;

#[tokio::test]
async fn the_pages_sse_reader_parses_frames_split_anywhere() {
    let app = spawn_app().await;
    let browser = Browser::start(800, 600).await;
    browser.goto(&app.url("/ui")).await;
    // Whole, then one character at a time: a chunk may end between "\r" and "\n".
    let stream = "retry: 1500\n\nid: 7\nevent: phase\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\n\
                  data: line one\ndata:line two\n\nid: 8\nevent: end\ndata: {}\n\n";
    let parsed = browser
        .run_with(
            "const [text] = arguments; \
             return import('/ui/assets/api.js').then(({SseParser}) => [false, true].map(split => { \
               const frames = []; let retry = null; \
               const parser = new SseParser(frame => frames.push(frame), millis => retry = millis); \
               for (const chunk of split ? [...text] : [text]) parser.push(chunk); \
               return {frames, retry, last: parser.lastEventId}; }));",
            vec![json!(stream)],
        )
        .await;
    let expected = json!({
        "frames": [
            {"id": "7", "event": "phase", "data": "{\"a\":1}"},
            {"id": "7", "event": "message", "data": "line one\nline two"},
            {"id": "8", "event": "end", "data": "{}"},
        ],
        "retry": 1500,
        "last": "8",
    });
    assert_eq!(parsed, json!([expected, expected]));
    browser.assert_stayed_on(&app.address).await;
    browser.close().await;
}
