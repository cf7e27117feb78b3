//! Who may do what: scopes over `cluster/namespace/release` glob targets (DESIGN §6.1).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::glob::{glob_match, glob_to_like};
use super::release::ReleaseId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Deploy,
    Cancel,
    /// Every other scope, plus token management.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Cancel => "cancel",
            Scope::Admin => "admin",
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "deploy" => Ok(Scope::Deploy),
            "cancel" => Ok(Scope::Cancel),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {other:?}: expected read, deploy, cancel or admin"
            )),
        }
    }
}

/// A `cluster/namespace/release` pattern, each part a glob (`*`, `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPattern {
    pub cluster: String,
    pub namespace: String,
    pub release: String,
}

impl TargetPattern {
    pub fn everything() -> Self {
        Self {
            cluster: "*".into(),
            namespace: "*".into(),
            release: "*".into(),
        }
    }

    pub fn matches(&self, target: &ReleaseId) -> bool {
        glob_match(&self.cluster, &target.cluster)
            && glob_match(&self.namespace, &target.namespace)
            && glob_match(&self.release, &target.release)
    }

    pub fn is_everything(&self) -> bool {
        [&self.cluster, &self.namespace, &self.release]
            .iter()
            .all(|part| part.chars().all(|c| c == '*') && !part.is_empty())
    }
}

impl TargetPattern {
    /// What [`TargetPattern::from_str`] accepts, as the API document states it.
    pub const REGEX: &'static str =
        "^[A-Za-z0-9._@:*?-]{1,253}/[A-Za-z0-9._@:*?-]{1,253}/[A-Za-z0-9._@:*?-]{1,253}$";

    /// The schema of a request's list of patterns: at least one.
    pub fn list_schema() -> utoipa::openapi::schema::Array {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(Self::REGEX)),
            )
            .min_items(Some(1))
            .description(Some(
                "`cluster/namespace/release` patterns; `*` and `?` are globs.",
            ))
            .build()
    }

    /// As [`TargetPattern::list_schema`], or absent or `null` for the request's default.
    pub fn optional_list_schema() -> utoipa::openapi::schema::Schema {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
        Schema::OneOf(
            OneOfBuilder::new()
                .item(Self::list_schema())
                .item(ObjectBuilder::new().schema_type(Type::Null))
                .build(),
        )
    }
}

impl FromStr for TargetPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let [cluster, namespace, release] = parts.as_slice() else {
            return Err(format!(
                "target {s:?} must have the form cluster/namespace/release (globs allowed)"
            ));
        };
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 253
                && part.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '-' | '_' | '.' | '@' | ':' | '*' | '?')
                })
        };
        if ![cluster, namespace, release].iter().all(|part| valid(part)) {
            return Err(format!(
                "target {s:?}: each part must be a non-empty name or glob of letters, digits, '-', '_', '.', '@', ':', '*', '?'"
            ));
        }
        Ok(Self {
            cluster: (*cluster).to_owned(),
            namespace: (*namespace).to_owned(),
            release: (*release).to_owned(),
        })
    }
}

impl fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.cluster, self.namespace, self.release)
    }
}

/// The three `like` patterns per target, as the store filters list queries with them.
#[derive(Debug, Clone, Default)]
pub struct LikeTargets {
    pub clusters: Vec<String>,
    pub namespaces: Vec<String>,
    pub releases: Vec<String>,
}

/// A token known from configuration rather than the database: only its sha256 is known.
#[derive(Debug, Clone)]
pub struct StaticToken {
    pub name: String,
    pub secret_sha256: [u8; 32],
    pub scopes: Vec<Scope>,
    pub targets: Vec<TargetPattern>,
}

impl StaticToken {
    pub const BOOTSTRAP_NAME: &'static str = "bootstrap-admin";

    /// The bootstrap admin token (admin over every target), so that a fresh install can be
    /// administered.
    pub fn bootstrap_admin(token: &str) -> Self {
        use sha2::{Digest, Sha256};
        Self {
            name: Self::BOOTSTRAP_NAME.into(),
            secret_sha256: Sha256::digest(token.as_bytes()).into(),
            scopes: vec![Scope::Admin],
            targets: vec![TargetPattern::everything()],
        }
    }

    /// A configured token from its written form: the hex sha256 of the secret, scope names and
    /// `cluster/namespace/release` patterns. The error says what is wrong.
    pub fn parse(
        name: String,
        sha256_hex: &str,
        scopes: &[String],
        targets: &[String],
    ) -> Result<Self, String> {
        let secret_sha256: [u8; 32] = hex::decode(sha256_hex.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| "sha256 must be 64 hex digits".to_owned())?;
        Ok(Self {
            name,
            secret_sha256,
            scopes: scopes
                .iter()
                .map(|scope| scope.parse())
                .collect::<Result<_, _>>()?,
            targets: targets
                .iter()
                .map(|target| target.parse())
                .collect::<Result<_, _>>()?,
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stable identity used for idempotency keys and audit (`token:<uuid>`, `config:<name>`, `bootstrap`).
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub targets: Vec<TargetPattern>,
    /// When the token stops working; `None`: until revoked (configured tokens: never).
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// How [`Principal::id`] names a token of the database.
const DATABASE_TOKEN_ID: &str = "token:";

impl Principal {
    /// The [`Principal::id`] of the database token `token`.
    pub fn database_token_id(token: uuid::Uuid) -> String {
        format!("{DATABASE_TOKEN_ID}{token}")
    }

    /// The database token this principal authenticated with; `None` for configured tokens.
    pub fn database_token(&self) -> Option<uuid::Uuid> {
        self.id
            .strip_prefix(DATABASE_TOKEN_ID)
            .and_then(|id| uuid::Uuid::try_parse(id).ok())
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    pub fn allows(&self, scope: Scope, target: &ReleaseId) -> bool {
        self.has_scope(scope) && self.targets.iter().any(|pattern| pattern.matches(target))
    }

    /// Token management needs admin over every target, so that no token can mint a wider one.
    pub fn is_global_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin) && self.targets.iter().any(TargetPattern::is_everything)
    }

    /// The targets readable by this principal, as `like` patterns (empty without the read scope).
    pub fn readable_like_targets(&self) -> LikeTargets {
        let mut like = LikeTargets::default();
        if self.has_scope(Scope::Read) {
            for target in &self.targets {
                like.clusters.push(glob_to_like(&target.cluster));
                like.namespaces.push(glob_to_like(&target.namespace));
                like.releases.push(glob_to_like(&target.release));
            }
        }
        like
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's pattern and the parser agree.
    #[test]
    fn the_documented_target_regex_is_the_parser() {
        let regex = regex::Regex::new(TargetPattern::REGEX).expect("a valid regex");
        let long = "a".repeat(254);
        for text in [
            "*/*/*",
            "default/prod/web-?",
            "kind@ctx:1/ns_1/rel.2",
            "",
            "a/b",
            "a/b/c/d",
            "a//c",
            "a/b c/d",
            "a/b/é",
            &format!("a/b/{long}"),
            &format!("a/b/{}", &long[1..]),
        ] {
            assert_eq!(
                regex.is_match(text),
                text.parse::<TargetPattern>().is_ok(),
                "{text:?}"
            );
        }
    }

    fn principal(scopes: &[Scope], targets: &[&str]) -> Principal {
        Principal {
            id: "test".into(),
            name: "test".into(),
            scopes: scopes.to_vec(),
            targets: targets.iter().map(|t| t.parse().unwrap()).collect(),
            expires_at: None,
        }
    }

    fn web_prod() -> ReleaseId {
        ReleaseId::new("default", "prod", "web")
    }

    #[test]
    fn scopes_apply_only_within_targets() {
        let ci = principal(&[Scope::Deploy], &["default/prod/web*"]);
        assert!(ci.allows(Scope::Deploy, &web_prod()));
        assert!(!ci.allows(Scope::Cancel, &web_prod()));
        assert!(!ci.allows(Scope::Deploy, &ReleaseId::new("default", "prod", "api")));
    }

    #[test]
    fn admin_implies_every_scope_but_global_admin_needs_every_target() {
        let team_admin = principal(&[Scope::Admin], &["*/team-a/*"]);
        assert!(team_admin.allows(Scope::Read, &ReleaseId::new("default", "team-a", "web")));
        assert!(!team_admin.is_global_admin());
        assert!(principal(&[Scope::Admin], &["*/*/*"]).is_global_admin());
    }

    #[test]
    fn targets_need_three_parts() {
        assert!("a/b".parse::<TargetPattern>().is_err());
        assert!("a/b/c/d".parse::<TargetPattern>().is_err());
        assert!("a//c".parse::<TargetPattern>().is_err());
        assert!("*/prod/web-?".parse::<TargetPattern>().is_ok());
    }
}
