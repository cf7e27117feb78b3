//! Free-form labels on a deploy (a CI run URL, a commit), bounded so a client cannot bloat the store.

use std::collections::BTreeMap;

use super::FieldError;

pub const MAX_LABELS: usize = 32;
pub const MAX_KEY_LEN: usize = 63;
pub const MAX_VALUE_LEN: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

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
            if value.len() > MAX_VALUE_LEN {
                errors.push(FieldError::new(
                    &field,
                    format!("value must be at most {MAX_VALUE_LEN} bytes"),
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
