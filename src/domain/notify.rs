//! Per-deploy notification subscriptions (DESIGN §6.3): where to send which events.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use super::event::EventType;

pub const MAX_SUBSCRIPTIONS: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// An http(s) URL that receives signed notifications.
    pub url: String,
    /// Event types to send (`deploy.succeeded`), or a family (`deploy.*`), or `*`. Default: the
    /// terminal deploy events.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifySubscription {
    pub url: String,
    pub events: Vec<String>,
}

impl NotifySubscription {
    pub fn parse_all(specs: Vec<NotifySpec>) -> Result<Vec<Self>, Vec<FieldError>> {
        let mut errors = Vec::new();
        if specs.len() > MAX_SUBSCRIPTIONS {
            errors.push(FieldError::new(
                "notify",
                format!("at most {MAX_SUBSCRIPTIONS} subscriptions are allowed"),
            ));
        }
        let mut subscriptions = Vec::new();
        for (index, spec) in specs.into_iter().enumerate() {
            match Self::parse(spec) {
                Ok(subscription) => subscriptions.push(subscription),
                Err(found) => errors.extend(
                    found
                        .into_iter()
                        .map(|e| e.under(&format!("notify[{index}]"))),
                ),
            }
        }
        if errors.is_empty() {
            Ok(subscriptions)
        } else {
            Err(errors)
        }
    }

    fn parse(spec: NotifySpec) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Err(message) = check_url(&spec.url) {
            errors.push(FieldError::new("url", message));
        }
        let events = spec.events.unwrap_or_else(|| {
            ["deploy.succeeded", "deploy.failed", "deploy.cancelled"]
                .map(String::from)
                .to_vec()
        });
        if events.is_empty() {
            errors.push(FieldError::new(
                "events",
                "must name at least one event type",
            ));
        }
        for (index, pattern) in events.iter().enumerate() {
            if !is_known_event_pattern(pattern) {
                errors.push(FieldError::new(
                    format!("events[{index}]"),
                    format!("unknown event type {pattern:?}"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self {
                url: spec.url,
                events,
            })
        } else {
            Err(errors)
        }
    }
}

fn is_known_event_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(family) => EventType::ALL
            .iter()
            .any(|t| t.as_str().split('.').next() == Some(family)),
        None => EventType::ALL.iter().any(|t| t.as_str() == pattern),
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must be an http(s) URL")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    if host.is_empty() || url.len() > 2048 || url.contains(char::is_whitespace) {
        return Err("must be an http(s) URL with a host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_event_patterns_are_checked() {
        let ok = NotifySpec {
            url: "https://chat.example/hook".into(),
            events: Some(vec![
                "deploy.*".into(),
                "resource.failed".into(),
                "*".into(),
            ]),
        };
        assert!(NotifySubscription::parse_all(vec![ok]).is_ok());
        let bad = NotifySpec {
            url: "ftp://x".into(),
            events: Some(vec!["deploy.exploded".into()]),
        };
        let errors = NotifySubscription::parse_all(vec![bad]).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["notify[0].url", "notify[0].events[0]"]);
    }
}
