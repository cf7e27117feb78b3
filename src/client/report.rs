//! The end of a followed deploy as a developer needs it to act: the verdict's reason, the resource,
//! pod and container with Kubernetes' own words (exit code, termination reason), the resource's
//! Events and the last log lines of the failing (or previous) container instance, from the
//! `report` event; and the same as Markdown for a CI job's summary.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::api::{DeploySummary, ResourceRow};
use super::ci::{markdown_code_block, markdown_text};
use super::text::one_line;
use crate::domain::deploy::DeployStatus;
use crate::domain::duration::format_duration;
use crate::domain::event::{Event, ResourceRef};
use crate::domain::verdict::{Verdict, VerdictDetail};

/// The part of a `report` event's data the failure report reads.
#[derive(Debug, Default, Deserialize)]
struct ReportData {
    #[serde(default)]
    resources: Vec<ReportedResource>,
}

#[derive(Debug, Deserialize)]
struct ReportedResource {
    resource: ReportedKey,
    #[serde(default)]
    failure: Option<Failure>,
}

#[derive(Debug, Deserialize)]
struct ReportedKey {
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    name: String,
}

impl ReportedKey {
    fn is(&self, resource: &ResourceRef) -> bool {
        self.kind == resource.kind
            && self.name == resource.name
            && self.namespace.as_deref().unwrap_or_default() == resource.namespace
    }
}

/// A resource's failure with its evidence, as the tracker reported it.
#[derive(Debug, Clone, Deserialize)]
pub struct Failure {
    pub reason: String,
    pub message: String,
    #[serde(default)]
    pub detail: VerdictDetail,
    #[serde(default)]
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evidence {
    #[serde(default)]
    pub pod: Option<String>,
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub previous_instance: bool,
    #[serde(default)]
    pub events: Vec<KubeEvent>,
    #[serde(default)]
    pub log_lines: Vec<String>,
}

/// A Kubernetes Event as the report summarizes it.
#[derive(Debug, Clone, Deserialize)]
pub struct KubeEvent {
    pub involved_kind: String,
    pub involved_name: String,
    pub reason: String,
    pub message: String,
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ignored_because: Option<String>,
}

impl KubeEvent {
    fn line(&self) -> String {
        let at = self
            .at
            .map_or_else(String::new, |at| format!("{} ", at.format("%H:%M:%SZ")));
        let count = if self.count > 1 {
            format!(" (×{})", self.count)
        } else {
            String::new()
        };
        let ignored = self
            .ignored_because
            .as_ref()
            .map_or_else(String::new, |why| format!(" [not counted: {why}]"));
        one_line(&format!(
            "{at}{} {} {}/{}: {}{count}{ignored}",
            self.type_, self.reason, self.involved_kind, self.involved_name, self.message
        ))
        .into_owned()
    }
}

/// Why a deploy did not succeed, and the evidence.
#[derive(Debug, Clone)]
pub struct FailureReport {
    pub verdict: Verdict,
    /// The failed resource's failure from the `report` event, when tracking saw it fail.
    pub failure: Option<Failure>,
}

impl FailureReport {
    /// The report of a deploy that failed or was cancelled (`None` for any other).
    pub fn of(deploy: &DeploySummary, reports: &[Event]) -> Option<FailureReport> {
        if !matches!(
            deploy.status,
            DeployStatus::Failed | DeployStatus::Cancelled
        ) {
            return None;
        }
        let verdict = deploy.verdict.clone()?;
        let failure = failure_of(&verdict, reports);
        Some(FailureReport { verdict, failure })
    }

    /// The report as text lines (cluster text made safe).
    pub fn lines(&self) -> Vec<String> {
        let verdict = &self.verdict;
        let mut lines = vec![format!("Reason: {}", verdict.reason)];
        if let Some(resource) = &verdict.resource {
            lines.push(format!("Resource: {resource}"));
        }
        lines.push(format!("Message: {}", one_line(&verdict.message)));
        if let Some(detail) = describe_detail(&verdict.detail) {
            lines.push(format!("Detail: {}", one_line(&detail)));
        }
        if let Some(failure) = &self.failure {
            let evidence = &failure.evidence;
            if !evidence.events.is_empty() {
                lines.push(String::new());
                lines.push(format!("Events ({}):", evidence.events.len()));
                lines.extend(
                    evidence
                        .events
                        .iter()
                        .map(|event| format!("  {}", event.line())),
                );
            }
            if let Some(title) = self.logs_title() {
                lines.push(String::new());
                lines.push(format!("{title}:"));
                lines.extend(
                    evidence
                        .log_lines
                        .iter()
                        .map(|line| format!("  | {}", one_line(line))),
                );
            }
        }
        lines
    }

    /// "Last 12 log lines of container web (previous instance) in pod web-1".
    fn logs_title(&self) -> Option<String> {
        let evidence = &self.failure.as_ref()?.evidence;
        if evidence.log_lines.is_empty() {
            return None;
        }
        let container = evidence
            .container
            .as_deref()
            .or(self.verdict.detail.container.as_deref())
            .map_or_else(String::new, |container| {
                format!(" of container {container}")
            });
        let instance = if evidence.previous_instance {
            " (previous instance)"
        } else {
            ""
        };
        let pod = evidence
            .pod
            .as_deref()
            .or(self.verdict.detail.pod.as_deref())
            .map_or_else(String::new, |pod| format!(" in pod {pod}"));
        let count = evidence.log_lines.len();
        let lines = if count == 1 { "line" } else { "lines" };
        Some(format!(
            "Last {count} log {lines}{container}{instance}{pod}"
        ))
    }

    /// The report in Markdown, for a CI job's summary.
    fn markdown(&self) -> String {
        let verdict = &self.verdict;
        let mut markdown = String::new();
        if let Some(resource) = &verdict.resource {
            markdown.push_str(&format!("**{}**: ", markdown_text(&resource.to_string())));
        }
        markdown.push_str(&markdown_text(&verdict.message));
        markdown.push_str("\n\n");
        if let Some(detail) = describe_detail(&verdict.detail) {
            markdown.push_str(&format!("{}\n\n", markdown_text(&detail)));
        }
        if let Some(failure) = &self.failure {
            if !failure.evidence.events.is_empty() {
                let events: Vec<String> = failure
                    .evidence
                    .events
                    .iter()
                    .map(KubeEvent::line)
                    .collect();
                markdown.push_str("<details><summary>Events</summary>\n\n");
                markdown.push_str(&markdown_code_block(&events));
                markdown.push_str("\n</details>\n\n");
            }
            if let Some(title) = self.logs_title() {
                markdown.push_str(&format!(
                    "<details open><summary>{}</summary>\n\n",
                    markdown_text(&title)
                ));
                markdown.push_str(&markdown_code_block(&failure.evidence.log_lines));
                markdown.push_str("\n</details>\n\n");
            }
        }
        markdown
    }
}

/// The failure behind `verdict` in the `report` events: the one of its resource (the first report
/// has it; a rollback's comes later), else the first failure reported at all.
fn failure_of(verdict: &Verdict, reports: &[Event]) -> Option<Failure> {
    let reported: Vec<ReportedResource> = reports
        .iter()
        .filter_map(|event| serde_json::from_value::<ReportData>(event.data.clone()).ok())
        .flat_map(|report| report.resources)
        .filter(|resource| resource.failure.is_some())
        .collect();
    let of_resource = verdict.resource.as_ref().and_then(|wanted| {
        reported
            .iter()
            .find(|reported| reported.resource.is(wanted))
    });
    of_resource
        .or(reported.first())
        .and_then(|reported| reported.failure.clone())
}

/// "pod web-1, container web: exit code 1 (Error), 3 restarts".
pub fn describe_detail(detail: &VerdictDetail) -> Option<String> {
    let mut who = Vec::new();
    if let Some(pod) = &detail.pod {
        who.push(format!("pod {pod}"));
    }
    if let Some(container) = &detail.container {
        who.push(format!("container {container}"));
    }
    let mut what = Vec::new();
    if let Some(code) = detail.exit_code {
        let reason = detail
            .termination_reason
            .as_ref()
            .map_or_else(String::new, |reason| format!(" ({reason})"));
        what.push(format!("exit code {code}{reason}"));
    } else if let Some(reason) = &detail.termination_reason {
        what.push(format!("terminated: {reason}"));
    }
    if let Some(signal) = detail.signal {
        what.push(format!("signal {signal}"));
    }
    if let Some(restarts) = detail.restart_count {
        what.push(format!("{restarts} restarts"));
    }
    if let Some(original) = &detail.original_reason {
        what.push(format!("reported as {original}"));
    }
    match (who.is_empty(), what.is_empty()) {
        (true, true) => None,
        (false, true) => Some(who.join(", ")),
        (true, false) => Some(what.join(", ")),
        (false, false) => Some(format!("{}: {}", who.join(", "), what.join(", "))),
    }
}

/// `Deployment/web  failed  1/3 ready  message`.
pub fn row_line(row: &ResourceRow) -> String {
    let mut line = format!("{}/{}  {}", row.kind, row.name, row.state);
    for part in [&row.ready, &row.failures] {
        if !part.is_empty() {
            line.push_str(&format!("  {part}"));
        }
    }
    if !row.message.is_empty() {
        line.push_str(&format!("  {}", one_line(&row.message)));
    }
    line
}

/// `deploy 0190… of web to default succeeded in 12s (revision 3)`.
pub fn headline(deploy: &DeploySummary) -> String {
    let took = deploy
        .finished_at
        .map(|finished| finished - deploy.created_at)
        .and_then(|took| took.to_std().ok())
        .map_or_else(String::new, |took| {
            format!(
                " in {}",
                format_duration(Duration::from_secs(took.as_secs()))
            )
        });
    let revision = match (deploy.revision, deploy.rolled_back_to) {
        (Some(revision), Some(to)) => format!(" (revision {revision}, rolled back to {to})"),
        (Some(revision), None) => format!(" (revision {revision})"),
        _ => String::new(),
    };
    let mark = match deploy.status {
        DeployStatus::Succeeded => "✓ ",
        DeployStatus::Failed => "✗ ",
        _ => "",
    };
    let reason = reason_suffix(deploy);
    let phase = deploy
        .phase
        .filter(|_| !deploy.status.is_terminal())
        .map_or_else(String::new, |phase| format!(", {}", phase.as_str()));
    format!(
        "{mark}deploy {} of {} to {} {}{phase}{reason}{took}{revision}",
        deploy.id,
        deploy.release,
        deploy.namespace,
        deploy.status.as_str()
    )
}

/// `: CrashLoopBackOff` when the deploy has a verdict.
fn reason_suffix(deploy: &DeploySummary) -> String {
    deploy
        .verdict
        .as_ref()
        .map_or_else(String::new, |verdict| format!(": {}", verdict.reason))
}

/// A deploy's outcome in Markdown (`$GITHUB_STEP_SUMMARY`): a headline, its resources and, when
/// it did not succeed, the failure report.
pub fn summary_markdown(
    deploy: &DeploySummary,
    failure: Option<&FailureReport>,
    link: &str,
) -> String {
    let icon = match deploy.status {
        DeployStatus::Succeeded => "✅",
        DeployStatus::Failed => "❌",
        DeployStatus::Cancelled => "⚪",
        _ => "⏳",
    };
    let reason = reason_suffix(deploy);
    let revision = deploy
        .revision
        .map_or_else(String::new, |revision| format!(", revision {revision}"));
    let mut markdown = format!(
        "### {icon} rollcall: `{}` in `{}` {}{reason}\n\n[deploy {}]({link}){revision}\n\n",
        markdown_text(&deploy.release),
        markdown_text(&deploy.namespace),
        deploy.status.as_str(),
        deploy.id,
    );
    if !deploy.resources.is_empty() {
        markdown
            .push_str("| resource | state | ready | failures | message |\n|---|---|---|---|---|\n");
        for row in &deploy.resources {
            markdown.push_str(&format!(
                "| {}/{} | {} | {} | {} | {} |\n",
                markdown_text(&row.kind),
                markdown_text(&row.name),
                markdown_text(&row.state),
                markdown_text(&row.ready),
                markdown_text(&row.failures),
                markdown_text(&row.message),
            ));
        }
        markdown.push('\n');
    }
    if let Some(failure) = failure {
        markdown.push_str(&failure.markdown());
    }
    markdown
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::domain::event::{EventType, Level};
    use crate::domain::verdict::VerdictReason;

    fn crashloop_deploy() -> DeploySummary {
        serde_json::from_value(json!({
            "id": Uuid::nil(),
            "cluster": "default",
            "namespace": "default",
            "release": "crashloop",
            "status": "failed",
            "created_at": "2026-01-01T00:00:00Z",
            "verdict": {
                "reason": "CrashLoopBackOff",
                "resource": {"kind": "Deployment", "namespace": "default", "name": "crashloop"},
                "message": "back-off restarting failed container web (2/1 allowed)",
                "detail": {"pod": "crashloop-1", "container": "web", "exit_code": 1, "termination_reason": "Error", "restart_count": 2},
            },
            "resources": [
                {"kind": "Deployment", "namespace": "default", "name": "crashloop", "state": "failed", "ready": "0/1", "failures": "2/1 allowed", "message": "crash loop"},
                {"kind": "Service", "namespace": "default", "name": "crashloop", "state": "ready", "ready": "", "failures": "", "message": ""},
            ],
        }))
        .unwrap()
    }

    fn report(resources: serde_json::Value) -> Event {
        Event {
            deploy_id: Uuid::nil(),
            seq: 9,
            kind: EventType::Report,
            at: Utc::now(),
            level: Level::Error,
            resource: None,
            message: "failed".into(),
            data: json!({"outcome": {"result": "failed"}, "resources": resources}),
        }
    }

    fn failed(name: &str, log: &str) -> serde_json::Value {
        json!({
            "resource": {"api_version": "apps/v1", "kind": "Deployment", "namespace": "default", "name": name},
            "status": {"state": "failed", "message": "", "incidents": 2},
            "failure": {
                "kind": "allowance_exceeded",
                "reason": "CrashLoopBackOff",
                "message": "crashed",
                "evidence": {
                    "pod": format!("{name}-1"),
                    "container": "web",
                    "previous_instance": true,
                    "events": [{"involved_kind": "Pod", "involved_name": format!("{name}-1"), "reason": "BackOff", "message": "Back-off restarting failed container\n::error::x", "type": "Warning", "count": 3, "at": "2026-01-01T10:00:01Z"}],
                    "log_lines": [log],
                },
            },
            "incidents": [],
        })
    }

    #[test]
    fn the_report_shows_the_failed_resources_evidence() {
        let reports = [report(json!([
            failed("other", "not this one"),
            failed("crashloop", "panic: no config\u{1b}[31m")
        ]))];
        let report = FailureReport::of(&crashloop_deploy(), &reports).unwrap();
        assert_eq!(report.verdict.reason, VerdictReason::CrashLoopBackOff);
        let lines = report.lines();
        assert_eq!(
            lines,
            vec![
                "Reason: CrashLoopBackOff",
                "Resource: Deployment default/crashloop",
                "Message: back-off restarting failed container web (2/1 allowed)",
                "Detail: pod crashloop-1, container web: exit code 1 (Error), 2 restarts",
                "",
                "Events (1):",
                "  10:00:01Z Warning BackOff Pod/crashloop-1: Back-off restarting failed container\\n::error::x (×3)",
                "",
                "Last 1 log line of container web (previous instance) in pod crashloop-1:",
                "  | panic: no config\\u{1b}[31m",
            ]
        );
        let markdown = summary_markdown(
            &crashloop_deploy(),
            Some(&report),
            "http://rollcall/v1/deploys/x",
        );
        assert!(
            markdown.starts_with(
                "### ❌ rollcall: `crashloop` in `default` failed: CrashLoopBackOff\n"
            ),
            "{markdown}"
        );
        assert!(
            markdown.contains("| Deployment/crashloop | failed | 0/1 | 2/1 allowed | crash loop |"),
            "{markdown}"
        );
        assert!(
            markdown.contains("```text\npanic: no config\\u{1b}[31m\n```"),
            "{markdown}"
        );
    }

    #[test]
    fn a_succeeded_deploy_has_no_failure_report() {
        let mut deploy = crashloop_deploy();
        deploy.status = DeployStatus::Succeeded;
        deploy.verdict = None;
        assert!(FailureReport::of(&deploy, &[]).is_none());
    }
}
