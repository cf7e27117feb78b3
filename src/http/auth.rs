//! Bearer token authentication (DESIGN §6.1). Secrets are compared as sha256 digests in constant time.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::error::ApiError;
use super::token_cache::{Lookup, TokenCache};
use crate::domain::auth::StaticToken;
use crate::domain::auth::{Principal, Scope, TargetPattern};
use crate::domain::release::ReleaseId;
use crate::store::StoreError;
use crate::store::tokens::{self, TokenRecord};

/// Database tokens look like `rc_<32 hex id><64 hex secret>`: the id finds the row, the digest
/// of the whole token is compared.
const TOKEN_PREFIX: &str = "rc_";

pub struct Authenticator {
    pool: PgPool,
    static_tokens: Vec<StaticToken>,
    /// Database tokens checked before (see [`TokenCache`] for how it stays correct).
    cache: Arc<TokenCache>,
}

impl Authenticator {
    pub fn new(pool: PgPool, static_tokens: Vec<StaticToken>, cache: Arc<TokenCache>) -> Self {
        Self {
            pool,
            static_tokens,
            cache,
        }
    }

    /// Drops this process's copy of a token at once (the other replicas hear of the change from
    /// the database), so that a token revoked here is refused by the very next request.
    pub fn forget(&self, token: Uuid) {
        self.cache.forget(token);
    }

    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every configured token is compared, so timing does not reveal which one matched.
        let mut matched = None;
        for configured in &self.static_tokens {
            if bool::from(configured.secret_sha256.ct_eq(&digest)) {
                matched = Some(configured);
            }
        }
        if let Some(configured) = matched {
            let id = if configured.name == StaticToken::BOOTSTRAP_NAME {
                "bootstrap".to_owned()
            } else {
                format!("config:{}", configured.name)
            };
            return Ok(Some(Principal {
                id,
                name: configured.name.clone(),
                scopes: configured.scopes.clone(),
                targets: configured.targets.clone(),
                expires_at: None,
            }));
        }
        let Some(id) = database_token_id(token) else {
            return Ok(None);
        };
        let generation = match self.cache.lookup(id, &digest) {
            Lookup::Hit(hit) => {
                if hit.record_use {
                    tokens::record_use(&self.pool, id).await?;
                }
                return Ok(Some(hit.principal));
            }
            Lookup::WrongSecret => return Ok(None),
            Lookup::Miss(generation) => generation,
        };
        let Some(record) = tokens::find_active(&self.pool, id).await? else {
            return Ok(None);
        };
        if !bool::from(record.secret_sha256.as_slice().ct_eq(&digest)) {
            return Ok(None);
        }
        tokens::record_use(&self.pool, record.id).await?;
        let principal = principal_of(&record)?;
        if let Some(generation) = generation {
            self.cache
                .store(generation, record.id, digest, principal.clone());
        }
        Ok(Some(principal))
    }
}

/// The caller a stored token stands for.
fn principal_of(record: &TokenRecord) -> Result<Principal, StoreError> {
    let scopes = record
        .scopes
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<Scope>, _>>();
    let targets = record
        .targets
        .iter()
        .map(|t| t.parse())
        .collect::<Result<Vec<TargetPattern>, _>>();
    match (scopes, targets) {
        (Ok(scopes), Ok(targets)) => Ok(Principal {
            id: Principal::database_token_id(record.id),
            name: record.name.clone(),
            scopes,
            targets,
            expires_at: record.expires_at,
        }),
        (Err(error), _) | (_, Err(error)) => {
            Err(StoreError::Corrupt(format!("token {}: {error}", record.id)))
        }
    }
}

fn database_token_id(token: &str) -> Option<Uuid> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    if rest.len() != 96 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::try_parse(&rest[..32]).ok()
}

/// A new database token: its id, the token shown once, and the digest that is stored.
pub fn mint_token() -> (Uuid, String, [u8; 32]) {
    let id = Uuid::new_v4();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!("{TOKEN_PREFIX}{}{}", id.simple(), hex::encode(secret));
    let digest = Sha256::digest(token.as_bytes()).into();
    (id, token, digest)
}

/// The authenticated caller of a request.
pub struct Auth(pub Principal);

/// Any router state that holds the authenticator authenticates (`ApiState` does).
impl<S> FromRequestParts<S> for Auth
where
    S: Send + Sync,
    Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(ApiError::Unauthorized)?;
        let principal = Arc::<Authenticator>::from_ref(state)
            .authenticate(token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Auth(principal))
    }
}

impl Auth {
    /// 403 unless the caller holds `scope` somewhere.
    pub fn require_scope(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "token {:?} lacks the {} scope",
                self.0.name,
                scope.as_str()
            )))
        }
    }

    /// 403 unless the caller is an admin over every target: what `what` administers could
    /// otherwise reach past the caller's own targets.
    pub fn require_global_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.0.is_global_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{what} needs the admin scope over */*/*"
            )))
        }
    }

    /// 403 unless the caller holds `scope` over this release.
    pub fn require(&self, scope: Scope, target: &ReleaseId) -> Result<(), ApiError> {
        if self.0.allows(scope, target) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "token {:?} has no {} scope over {}/{}/{}",
                self.0.name,
                scope.as_str(),
                target.cluster,
                target.namespace,
                target.release
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_carry_their_id() {
        let (id, token, digest) = mint_token();
        assert_eq!(database_token_id(&token), Some(id));
        assert_eq!(<[u8; 32]>::from(Sha256::digest(token.as_bytes())), digest);
        assert_eq!(database_token_id("rc_short"), None);
        assert_eq!(database_token_id(&token.replace("rc_", "xx_")), None);
    }
}
