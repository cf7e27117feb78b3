//! Follows a deploy's events over SSE to the stream's `end`. When the connection drops (the server
//! restarts, a proxy times an idle stream out) it reconnects with `Last-Event-ID`, so that every
//! event arrives once and in order; it gives up only when the server stays out of reach for the
//! whole reconnect budget.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::time::Instant;
use uuid::Uuid;

use super::api::{ApiClient, ApiError, Problem};
use super::sse::{SseFrame, SseParser};
use crate::domain::event::Event;

/// The server sends a keep-alive comment every 15 s by default: this much silence means the
/// connection is dead even if no one closed it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Waits between reconnection attempts start at the server's `retry:` hint (or this) and double.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(10);

/// What the follower has to say, in stream order.
#[derive(Debug)]
pub enum FollowItem {
    /// The next event (seq one past the previous one).
    Event(Box<Event>),
    /// The connection is lost; the next attempt comes after `retry_in`.
    Reconnecting { error: String, retry_in: Duration },
    /// Connected again; events continue after `after`.
    Resumed { after: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The server refused the stream (the token was revoked, the deploy is not visible).
    #[error("{0}")]
    Rejected(Problem),
    #[error("the server stayed out of reach for {}: {last_error}", crate::domain::duration::format_duration(*.budget))]
    Unreachable {
        budget: Duration,
        last_error: String,
    },
    #[error("the event stream is not understood: {0}")]
    Unexpected(String),
}

/// Retries with growing waits until a budget of time since the first failure is spent.
#[derive(Debug)]
pub struct Retry {
    budget: Duration,
    failing_since: Option<Instant>,
    next_wait: Duration,
}

impl Retry {
    pub fn new(budget: Duration) -> Self {
        Retry {
            budget,
            failing_since: None,
            next_wait: FIRST_RETRY,
        }
    }

    /// Records a failure: how long to wait before the next attempt, or `None` when the budget is
    /// spent. `hint` is the server's suggested wait.
    pub fn failed(&mut self, hint: Option<Duration>) -> Option<Duration> {
        self.failed_at(Instant::now(), hint)
    }

    fn failed_at(&mut self, now: Instant, hint: Option<Duration>) -> Option<Duration> {
        let since = *self.failing_since.get_or_insert(now);
        let left = self.budget.checked_sub(now - since)?;
        if left.is_zero() {
            return None;
        }
        let wait = self.next_wait.max(hint.unwrap_or_default()).min(left);
        self.next_wait = (self.next_wait * 2).min(LONGEST_RETRY);
        Some(wait)
    }

    /// Something worked: the next failure starts a fresh budget.
    pub fn succeeded(&mut self) {
        self.failing_since = None;
        self.next_wait = FIRST_RETRY;
    }

    pub fn budget(&self) -> Duration {
        self.budget
    }
}

pub struct Follower<'a> {
    api: &'a ApiClient,
    deploy: Uuid,
    last_seq: i64,
    retry: Retry,
    parser: SseParser,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    frames: VecDeque<SseFrame>,
    /// When to connect again after a drop.
    reconnect_at: Option<Instant>,
    /// A drop happened and no connection has answered since.
    dropped: bool,
    ended: bool,
}

impl<'a> Follower<'a> {
    /// Follows `deploy`'s events after `after` (0: from the first).
    pub fn new(api: &'a ApiClient, deploy: Uuid, after: i64, reconnect_budget: Duration) -> Self {
        Follower {
            api,
            deploy,
            last_seq: after,
            retry: Retry::new(reconnect_budget),
            parser: SseParser::default(),
            body: None,
            frames: VecDeque::new(),
            reconnect_at: None,
            dropped: false,
            ended: false,
        }
    }

    /// The next item; `None` once the stream's `end` event arrived.
    pub async fn next(&mut self) -> Result<Option<FollowItem>, FollowError> {
        loop {
            if self.ended {
                return Ok(None);
            }
            while let Some(frame) = self.frames.pop_front() {
                if let Some(item) = self.take(frame)? {
                    return Ok(Some(item));
                }
                if self.ended {
                    return Ok(None);
                }
            }
            let Some(body) = self.body.as_mut() else {
                if let Some(item) = self.connect().await? {
                    return Ok(Some(item));
                }
                continue;
            };
            let error = match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.retry.succeeded();
                    self.frames.extend(self.parser.push(&chunk));
                    continue;
                }
                Ok(Some(Err(error))) => format!("the connection broke: {error}"),
                Ok(None) => "the server closed the stream".to_owned(),
                Err(_) => format!("nothing heard for {}s", IDLE_TIMEOUT.as_secs()),
            };
            return self.lost(error).map(Some);
        }
    }

    /// One frame: an event to hand out, the end, or nothing (a duplicate).
    fn take(&mut self, frame: SseFrame) -> Result<Option<FollowItem>, FollowError> {
        if frame.event == "end" {
            let last_seq = serde_json::from_str::<serde_json::Value>(&frame.data)
                .ok()
                .and_then(|end| end["last_seq"].as_i64())
                .unwrap_or(self.last_seq);
            if last_seq > self.last_seq {
                // Never expected (the server's stream is gapless): read what is missing again.
                return self
                    .lost(format!(
                        "the stream ended at {last_seq} after {}",
                        self.last_seq
                    ))
                    .map(Some);
            }
            self.ended = true;
            return Ok(None);
        }
        let event: Event = serde_json::from_str(&frame.data)
            .map_err(|error| FollowError::Unexpected(format!("{error} in {}", frame.data)))?;
        if event.seq <= self.last_seq {
            return Ok(None);
        }
        if event.seq > self.last_seq + 1 {
            return self
                .lost(format!(
                    "event {} arrived after {}",
                    event.seq, self.last_seq
                ))
                .map(Some);
        }
        self.last_seq = event.seq;
        Ok(Some(FollowItem::Event(Box::new(event))))
    }

    /// Drops the connection; the next call connects again after a wait.
    fn lost(&mut self, error: String) -> Result<FollowItem, FollowError> {
        self.body = None;
        self.frames.clear();
        self.dropped = true;
        match self.retry.failed(self.parser.retry) {
            Some(wait) => {
                self.reconnect_at = Some(Instant::now() + wait);
                Ok(FollowItem::Reconnecting {
                    error,
                    retry_in: wait,
                })
            }
            None => Err(FollowError::Unreachable {
                budget: self.retry.budget(),
                last_error: error,
            }),
        }
    }

    async fn connect(&mut self) -> Result<Option<FollowItem>, FollowError> {
        if let Some(at) = self.reconnect_at.take() {
            tokio::time::sleep_until(at).await;
        }
        match self.api.event_stream(self.deploy, self.last_seq).await {
            Ok(response) => {
                self.parser.reconnected();
                self.body = Some(response.bytes_stream().boxed());
                if std::mem::take(&mut self.dropped) {
                    return Ok(Some(FollowItem::Resumed {
                        after: self.last_seq,
                    }));
                }
                Ok(None)
            }
            Err(ApiError::Rejected(problem)) => Err(FollowError::Rejected(problem)),
            Err(error) if error.is_transient() => self.lost(error.to_string()).map(Some),
            Err(error) => Err(FollowError::Unexpected(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_until_the_budget_is_spent() {
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let mut retry = Retry::new(Duration::from_secs(5));
        assert_eq!(
            retry.failed_at(at(0), None),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry.failed_at(at(0), Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry.failed_at(at(0), None), Some(Duration::from_secs(2)));
        // Never waits past the budget's end.
        assert_eq!(retry.failed_at(at(4), None), Some(Duration::from_secs(1)));
        assert_eq!(retry.failed_at(at(5), None), None);
        retry.succeeded();
        assert_eq!(
            retry.failed_at(at(6), None),
            Some(Duration::from_millis(500))
        );
    }
}
