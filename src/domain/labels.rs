//! Free-form labels on a deploy (a CI run URL, a commit), bounded so a client cannot bloat the store.

use std::collections::BTreeMap;

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use super::FieldError;

pub const MAX_LABELS: usize = 32;
pub const MAX_KEY_LEN: usize = 63;
pub const MAX_VALUE_LEN: usize = 1024;

/// What [`check_label_key`] accepts, as the API document states it.
pub const KEY_REGEX: &str = "^[A-Za-z0-9._/-]{1,63}$";
/// What [`parse_label_selector`] accepts: a key, `=`, any value.
pub const SELECTOR_REGEX: &str = "^[A-Za-z0-9._/-]{1,63}=";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

/// The schema of a request's `labels`, with every bound [`Labels::parse`] enforces.
pub fn labels_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(KEY_REGEX)),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_VALUE_LEN)),
        ))
        .max_properties(Some(MAX_LABELS))
        .description(Some(format!(
            "Free-form, e.g. a CI run URL: at most {MAX_LABELS}; keys of letters, digits, '-', '_', \
             '.', '/' (1 to {MAX_KEY_LEN}); values of at most {MAX_VALUE_LEN} characters."
        )))
        .build()
}

/// The schema of a `key=value` label filter.
pub fn selector_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(SELECTOR_REGEX))
        .build()
}

impl Labels {
    pub fn parse(labels: BTreeMap<String, String>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if labels.len() > MAX_LABELS {
            errors.push(FieldError::new(
                "labels",
                format!("at most {MAX_LABELS} labels are allowed"),
            ));
        }
        for (key, value) in &labels {
            let field = format!("labels.{key}");
            if let Err(message) = check_label_key(key) {
                errors.push(FieldError::new(&field, message));
            }
            if value.chars().count() > MAX_VALUE_LEN {
                errors.push(FieldError::new(
                    &field,
                    format!("value must be at most {MAX_VALUE_LEN} characters"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self(labels))
        } else {
            Err(errors)
        }
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

pub fn check_label_key(key: &str) -> Result<(), String> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "label keys must be 1 to {MAX_KEY_LEN} characters of letters, digits, '-', '_', '.', '/'"
        ))
    }
}

/// A `key=value` label filter of a list query.
pub fn parse_label_selector(selector: &str) -> Result<(String, String), String> {
    let (key, value) = selector
        .split_once('=')
        .ok_or_else(|| format!("label filter {selector:?} must have the form key=value"))?;
    check_label_key(key)?;
    Ok((key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's patterns and the parsers agree.
    #[test]
    fn the_documented_label_regexes_are_the_parsers() {
        let key = regex::Regex::new(KEY_REGEX).expect("a valid regex");
        let selector = regex::Regex::new(SELECTOR_REGEX).expect("a valid regex");
        let long = "k".repeat(MAX_KEY_LEN + 1);
        for text in [
            "ci.run",
            "a/b_c-d",
            "",
            "has space",
            "é",
            "a=b",
            &long,
            &long[1..],
        ] {
            assert_eq!(
                key.is_match(text),
                check_label_key(text).is_ok(),
                "{text:?}"
            );
        }
        for text in [
            "a=b",
            "a=",
            "a==b",
            "=b",
            "a",
            "",
            "a b=c",
            "a=b c",
            &format!("{long}=v"),
        ] {
            assert_eq!(
                selector.is_match(text),
                parse_label_selector(text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn label_limits() {
        let ok = BTreeMap::from([("ci.run".to_owned(), "https://ci/1".to_owned())]);
        assert!(Labels::parse(ok).is_ok());
        let bad_key = BTreeMap::from([("has space".to_owned(), "x".to_owned())]);
        assert_eq!(
            Labels::parse(bad_key).unwrap_err()[0].field,
            "labels.has space"
        );
        let too_many = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert_eq!(Labels::parse(too_many).unwrap_err()[0].field, "labels");
        let long = BTreeMap::from([("k".to_owned(), "v".repeat(MAX_VALUE_LEN + 1))]);
        assert!(Labels::parse(long).is_err());
    }

    #[test]
    fn selectors() {
        assert_eq!(
            parse_label_selector("a=b=c"),
            Ok(("a".into(), "b=c".into()))
        );
        assert!(parse_label_selector("novalue").is_err());
    }
}
