//! Where the secret values of accepted deploys wait for the runner that claims them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::deploy::SecretValues;
use crate::domain::sealing::ServerKey;
use crate::store::{StoreError, deploy_secret_values};

/// Keeps the secret values of accepted deploys until a runner takes them.
#[derive(Clone)]
pub enum SecretKeeper {
    /// Sealed with the server key in the database, until the deploy ends (the store deletes them
    /// with its terminal transition): the runner of any replica, or a restarted one, opens them.
    Sealed(ServerKey),
    /// No server key: in the memory of the process that accepted the deploy, which alone can run
    /// it.
    InMemory(Arc<SecretStash>),
}

/// The secret values a deploy runs with.
pub enum DeploySecrets {
    /// The request had none.
    None,
    Available(SecretValues),
    Unavailable(SecretsUnavailable),
}

impl DeploySecrets {
    pub fn values(&self) -> Option<&SecretValues> {
        match self {
            DeploySecrets::Available(values) => Some(values),
            DeploySecrets::None | DeploySecrets::Unavailable(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsUnavailable {
    #[error(
        "the secret values of this deploy were held only by the rollcall process that accepted \
         it, which stopped (no ROLLCALL_SECRET_KEY is configured to keep them sealed in the \
         database); submit the deploy again"
    )]
    HeldByAnotherProcess,
    #[error(
        "the sealed secret values of this deploy cannot be opened with this server's key: \
         ROLLCALL_SECRET_KEY changed, or the replicas do not share one"
    )]
    CannotOpen,
    #[error(
        "the secret values of this deploy were accepted without a server key, by a process that \
         no longer runs: ROLLCALL_SECRET_KEY must be the same on every replica"
    )]
    NotSealed,
}

impl SecretKeeper {
    pub fn new(key: Option<ServerKey>) -> Self {
        match key {
            Some(key) => SecretKeeper::Sealed(key),
            None => SecretKeeper::InMemory(Arc::default()),
        }
    }

    /// Keeps the values of the deploy being created: with a server key, returns them sealed, for
    /// the statement that writes the deploy to store beside it; in memory they are kept at once
    /// (the runner claims the deploy only once it is committed), and must be
    /// [`SecretKeeper::forget`]ed if it is not.
    pub fn keep(&self, deploy_id: Uuid, values: SecretValues) -> Option<String> {
        match self {
            SecretKeeper::Sealed(key) => Some(values.seal(key, deploy_id)),
            SecretKeeper::InMemory(stash) => {
                stash.put(deploy_id, values);
                None
            }
        }
    }

    /// The keyed digest of `values`; none without a server key (an unkeyed one would let anyone
    /// who reads the deploy confirm a guess).
    pub fn digest(&self, values: &SecretValues) -> Option<String> {
        match self {
            SecretKeeper::Sealed(key) => Some(values.digest(key)),
            SecretKeeper::InMemory(_) => None,
        }
    }

    /// Drops the values of a deploy that will not run (sealed ones go with its terminal
    /// transition).
    pub fn forget(&self, deploy_id: Uuid) {
        if let SecretKeeper::InMemory(stash) = self {
            stash.take(deploy_id);
        }
    }

    /// The values of a deploy whose request had some (`has_secrets`), for the runner that claimed
    /// it: sealed ones stay until the deploy ends, so that a successor can open them again.
    pub async fn take(
        &self,
        pool: &PgPool,
        deploy_id: Uuid,
        has_secrets: bool,
    ) -> Result<DeploySecrets, StoreError> {
        if !has_secrets {
            return Ok(DeploySecrets::None);
        }
        Ok(match self {
            SecretKeeper::Sealed(key) => match deploy_secret_values::get(pool, deploy_id).await? {
                Some(sealed) => match SecretValues::open(key, deploy_id, &sealed) {
                    Ok(values) => DeploySecrets::Available(values),
                    Err(_) => DeploySecrets::Unavailable(SecretsUnavailable::CannotOpen),
                },
                None => DeploySecrets::Unavailable(SecretsUnavailable::NotSealed),
            },
            SecretKeeper::InMemory(stash) => match stash.take(deploy_id) {
                Some(values) => DeploySecrets::Available(values),
                None => DeploySecrets::Unavailable(SecretsUnavailable::HeldByAnotherProcess),
            },
        })
    }
}

/// Secret values of deploys accepted by this process, without a server key.
#[derive(Default)]
pub struct SecretStash(Mutex<HashMap<Uuid, SecretValues>>);

impl SecretStash {
    fn put(&self, deploy_id: Uuid, values: SecretValues) {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(deploy_id, values);
    }

    fn take(&self, deploy_id: Uuid) -> Option<SecretValues> {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&deploy_id)
    }
}
