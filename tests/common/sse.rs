//! A small Server-Sent Events reader for tests.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseFrame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseFrame {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|error| panic!("SSE data is not JSON ({error}): {}", self.data))
    }
}

/// An answer's `Content-Type` header, empty when it has none.
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub struct SseStream {
    status: reqwest::StatusCode,
    content_type: String,
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// The last `id:` received in any block, as a browser keeps it for `Last-Event-ID`.
    last_event_id: Option<String>,
}

impl SseStream {
    pub async fn connect(request: reqwest::RequestBuilder) -> Self {
        Self::try_connect(request).await.expect("SSE request")
    }

    /// As `connect`, but a server that is down is an error to handle (reconnecting clients).
    pub async fn try_connect(request: reqwest::RequestBuilder) -> reqwest::Result<Self> {
        let response = request.header("accept", "text/event-stream").send().await?;
        let content_type = content_type(&response);
        Ok(Self {
            status: response.status(),
            content_type,
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
            last_event_id: None,
        })
    }

    pub fn status(&self) -> reqwest::StatusCode {
        self.status
    }

    /// What a reconnecting client sends as `Last-Event-ID`: the last `id:` of any block so far,
    /// also of blocks without data.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The answer's `Content-Type` header, empty when it has none.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The next frame with data or an event name (comments and retry hints skipped), `None` when
    /// the stream ends. Panics after `timeout` without one.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<SseFrame> {
        tokio::time::timeout(timeout, self.read_frame())
            .await
            .unwrap_or_else(|_| panic!("no SSE frame within {timeout:?}"))
    }

    async fn read_frame(&mut self) -> Option<SseFrame> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut frame = SseFrame::default();
                let mut data_lines = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id:") {
                        frame.id = Some(value.trim_start().to_owned());
                    } else if let Some(value) = line.strip_prefix("event:") {
                        frame.event = Some(value.trim_start().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data_lines.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                frame.data = data_lines.join("\n");
                if frame.id.is_some() {
                    self.last_event_id.clone_from(&frame.id);
                }
                if frame.event.is_some() || !frame.data.is_empty() {
                    return Some(frame);
                }
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Frames until (and including) one for which `stop` is true.
    pub async fn frames_until(
        &mut self,
        timeout: Duration,
        stop: impl Fn(&SseFrame) -> bool,
    ) -> Vec<SseFrame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame(timeout).await {
            let done = stop(&frame);
            frames.push(frame);
            if done {
                break;
            }
        }
        frames
    }
}
