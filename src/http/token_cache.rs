//! The database tokens this process has checked, so that an authenticated request costs no query.
//!
//! Correct only while changes to tokens can be heard: [`super::revocations`] drops a token's entry
//! when the database announces a change to it (NOTIFY, sent on commit), and the whole cache when
//! announcements may have been missed (its LISTEN connection was lost: notifications sent while it
//! was down are gone). While that connection is down the cache neither answers nor stores, so every
//! request asks the database. An entry is also refused past its token's `expires_at`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::domain::auth::Principal;

/// Tokens are few; past this many entries (only valid tokens get in) the cache starts over.
const MAX_ENTRIES: usize = 10_000;
/// How often a cached token's use is written to the database (`last_used_at`).
pub const USE_RECORD_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct TokenCache {
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    entries: HashMap<Uuid, CachedToken>,
    /// Bumped by every invalidation: a lookup that began before one stores nothing, as what it
    /// read may predate the change.
    generation: u64,
    /// Whether token changes are being heard.
    live: bool,
}

struct CachedToken {
    secret_sha256: [u8; 32],
    principal: Principal,
    use_recorded: Instant,
}

/// What a lookup began with; storing its result needs it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

/// A cache hit.
pub struct Hit {
    pub principal: Principal,
    /// The use should be written to the database now (at most every [`USE_RECORD_INTERVAL`]).
    pub record_use: bool,
}

/// What the cache knows of a token.
pub enum Lookup {
    Hit(Hit),
    /// Known, but the secret presented is not the token's: refused without a query.
    WrongSecret,
    /// Ask the database; store the answer with this generation (`None`: do not store, changes
    /// are not being heard).
    Miss(Option<Generation>),
}

impl TokenCache {
    pub fn lookup(&self, id: Uuid, digest: &[u8; 32]) -> Lookup {
        let mut state = self.lock();
        if !state.live {
            return Lookup::Miss(None);
        }
        let generation = Some(Generation(state.generation));
        let Some(entry) = state.entries.get_mut(&id) else {
            return Lookup::Miss(generation);
        };
        if !bool::from(entry.secret_sha256.ct_eq(digest)) {
            return Lookup::WrongSecret;
        }
        if entry
            .principal
            .expires_at
            .is_some_and(|expires| expires <= Utc::now())
        {
            state.entries.remove(&id);
            return Lookup::Miss(generation);
        }
        let record_use = entry.use_recorded.elapsed() >= USE_RECORD_INTERVAL;
        if record_use {
            entry.use_recorded = Instant::now();
        }
        Lookup::Hit(Hit {
            principal: entry.principal.clone(),
            record_use,
        })
    }

    /// Stores what the database said of a token, unless something changed since `generation`.
    pub fn store(
        &self,
        generation: Generation,
        id: Uuid,
        secret_sha256: [u8; 32],
        principal: Principal,
    ) {
        let mut state = self.lock();
        if !state.live || state.generation != generation.0 {
            return;
        }
        if state.entries.len() >= MAX_ENTRIES {
            state.entries.clear();
        }
        state.entries.insert(
            id,
            CachedToken {
                secret_sha256,
                principal,
                use_recorded: Instant::now(),
            },
        );
    }

    /// The token changed (revoked, expired early, rescoped, deleted).
    pub fn forget(&self, id: Uuid) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.remove(&id);
    }

    /// Changes are heard (again), from an empty cache: whatever changed before is read anew.
    pub fn resume(&self) {
        self.reset(true);
    }

    /// Changes cannot be heard: every lookup asks the database until [`TokenCache::resume`].
    pub fn suspend(&self) {
        self.reset(false);
    }

    fn reset(&self, live: bool) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
        state.live = live;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(expires_in: Option<chrono::Duration>) -> Principal {
        Principal {
            id: "token:x".into(),
            name: "ci".into(),
            scopes: Vec::new(),
            targets: Vec::new(),
            expires_at: expires_in.map(|after| Utc::now() + after),
        }
    }

    fn generation(cache: &TokenCache, id: Uuid) -> Option<Generation> {
        match cache.lookup(id, &[0; 32]) {
            Lookup::Miss(generation) => generation,
            _ => panic!("expected a miss"),
        }
    }

    #[test]
    fn nothing_is_served_or_stored_while_changes_are_not_heard() {
        let cache = TokenCache::default();
        let id = Uuid::new_v4();
        assert_eq!(generation(&cache, id), None);
        cache.resume();
        let read = generation(&cache, id).expect("live");
        cache.suspend();
        cache.store(read, id, [0; 32], principal(None));
        assert_eq!(generation(&cache, id), None);
        cache.resume();
        assert!(matches!(cache.lookup(id, &[0; 32]), Lookup::Miss(Some(_))));
    }

    #[test]
    fn a_change_during_a_lookup_keeps_its_answer_out() {
        let cache = TokenCache::default();
        cache.resume();
        let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
        let read = generation(&cache, id).expect("live");
        // A revocation of any token may be the one this lookup read before it committed.
        cache.forget(other);
        cache.store(read, id, [0; 32], principal(None));
        assert!(matches!(cache.lookup(id, &[0; 32]), Lookup::Miss(_)));
        let read = generation(&cache, id).expect("live");
        cache.store(read, id, [0; 32], principal(None));
        assert!(matches!(cache.lookup(id, &[0; 32]), Lookup::Hit(_)));
        assert!(matches!(cache.lookup(id, &[1; 32]), Lookup::WrongSecret));
        cache.forget(id);
        assert!(matches!(cache.lookup(id, &[0; 32]), Lookup::Miss(_)));
    }

    #[test]
    fn an_expired_token_is_not_served() {
        let cache = TokenCache::default();
        cache.resume();
        let id = Uuid::new_v4();
        let read = generation(&cache, id).expect("live");
        cache.store(
            read,
            id,
            [0; 32],
            principal(Some(chrono::Duration::seconds(-1))),
        );
        assert!(matches!(cache.lookup(id, &[0; 32]), Lookup::Miss(Some(_))));
    }
}
