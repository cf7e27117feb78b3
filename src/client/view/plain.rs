//! Timestamped lines, one per event, for logs: a CI job's, a file's, a pipe's. Under a CI runner
//! the lines sit in a collapsible section and, on GitHub, between `::stop-commands::` markers,
//! since they carry text from the cluster.

use super::super::ci::Ci;
use super::super::progress::DeployProgress;
use super::{Stream, View, event_line};
use crate::domain::event::Event;

/// The CI section the event lines are in.
const SECTION: &str = "rollcall_events";

pub struct PlainView<'a> {
    stream: Stream,
    ci: &'a Ci,
}

impl<'a> PlainView<'a> {
    /// Opens the section of event lines under `title`.
    pub fn start(stream: Stream, ci: &'a Ci, title: &str) -> Self {
        for line in [
            ci.section_start(SECTION, title, false),
            ci.untrusted_start(),
        ]
        .into_iter()
        .flatten()
        {
            stream.line(&line);
        }
        PlainView { stream, ci }
    }
}

impl View for PlainView<'_> {
    fn event(&mut self, _progress: &DeployProgress, event: &Event, _changed: Option<usize>) {
        self.stream.line(&event_line(event));
    }

    fn notice(&mut self, text: &str) {
        self.stream.line(&format!("rollcall: {text}"));
    }

    fn finish(&mut self, _progress: &DeployProgress) {
        for line in [self.ci.untrusted_end(), self.ci.section_end(SECTION)]
            .into_iter()
            .flatten()
        {
            self.stream.line(&line);
        }
    }
}
