//! How a followed deploy is shown: redrawn in place on a terminal ([`live`]), or as timestamped
//! lines, one per event, where output is a log (a CI job, a pipe: [`plain`]).

pub mod live;
pub mod plain;

use std::io::{IsTerminal as _, Write as _};

use super::progress::DeployProgress;
use super::text::one_line;
use crate::domain::event::{Event, EventType, Level};

/// Where the follow output goes: stdout, or stderr when stdout carries `-o json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// Prints one line; a closed pipe (`| head`) is not an error worth reporting.
    pub fn line(self, text: &str) {
        let _closed = match self {
            Stream::Stdout => writeln!(std::io::stdout().lock(), "{text}"),
            Stream::Stderr => writeln!(std::io::stderr().lock(), "{text}"),
        };
    }

    pub fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

pub trait View {
    /// An event, after `progress` took it; `changed` is the resource entry it changed.
    fn event(&mut self, progress: &DeployProgress, event: &Event, changed: Option<usize>);
    /// A line of the client's own (connection lost, resumed).
    fn notice(&mut self, text: &str);
    /// The stream ended: settle the display; plain lines follow.
    fn finish(&mut self, progress: &DeployProgress);
}

/// One event as one line: `12:00:01.234 Deployment/web  progressing 1/3: Waiting for ...`.
pub fn event_line(event: &Event) -> String {
    let subject = match (&event.resource, event.kind) {
        (_, EventType::ContainerLog | EventType::LogCapped) => {
            let data = &event.data;
            match (data["pod"].as_str(), data["container"].as_str()) {
                (Some(pod), Some(container)) => format!("{pod}/{container}"),
                _ => "log".to_owned(),
            }
        }
        (Some(resource), _) => format!("{}/{}", resource.kind, resource.name),
        (None, kind) => kind
            .as_str()
            .split('.')
            .next()
            .unwrap_or("deploy")
            .to_owned(),
    };
    let level = match event.level {
        Level::Info => "",
        Level::Warning => "warning: ",
        Level::Error => "error: ",
    };
    let message = match event.kind {
        EventType::ContainerLog => format!("| {}", event.message),
        EventType::ResourceReady => format!("ready: {}", event.message),
        EventType::ResourceFailed | EventType::DeployFailed => {
            format!("failed: {}", event.message)
        }
        EventType::ResourceStatus => {
            let state = event.data["state"].as_str().unwrap_or("status");
            match event.data["ready"].as_str() {
                Some(ready) => format!("{state} {ready}: {}", event.message),
                None => format!("{state}: {}", event.message),
            }
        }
        _ => event.message.clone(),
    };
    format!(
        "{} {subject:<24} {level}{}",
        event.at.format("%H:%M:%S%.3fZ"),
        one_line(&message)
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::domain::event::ResourceRef;

    fn event(kind: EventType, level: Level, message: &str, data: serde_json::Value) -> Event {
        Event {
            deploy_id: Uuid::nil(),
            seq: 4,
            kind,
            at: chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            level,
            resource: Some(ResourceRef {
                kind: "Deployment".into(),
                namespace: "default".into(),
                name: "web".into(),
            }),
            message: message.into(),
            data,
        }
    }

    #[test]
    fn each_event_is_one_timestamped_line() {
        assert_eq!(
            event_line(&event(
                EventType::ResourceStatus,
                Level::Info,
                "Waiting for rollout",
                json!({"state": "progressing", "ready": "1/3"})
            )),
            "03:04:05.000Z Deployment/web           progressing 1/3: Waiting for rollout"
        );
        assert_eq!(
            event_line(&event(
                EventType::ContainerLog,
                Level::Info,
                "::error::forged\nsecond line",
                json!({"pod": "web-1", "container": "app"})
            )),
            "03:04:05.000Z web-1/app                | ::error::forged\\nsecond line"
        );
        let mut failed = event(
            EventType::DeployFailed,
            Level::Error,
            "web failed",
            json!({}),
        );
        failed.resource = None;
        assert_eq!(
            event_line(&failed),
            "03:04:05.000Z deploy                   error: failed: web failed"
        );
    }
}
