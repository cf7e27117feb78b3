//! Secret values of deploys accepted by this process.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::domain::deploy::SecretValues;

/// Secret values of deploys accepted by this process, held in memory only until the runner takes
/// them (they are never stored; a deploy recovered by another process runs without them).
#[derive(Default)]
pub struct SecretStash(Mutex<HashMap<Uuid, SecretValues>>);

impl SecretStash {
    pub fn put(&self, deploy_id: Uuid, values: SecretValues) {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(deploy_id, values);
    }

    pub fn take(&self, deploy_id: Uuid) -> Option<SecretValues> {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&deploy_id)
    }
}
