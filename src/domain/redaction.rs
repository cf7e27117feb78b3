//! Hiding a deploy's secret values in every text rollcall stores or sends about it (DESIGN §6.4):
//! helm's output, container logs, Kubernetes Event messages, reports and verdicts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::deploy::SecretValues;
use super::event::NewEvent;
use super::verdict::Verdict;

pub const REDACTED: &str = "[redacted]";
/// Secret values shorter than this are not redacted: they would blank out ordinary words.
const MIN_SECRET_LEN: usize = 3;

/// Replaces each secret value, and its base64 form (as a Secret's `data` carries it), with
/// [`REDACTED`].
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is hidden whole.
    needles: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: Option<&SecretValues>) -> Self {
        Self::from_values(secrets.map(SecretValues::expose))
    }

    fn from_values(secrets: Option<&serde_json::Map<String, serde_json::Value>>) -> Self {
        let mut needles = Vec::new();
        if let Some(secrets) = secrets {
            for value in secrets.values() {
                collect_leaves(value, &mut needles);
            }
        }
        let encoded: Vec<String> = needles
            .iter()
            .map(|needle| STANDARD.encode(needle))
            .collect();
        needles.extend(encoded);
        needles.retain(|needle| needle.len() >= MIN_SECRET_LEN);
        needles.sort_by_key(|needle| std::cmp::Reverse(needle.len()));
        needles.dedup();
        Redactor { needles }
    }

    /// Idempotent: text already redacted (helm's output is, before it becomes an event) keeps its
    /// markers even when a secret is a part of the word `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        if !self
            .needles
            .iter()
            .any(|needle| text.contains(needle.as_str()))
        {
            return text.to_owned();
        }
        let mut redacted = String::with_capacity(text.len());
        for (index, piece) in text.split(REDACTED).enumerate() {
            if index > 0 {
                redacted.push_str(REDACTED);
            }
            self.redact_piece(piece, &mut redacted);
        }
        redacted
    }

    /// Leftmost match first, the longest secret at a position, so that no marker is cut into.
    fn redact_piece(&self, piece: &str, into: &mut String) {
        let mut rest = piece;
        while let Some(next) = rest.chars().next() {
            match self
                .needles
                .iter()
                .find(|needle| rest.starts_with(needle.as_str()))
            {
                Some(needle) => {
                    into.push_str(REDACTED);
                    rest = &rest[needle.len()..];
                }
                None => {
                    into.push(next);
                    rest = &rest[next.len_utf8()..];
                }
            }
        }
    }

    /// Every string in `value` (object keys stay: they are the schema, not the data).
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) => *text = self.redact(text),
            serde_json::Value::Array(items) => {
                items.iter_mut().for_each(|item| self.redact_json(item))
            }
            serde_json::Value::Object(map) => {
                map.values_mut().for_each(|item| self.redact_json(item))
            }
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::Null => {
            }
        }
    }

    /// The event's message and data; its resource names the object and stays.
    pub fn redact_event(&self, mut event: NewEvent) -> NewEvent {
        if self.needles.is_empty() {
            return event;
        }
        event.message = self.redact(&event.message);
        self.redact_json(&mut event.data);
        event
    }

    /// The verdict's message and the words Kubernetes or helm gave for it.
    pub fn redact_verdict(&self, mut verdict: Verdict) -> Verdict {
        verdict.message = self.redact(&verdict.message);
        let detail = &mut verdict.detail;
        for text in [&mut detail.termination_reason, &mut detail.original_reason]
            .into_iter()
            .flatten()
        {
            *text = self.redact(text);
        }
        verdict
    }
}

fn collect_leaves(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::String(text) => into.push(text.clone()),
        serde_json::Value::Number(number) => into.push(number.to_string()),
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_leaves(item, into)),
        serde_json::Value::Object(map) => map.values().for_each(|item| collect_leaves(item, into)),
        serde_json::Value::Bool(_) | serde_json::Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::event::EventType;
    use crate::domain::verdict::VerdictReason;

    fn redactor(secrets: serde_json::Value) -> Redactor {
        Redactor::from_values(secrets.as_object())
    }

    #[test]
    fn redaction_hides_plain_and_base64_secrets_longest_first() {
        let redactor = redactor(json!({
            "db": {"password": "hunter22", "users": ["alice-secret"]},
            "pin": 4242,
            "x": "ab"
        }));
        let encoded = STANDARD.encode("hunter22");
        let line = format!("password=hunter22 data={encoded} user=alice-secret pin=4242 x=ab");
        assert_eq!(
            redactor.redact(&line),
            "password=[redacted] data=[redacted] user=[redacted] pin=[redacted] x=ab"
        );
        assert_eq!(Redactor::default().redact("hunter22"), "hunter22");
    }

    #[test]
    fn redacting_twice_keeps_the_markers_whole() {
        let redactor = redactor(json!({"token": "dact", "other": "s3cr3t"}));
        let once = redactor.redact("a=s3cr3t b=dact");
        assert_eq!(once, "a=[redacted] b=[redacted]");
        assert_eq!(redactor.redact(&once), once);
    }

    #[test]
    fn events_and_verdicts_are_redacted_in_every_text_but_their_structure() {
        let redactor = redactor(json!({"password": "hunter22"}));
        let event = NewEvent::new(EventType::ContainerLog, "login hunter22").data(json!({
            "hunter22": 1,
            "lines": [{"text": "again hunter22"}],
            "count": 2
        }));
        let event = redactor.redact_event(event);
        assert_eq!(event.message, "login [redacted]");
        assert_eq!(
            event.data,
            json!({"hunter22": 1, "lines": [{"text": "again [redacted]"}], "count": 2})
        );
        let mut verdict = Verdict::new(VerdictReason::CrashLoopBackOff, "printed hunter22");
        verdict.detail.original_reason = Some("hunter22".into());
        let verdict = redactor.redact_verdict(verdict);
        assert_eq!(verdict.message, "printed [redacted]");
        assert_eq!(verdict.detail.original_reason.as_deref(), Some(REDACTED));
    }
}
