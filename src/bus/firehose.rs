//! The firehose: every deploy's events in one order a cursor resumes from, on any replica, with
//! nothing lost or repeated (the order and its visibility fence: migration
//! `20261208300000_firehose_order.sql`, [`FirehosePosition`]).
//!
//! One reader per process, the tail, follows the table below the fence and broadcasts what it
//! reads to the live streams; it is woken by this instance's commits and the other instances'
//! notifications, and polls while committed events wait behind a transaction in flight. A
//! stream reads what it missed from the table (after its cursor, after lagging, after a gap in
//! what the tail told it), then follows the tail.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sqlx::PgPool;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::domain::firehose::FirehosePosition;
use crate::store::StoreError;
use crate::store::deploy_events::{PublishedEvent, firehose_fence, firehose_page};
use crate::telemetry::Metrics;

/// Events read from the database per query.
const PAGE: i64 = 500;
/// The tail's poll when nothing is known to wait: a safety net for a missed notification.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// The tail's first poll while committed events wait behind a transaction in flight; it doubles
/// up to [`HELD_BACK_POLL_MAX`] while they keep waiting.
const HELD_BACK_POLL: Duration = Duration::from_millis(2);
const HELD_BACK_POLL_MAX: Duration = Duration::from_millis(64);
/// The tail's pause after a failed read.
const ERROR_POLL: Duration = Duration::from_millis(500);

/// What the tail tells the streams.
#[derive(Debug, Clone)]
enum TailItem {
    /// The tail follows from here on (it starts once a stream follows): a stream that has not
    /// seen everything before it catches up from the database.
    Start(FirehosePosition),
    /// An event the tail read, with the tail's position before it: nothing lies between the two,
    /// so a stream that has everything up to `after` misses nothing by taking this event next.
    Event {
        after: FirehosePosition,
        event: Arc<PublishedEvent>,
    },
}

/// The firehose of one instance. Cheap to clone.
#[derive(Clone)]
pub(super) struct Firehose {
    items: broadcast::Sender<TailItem>,
    wake: Arc<Notify>,
}

impl Firehose {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            items: broadcast::channel(capacity.max(1)).0,
            wake: Arc::default(),
        }
    }

    /// Events were committed (here or on another instance): the tail reads them.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The tail, until `shutdown`.
    pub(super) async fn tail(self, pool: PgPool, shutdown: CancellationToken) {
        // Forgotten while nobody follows: a follower arriving later starts from its own cursor.
        let mut position = None;
        let mut poll = IDLE_POLL;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
            if self.items.receiver_count() == 0 {
                position = None;
                poll = IDLE_POLL;
                continue;
            }
            poll = match self.read(&pool, &mut position).await {
                Ok(false) => IDLE_POLL,
                Ok(true) if poll >= IDLE_POLL => HELD_BACK_POLL,
                Ok(true) => (poll * 2).min(HELD_BACK_POLL_MAX),
                Err(error) => {
                    tracing::warn!(%error, "the firehose cannot read events; retrying");
                    ERROR_POLL
                }
            };
        }
    }

    /// Broadcasts the events below the fence after `position`; whether committed events wait
    /// above it.
    async fn read(
        &self,
        pool: &PgPool,
        position: &mut Option<FirehosePosition>,
    ) -> Result<bool, StoreError> {
        let fence = firehose_fence(pool).await?;
        let mut after = match *position {
            Some(position) => position,
            None => {
                let _nobody_follows = self.items.send(TailItem::Start(fence.position()));
                fence.position()
            }
        };
        loop {
            let page = firehose_page(pool, after, fence.below, PAGE).await?;
            let full = page.len() as i64 == PAGE;
            for event in page {
                let position = event.position();
                let _nobody_follows = self.items.send(TailItem::Event {
                    after,
                    event: Arc::new(event),
                });
                after = position;
            }
            *position = Some(after);
            if !full {
                return Ok(fence.held_back);
            }
        }
    }

    /// A follower subscribed now: whatever the tail reads from here on reaches it.
    pub(super) fn follow(&self, pool: PgPool, metrics: Arc<Metrics>) -> FirehoseFollower {
        FirehoseFollower {
            items: self.items.subscribe(),
            pool,
            metrics,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// A cursor beyond the fence was never handed out: no event can be after it yet.
    #[error("position {0} is ahead of every event")]
    Ahead(FirehosePosition),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a stream starts, and whether the database holds events after it.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    position: FirehosePosition,
    catch_up: bool,
}

impl Start {
    pub fn position(&self) -> FirehosePosition {
        self.position
    }
}

/// A follower of the firehose, subscribed to the tail before it knows where it starts, so that
/// nothing the tail reads meanwhile passes it by.
pub struct FirehoseFollower {
    items: broadcast::Receiver<TailItem>,
    pool: PgPool,
    metrics: Arc<Metrics>,
}

impl FirehoseFollower {
    /// Where the stream starts: after `cursor`, or now (the fence).
    pub async fn start(&self, cursor: Option<FirehosePosition>) -> Result<Start, FollowError> {
        let now = firehose_fence(&self.pool).await?.position();
        match cursor {
            Some(cursor) if cursor > now => Err(FollowError::Ahead(cursor)),
            Some(cursor) => Ok(Start {
                position: cursor,
                catch_up: true,
            }),
            None => Ok(Start {
                position: now,
                catch_up: false,
            }),
        }
    }

    /// The events after `start` that `wanted` accepts, each once, in firehose order, until
    /// `shutdown`. It ends early only when the database cannot be read (logged): a client
    /// resumes with the last position it received.
    pub fn events(
        mut self,
        start: Start,
        wanted: impl Fn(&PublishedEvent) -> bool,
        shutdown: CancellationToken,
    ) -> impl Stream<Item = Arc<PublishedEvent>> {
        async_stream::stream! {
            // Everything up to here was delivered or passed over.
            let mut seen = start.position;
            let mut behind = start.catch_up;
            loop {
                while behind {
                    let fence = match firehose_fence(&self.pool).await {
                        Ok(fence) => fence,
                        Err(error) => {
                            tracing::warn!(%error, "firehose stream ended: reading the fence failed");
                            return;
                        }
                    };
                    let page = match firehose_page(&self.pool, seen, fence.below, PAGE).await {
                        Ok(page) => page,
                        Err(error) => {
                            tracing::warn!(%error, "firehose stream ended: reading events failed");
                            return;
                        }
                    };
                    behind = page.len() as i64 == PAGE;
                    for event in page {
                        seen = event.position();
                        if wanted(&event) {
                            yield Arc::new(event);
                        }
                    }
                    if !behind {
                        seen = seen.max(fence.position());
                    }
                }
                let item = tokio::select! {
                    () = shutdown.cancelled() => return,
                    item = self.items.recv() => item,
                };
                match item {
                    Ok(TailItem::Start(from)) => behind = from > seen,
                    Ok(TailItem::Event { after, event }) => {
                        let position = event.position();
                        if position <= seen {
                            continue;
                        }
                        // The tail read events this stream has not seen before this one.
                        if after > seen {
                            behind = true;
                            continue;
                        }
                        seen = position;
                        if wanted(&event) {
                            yield event;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.metrics.sse_lagged();
                        behind = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}
