//! The whitelist from a delivery's payload to helm values: JSON pointers (RFC 6901) into the
//! payload, each mapped to a dotted values path (`/after` → `image.tag`). Nothing else of the
//! payload reaches helm, and only scalars do: a pointer at an object would smuggle a whole subtree.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::domain::FieldError;

/// How many pointers one hook may map.
pub const MAX_MAPPINGS: usize = 32;
const MAX_POINTER_LEN: usize = 512;
const MAX_PATH_LEN: usize = 256;

/// A JSON pointer at one value inside a payload (never the whole payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer(String);

impl JsonPointer {
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') || text.len() < 2 {
            return Err(
                "must be a JSON pointer at a value of the payload, like /after or /release/tag_name"
                    .into(),
            );
        }
        if text.len() > MAX_POINTER_LEN {
            return Err(format!("must be at most {MAX_POINTER_LEN} characters"));
        }
        // RFC 6901: `~` only as the escapes `~0` (for `~`) and `~1` (for `/`).
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err("`~` must be followed by 0 or 1 (RFC 6901 escapes)".into());
            }
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value the pointer names, if it is a string, number or boolean (numbers and booleans
    /// as the payload has them).
    pub fn scalar<'a>(&self, payload: &'a Value) -> Result<&'a Value, String> {
        match payload.pointer(&self.0) {
            None | Some(Value::Null) => Err("is absent from the payload".into()),
            Some(value @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => Ok(value),
            Some(_) => Err(
                "is an object or array in the payload: only strings, numbers and booleans are passed on"
                    .into(),
            ),
        }
    }

    /// The value the pointer names, as text (a chart version, a ref).
    pub fn text(&self, payload: &Value) -> Result<String, String> {
        Ok(match self.scalar(payload)? {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A dotted path into helm values: `image.tag` sets `{"image": {"tag": …}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesPath(Vec<String>);

impl ValuesPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid_segment = |segment: &str| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        };
        if text.len() > MAX_PATH_LEN || !text.split('.').all(valid_segment) {
            return Err(format!(
                "must be a values path like image.tag: dot-separated keys of letters, digits, '_' and '-', at most {MAX_PATH_LEN} characters"
            ));
        }
        Ok(Self(text.split('.').map(str::to_owned).collect()))
    }

    /// Whether one path lies inside the other (or they are equal): both cannot be set.
    fn overlaps(&self, other: &ValuesPath) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a == b)
    }

    /// Sets `value` at this path, creating objects on the way; the mapped value replaces whatever
    /// the static values had there.
    fn set(&self, values: &mut Map<String, Value>, value: Value) {
        let (last, parents) = self.0.split_last().expect("a values path has a key");
        let mut object = values;
        for key in parents {
            let slot = object
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            object = slot.as_object_mut().expect("made an object above");
        }
        object.insert(last.clone(), value);
    }
}

impl fmt::Display for ValuesPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A hook's `values_from`: which payload values become which helm values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValuesMapping(Vec<(JsonPointer, ValuesPath)>);

impl ValuesMapping {
    /// Errors name `values_from.<pointer>`.
    pub fn parse(written: &BTreeMap<String, String>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if written.len() > MAX_MAPPINGS {
            errors.push(FieldError::new(
                "values_from",
                format!("at most {MAX_MAPPINGS} pointers may be mapped"),
            ));
        }
        let mut mapping: Vec<(JsonPointer, ValuesPath)> = Vec::new();
        for (pointer, path) in written {
            let field = format!("values_from.{pointer}");
            match (JsonPointer::parse(pointer), ValuesPath::parse(path)) {
                (Ok(pointer), Ok(path)) => {
                    if let Some((other, _)) = mapping.iter().find(|(_, set)| set.overlaps(&path)) {
                        errors.push(FieldError::new(
                            field,
                            format!("values path {path} overlaps the one {other} sets"),
                        ));
                    } else {
                        mapping.push((pointer, path));
                    }
                }
                (Err(message), _) | (_, Err(message)) => {
                    errors.push(FieldError::new(field, message))
                }
            }
        }
        if errors.is_empty() {
            Ok(Self(mapping))
        } else {
            Err(errors)
        }
    }

    /// Sets every mapped value into `values`. Every pointer must name a scalar of the payload: a
    /// push without the commit the hook deploys must not deploy the chart's default instead.
    /// Errors name the pointer.
    pub fn apply(
        &self,
        payload: &Value,
        values: &mut Map<String, Value>,
    ) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        for (pointer, path) in &self.0 {
            match pointer.scalar(payload) {
                Ok(value) => path.set(values, value.clone()),
                Err(message) => errors.push(FieldError::new(
                    pointer.as_str(),
                    format!("{message} (the hook maps it to {path})"),
                )),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The values each mapped path would get from a payload holding an empty string at every
    /// pointer: what a definition is checked with before any delivery.
    pub fn placeholders(&self, values: &mut Map<String, Value>) {
        for (_, path) in &self.0 {
            path.set(values, Value::String(String::new()));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(pairs: &[(&str, &str)]) -> Result<ValuesMapping, Vec<FieldError>> {
        ValuesMapping::parse(
            &pairs
                .iter()
                .map(|(pointer, path)| ((*pointer).to_owned(), (*path).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn pointers_name_one_value_and_escape_as_rfc_6901_says() {
        for good in [
            "/after",
            "/release/tag_name",
            "/commits/0/id",
            "/a~1b",
            "/a~0b",
        ] {
            assert!(JsonPointer::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "/", "after", "/a~2", "/a~"] {
            assert!(JsonPointer::parse(bad).is_err(), "{bad:?}");
        }
        let payload = json!({"a/b": "slash", "n": 3, "o": {"x": 1}, "z": null});
        let pointer = |text: &str| JsonPointer::parse(text).unwrap();
        assert_eq!(pointer("/a~1b").text(&payload).unwrap(), "slash");
        assert_eq!(pointer("/n").text(&payload).unwrap(), "3");
        assert!(
            pointer("/o")
                .scalar(&payload)
                .unwrap_err()
                .contains("object")
        );
        assert!(
            pointer("/z")
                .scalar(&payload)
                .unwrap_err()
                .contains("absent")
        );
        assert!(
            pointer("/missing")
                .scalar(&payload)
                .unwrap_err()
                .contains("absent")
        );
    }

    #[test]
    fn values_paths_are_dotted_keys_and_may_not_overlap() {
        assert!(ValuesPath::parse("image.tag").is_ok());
        for bad in ["", "image.", ".tag", "image tag", "a..b"] {
            assert!(ValuesPath::parse(bad).is_err(), "{bad:?}");
        }
        let errors = mapping(&[("/after", "image"), ("/ref", "image.tag")]).unwrap_err();
        assert_eq!(errors[0].field, "values_from./ref");
        assert!(errors[0].message.contains("overlaps"), "{errors:?}");
        let errors = mapping(&[("after", "image.tag"), ("/ok", "bad path")]).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["values_from./ok", "values_from.after"]);
    }

    #[test]
    fn only_mapped_scalars_reach_the_values_and_a_missing_one_is_named() {
        let mapping = mapping(&[("/after", "image.tag"), ("/ref", "labels.ref")]).unwrap();
        let mut values = json!({"image": {"repository": "r"}, "labels": "x", "replicas": 2})
            .as_object()
            .unwrap()
            .clone();
        let payload = json!({"after": "abc", "ref": "refs/heads/main", "secret": "s"});
        mapping.apply(&payload, &mut values).unwrap();
        assert_eq!(
            Value::Object(values),
            json!({"image": {"repository": "r", "tag": "abc"}, "labels": {"ref": "refs/heads/main"}, "replicas": 2})
        );
        let errors = mapping
            .apply(&json!({"ref": "refs/heads/main"}), &mut Map::new())
            .unwrap_err();
        assert_eq!(errors[0].field, "/after");
        assert_eq!(
            errors[0].message,
            "is absent from the payload (the hook maps it to image.tag)"
        );
    }
}
