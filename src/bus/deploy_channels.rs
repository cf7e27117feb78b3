//! One broadcast channel per deploy that has live followers on this instance: an event wakes
//! only the streams of its own deploy (with thousands of streams open, one shared channel would
//! wake every stream for every event of every deploy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;
use uuid::Uuid;

use super::BusMessage;

/// Most messages a deploy's channel buffers; a follower further behind lags and re-reads from
/// the database. Channels allocate their buffer up front, so this stays small.
pub const DEPLOY_CHANNEL_CAPACITY: usize = 1024;

/// Channels of the deploys followed here. Cheap to clone.
#[derive(Clone)]
pub(super) struct DeployChannels {
    capacity: usize,
    channels: Arc<Mutex<HashMap<Uuid, broadcast::Sender<BusMessage>>>>,
}

impl DeployChannels {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.clamp(1, DEPLOY_CHANNEL_CAPACITY),
            channels: Arc::default(),
        }
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<Uuid, broadcast::Sender<BusMessage>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn subscribe(&self, deploy_id: Uuid) -> DeployFollower {
        let receiver = self
            .channels()
            .entry(deploy_id)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        DeployFollower {
            receiver,
            deploy_id,
            channels: self.clone(),
        }
    }

    /// Sends `message` to the followers of `deploy_id`, if it has any here.
    pub(super) fn send(&self, deploy_id: Uuid, message: BusMessage) {
        if let Some(channel) = self.channels().get(&deploy_id) {
            let _ = channel.send(message);
        }
    }

    /// Tells every follower to re-read from the database.
    pub(super) fn resync(&self) {
        for channel in self.channels().values() {
            let _ = channel.send(BusMessage::Resync);
        }
    }
}

/// A live follower of one deploy's events; its channel goes when its last follower does.
pub struct DeployFollower {
    receiver: broadcast::Receiver<BusMessage>,
    deploy_id: Uuid,
    channels: DeployChannels,
}

impl DeployFollower {
    pub async fn recv(&mut self) -> Result<BusMessage, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

impl Drop for DeployFollower {
    fn drop(&mut self) {
        let mut channels = self.channels.channels();
        // Under the lock nobody subscribes meanwhile; the only receiver left is this one.
        if channels
            .get(&self.deploy_id)
            .is_some_and(|channel| channel.receiver_count() <= 1)
        {
            channels.remove(&self.deploy_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusMessage;

    #[tokio::test]
    async fn followers_receive_their_deploy_only_and_channels_go_with_them() {
        let channels = DeployChannels::new(16);
        let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut first = channels.subscribe(mine);
        let second = channels.subscribe(mine);
        channels.send(other, BusMessage::Resync);
        channels.send(mine, BusMessage::Resync);
        assert!(matches!(first.recv().await, Ok(BusMessage::Resync)));
        assert!(first.receiver.is_empty(), "the other deploy's message");
        drop(second);
        assert_eq!(channels.channels().len(), 1, "one follower is left");
        drop(first);
        assert!(channels.channels().is_empty());
    }
}
