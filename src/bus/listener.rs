//! LISTEN for batches committed by other instances and publish them locally.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::EventHub;
use crate::store::StoreError;
use crate::store::deploy_events::{BatchNotice, NOTIFY_CHANNEL, read_batch};

/// Connects and subscribes; returns once LISTEN is active so that no later batch is missed.
pub async fn listen(hub: &EventHub) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(hub.pool()).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}

/// Relays notifications until shutdown, reconnecting after errors. After a reconnection every
/// subscriber is told to re-read from the database, as notifications may have been missed.
pub async fn relay(hub: EventHub, mut listener: PgListener) {
    let shutdown = hub.shutdown.clone();
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = listener.try_recv() => received,
        };
        match received {
            Ok(Some(notification)) => {
                let Some(notice) = BatchNotice::decode(notification.payload()) else {
                    tracing::warn!(
                        payload = notification.payload(),
                        "ignoring malformed event notice"
                    );
                    continue;
                };
                if notice.origin == hub.origin {
                    continue;
                }
                match read_batch(hub.pool(), &notice).await {
                    Ok(events) => hub.deliver(events),
                    Err(error) => {
                        tracing::warn!(%error, "reading a notified event batch failed");
                        hub.resync();
                    }
                }
            }
            // The connection was lost and is re-established by the next call.
            Ok(None) => hub.resync(),
            Err(error) => {
                tracing::warn!(%error, "event listener failed; retrying");
                hub.resync();
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}
