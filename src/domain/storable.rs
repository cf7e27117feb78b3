//! Text PostgreSQL can store. Its `text` and `jsonb` refuse U+0000, and text from outside (a
//! container's log, a Kubernetes Event, a termination message, helm's output) may carry it: one such
//! line would keep its whole event batch, or a verdict, out of the database. U+0000 is stored as
//! U+FFFD, the replacement character, so a reader still sees that something was there.

use serde_json::Value;

/// What U+0000 becomes.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// Whether `text` holds a character PostgreSQL refuses.
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// Replaces U+0000 in `text`.
pub fn storable_text(text: &mut String) {
    if has_nul(text) {
        *text = text.replace('\0', &NUL_REPLACEMENT.to_string());
    }
}

/// Replaces U+0000 in every string and key of `value`.
pub fn storable_json(value: &mut Value) {
    match value {
        Value::String(text) => storable_text(text),
        Value::Array(items) => items.iter_mut().for_each(storable_json),
        Value::Object(map) => {
            if map.keys().any(|key| has_nul(key)) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(mut key, value)| {
                        storable_text(&mut key);
                        (key, value)
                    })
                    .collect();
            }
            map.values_mut().for_each(storable_json);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_becomes_the_replacement_character_and_nothing_else_changes() {
        let mut text = "a\0b\0".to_owned();
        storable_text(&mut text);
        assert_eq!(text, "a\u{FFFD}b\u{FFFD}");
        let mut clean = "line one\tüñí".to_owned();
        storable_text(&mut clean);
        assert_eq!(clean, "line one\tüñí");
    }

    #[test]
    fn every_string_and_key_of_a_json_value_is_made_storable() {
        let mut value =
            json!({"pod": "web\0", "lines": ["ok", "x\0y"], "k\0": {"n": 1, "s": "\0"}});
        storable_json(&mut value);
        assert_eq!(
            value,
            json!({"pod": "web\u{FFFD}", "lines": ["ok", "x\u{FFFD}y"], "k\u{FFFD}": {"n": 1, "s": "\u{FFFD}"}})
        );
        assert!(!value.to_string().contains("\\u0000"));
    }
}
