//! The terminal view: a header with the phase, one line per resource redrawn in place as its
//! readiness changes (`indicatif`), and the events worth reading (phases, helm's output, warnings)
//! printed above them.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::super::progress::{DeployProgress, ResourceProgress, ResourceState};
use super::super::text::one_line;
use super::{Stream, View, event_line};
use crate::domain::event::{Event, EventType, Level};

const TICK: Duration = Duration::from_millis(120);
const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "];

pub struct LiveView {
    multi: MultiProgress,
    header: ProgressBar,
    /// One per entry of the progress's resources, in the same order.
    lines: Vec<ProgressBar>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the view's templates are valid")
        .tick_strings(SPINNER)
}

impl LiveView {
    /// Starts drawing on `stream` (a terminal) under `title` (`web → default`).
    pub fn start(stream: Stream, title: &str) -> Self {
        let target = match stream {
            Stream::Stdout => ProgressDrawTarget::stdout(),
            Stream::Stderr => ProgressDrawTarget::stderr(),
        };
        let multi = MultiProgress::with_draw_target(target);
        let header = multi.add(
            ProgressBar::new_spinner()
                .with_style(style(
                    "{spinner:.cyan} {prefix:.bold} {wide_msg} {elapsed:.dim}",
                ))
                .with_prefix(title.to_owned())
                .with_message("submitted"),
        );
        header.enable_steady_tick(TICK);
        LiveView {
            multi,
            header,
            lines: Vec::new(),
        }
    }

    fn draw_resource(&self, line: &ProgressBar, resource: &ResourceProgress, width: usize) {
        let label = format!("{:<width$}", resource.label());
        let (template, prefix) = match resource.state {
            ResourceState::Ready => ("  {prefix:.green} {wide_msg}", format!("✓ {label}")),
            ResourceState::Failed => ("  {prefix:.red.bold} {wide_msg}", format!("✗ {label}")),
            ResourceState::Pending | ResourceState::Progressing => {
                ("  {spinner:.cyan} {prefix:.bold} {wide_msg}", label)
            }
        };
        line.set_style(style(template));
        line.set_prefix(prefix);
        line.set_message(resource_message(resource));
        if resource.state.is_settled() {
            line.disable_steady_tick();
            line.tick();
        } else {
            line.enable_steady_tick(TICK);
        }
    }

    fn redraw_all(&self, progress: &DeployProgress) {
        let width = label_width(progress);
        for (line, resource) in self.lines.iter().zip(&progress.resources) {
            self.draw_resource(line, resource, width);
        }
    }
}

fn label_width(progress: &DeployProgress) -> usize {
    progress
        .resources
        .iter()
        .map(|resource| resource.label().chars().count())
        .max()
        .unwrap_or(0)
}

/// `2/3 ready  failures 1/3 allowed  Waiting for deployment "web" rollout to finish ...`.
fn resource_message(resource: &ResourceProgress) -> String {
    let mut parts = Vec::new();
    match &resource.ready {
        Some(ready) => parts.push(format!("{ready} ready")),
        None => parts.push(
            match resource.state {
                ResourceState::Pending => "pending",
                ResourceState::Progressing => "progressing",
                ResourceState::Ready => "ready",
                ResourceState::Failed => "failed",
            }
            .to_owned(),
        ),
    }
    if let Some(failures) = resource
        .failures
        .as_ref()
        .filter(|failures| !failures.starts_with('0'))
    {
        parts.push(format!("failures {failures}"));
    }
    if !resource.message.is_empty() {
        parts.push(one_line(&resource.message).into_owned());
    }
    parts.join("  ")
}

/// Whether an event is printed above the resource lines (the lines show the rest).
fn worth_a_line(event: &Event) -> bool {
    event.level != Level::Info
        || matches!(
            event.kind,
            EventType::Phase
                | EventType::HelmOutput
                | EventType::DeployQueued
                | EventType::DeployStarted
                | EventType::DeployCancelling
                | EventType::DeployRecovered
                | EventType::RollbackStarted
                | EventType::RollbackSucceeded
        )
}

impl View for LiveView {
    fn event(&mut self, progress: &DeployProgress, event: &Event, changed: Option<usize>) {
        if worth_a_line(event) {
            let _hidden = self.multi.println(event_line(event));
        }
        let state = match event.kind {
            EventType::DeployQueued => Some("queued".to_owned()),
            EventType::DeployStarted => Some("started".to_owned()),
            EventType::DeployCancelling => Some("cancelling".to_owned()),
            EventType::Phase => progress.phase.as_ref().map(|phase| phase.replace('_', " ")),
            _ => None,
        };
        if let Some(state) = state {
            self.header.set_message(state);
        }
        let Some(index) = changed else { return };
        if index == self.lines.len() {
            let line = self.multi.add(ProgressBar::new_spinner());
            self.lines.push(line);
            // A longer label widens the column of every line.
            self.redraw_all(progress);
        } else if let (Some(line), Some(resource)) =
            (self.lines.get(index), progress.resources.get(index))
        {
            self.draw_resource(line, resource, label_width(progress));
        }
    }

    fn notice(&mut self, text: &str) {
        let _hidden = self.multi.println(format!("rollcall: {text}"));
    }

    fn finish(&mut self, progress: &DeployProgress) {
        let outcome = match progress.terminal {
            Some(EventType::DeploySucceeded) => "succeeded",
            Some(EventType::DeployFailed) => "failed",
            Some(EventType::DeployCancelled) => "cancelled",
            _ => "no longer followed",
        };
        self.header
            .set_style(style("{prefix:.bold} {wide_msg} {elapsed:.dim}"));
        self.header.finish_with_message(outcome);
        self.redraw_all(progress);
        for line in &self.lines {
            line.finish();
        }
    }
}
