//! Kubernetes names as newtypes: a value of these types is known to be valid.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::FieldError;

/// A DNS-1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric.
fn check_dns1123_label(value: &str, max_len: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > max_len {
        return Err(format!("must be at most {max_len} characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("must consist of lowercase letters, digits and '-' (DNS-1123 label)".into());
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("must start and end with a letter or digit (DNS-1123 label)".into());
    }
    Ok(())
}

macro_rules! dns_label_newtype {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(value: impl Into<String>, field: &str) -> Result<Self, FieldError> {
                let value = value.into();
                check_dns1123_label(&value, Self::MAX_LEN).map_err(|message| FieldError::new(field, message))?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(value: String) -> Result<Self, String> {
                check_dns1123_label(&value, Self::MAX_LEN)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

dns_label_newtype!(
    /// A helm release name: a DNS-1123 label of at most 53 characters (helm's own limit).
    ReleaseName,
    53
);
dns_label_newtype!(
    /// A Kubernetes namespace: a DNS-1123 label of at most 63 characters.
    Namespace,
    63
);
dns_label_newtype!(
    /// An inbound webhook's name, the last segment of its URL `/v1/hooks/{name}`.
    HookName,
    63
);

/// The name of a configured cluster (a kube context); `default` when the request names none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

impl ClusterName {
    pub const DEFAULT: &'static str = "default";
    /// What [`check_cluster_name`] accepts, as the API document states it.
    pub const REGEX: &'static str = "^[A-Za-z0-9._@:-]{1,253}$";

    /// The schema of a request's optional cluster: a name, or absent or `null` for `default`.
    /// A `oneOf` rather than a nullable string, whose length bounds schemathesis 4.3 would test
    /// with `null`.
    pub fn optional_schema() -> utoipa::openapi::schema::Schema {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
        let one_of = OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(Self::REGEX)),
            )
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some(
                "Named cluster (kube context): letters, digits, '-', '_', '.', '@', ':' (1 to \
                 253); default `default`.",
            ))
            .build();
        Schema::OneOf(one_of)
    }

    pub fn parse(value: impl Into<String>, field: &str) -> Result<Self, FieldError> {
        let value = value.into();
        check_cluster_name(&value).map_err(|message| FieldError::new(field, message))?;
        Ok(Self(value))
    }

    pub fn default_cluster() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Kube context names are freer than DNS labels, but a '/' would break `cluster/namespace/release` targets.
fn check_cluster_name(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 {
        return Err("must be 1 to 253 characters".into());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':'))
    {
        return Err("may contain only letters, digits and '-', '_', '.', '@', ':'".into());
    }
    Ok(())
}

impl TryFrom<String> for ClusterName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        check_cluster_name(&value)?;
        Ok(Self(value))
    }
}

impl From<ClusterName> for String {
    fn from(value: ClusterName) -> String {
        value.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_cluster_regex_is_the_check() {
        let regex = regex::Regex::new(ClusterName::REGEX).expect("a valid regex");
        let long = "c".repeat(254);
        for text in [
            "default",
            "kind@prod:1",
            "a.b_c-d",
            "",
            "a b",
            "a/b",
            "é",
            &long,
            &long[1..],
        ] {
            assert_eq!(
                regex.is_match(text),
                check_cluster_name(text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn release_names_follow_dns1123_and_helm_length() {
        assert!(ReleaseName::parse("web-1", "release").is_ok());
        assert!(ReleaseName::parse("Web", "release").is_err());
        assert!(ReleaseName::parse("-web", "release").is_err());
        assert!(ReleaseName::parse("web-", "release").is_err());
        assert!(ReleaseName::parse("a".repeat(53), "release").is_ok());
        let error = ReleaseName::parse("a".repeat(54), "release").unwrap_err();
        assert_eq!(error.field, "release");
        assert!(Namespace::parse("a".repeat(63), "namespace").is_ok());
        assert!(Namespace::parse("", "namespace").is_err());
    }

    #[test]
    fn cluster_names_reject_slashes() {
        assert!(ClusterName::parse("kind-prod_1", "cluster").is_ok());
        assert!(ClusterName::parse("a/b", "cluster").is_err());
    }
}
