//! The bodies notifications carry: `json` (Standard Webhooks' `{type, timestamp, data}` with the
//! stored event, the deploy's summary, the failure's evidence and links) and `slack` (an
//! incoming-webhook message whose `text` says it all for clients without Block Kit, such as
//! Mattermost and Rocket.Chat, plus `blocks` for Slack).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::chart::ChartSource;
use crate::domain::deploy::{DeployStatus, Phase};
use crate::domain::event::{Event, EventType, Level, ResourceRef};
use crate::domain::notify::NotifyFormat;
use crate::domain::public_url::PublicUrl;
use crate::domain::verdict::{Verdict, VerdictReason};
use crate::store::deploys::Deploy;

/// Log lines a Slack message shows (the JSON body carries all the report has).
const SLACK_LOG_LINES: usize = 15;
/// Block Kit: a section's text holds at most 3000 characters, a field 2000, a header 150.
const SECTION_LIMIT: usize = 3000;
const FIELD_LIMIT: usize = 2000;
const HEADER_LIMIT: usize = 150;

/// What a notification tells about.
pub struct Message<'a> {
    pub event: &'a Event,
    pub deploy: &'a Deploy,
    /// The failing resource, from the `report` event before a failure.
    pub failure: Option<FailureEvidence>,
    pub links: Links,
}

/// Absolute when the server's public URL is configured, paths otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct Links {
    /// The deploy's page in `/ui`, for people.
    pub page: String,
    pub deploy: String,
    pub events: String,
    pub notifications: String,
}

impl Links {
    pub fn of(deploy_id: Uuid, public_url: Option<&PublicUrl>) -> Self {
        let path = format!("/v1/deploys/{deploy_id}");
        let absolute = |path: String| match public_url {
            Some(base) => base.join(&path),
            None => path,
        };
        Links {
            page: absolute(format!("/ui/deploys/{deploy_id}")),
            deploy: absolute(path.clone()),
            events: absolute(format!("{path}/events")),
            notifications: absolute(format!("{path}/notifications")),
        }
    }

    /// The page a person in a chat client can open: only an absolute link.
    fn openable(&self) -> Option<&str> {
        self.page.starts_with("http").then_some(self.page.as_str())
    }
}

/// The failing resource of a deploy's report, with its last log lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureEvidence {
    pub resource: ResourceRef,
    pub reason: VerdictReason,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The container's last lines (of its previous instance after a crash).
    pub log_lines: Vec<String>,
}

/// The parts of a `report` event's data (the tracker's report) that name a failure.
#[derive(Deserialize)]
struct ReportData {
    #[serde(default)]
    resources: Vec<ReportedResource>,
}

#[derive(Deserialize)]
struct ReportedResource {
    resource: ReportedKey,
    failure: Option<ReportedFailure>,
}

#[derive(Deserialize)]
struct ReportedKey {
    kind: String,
    #[serde(default)]
    namespace: Option<String>,
    name: String,
}

#[derive(Deserialize)]
struct ReportedFailure {
    reason: VerdictReason,
    message: String,
    #[serde(default)]
    evidence: ReportedEvidence,
}

#[derive(Default, Deserialize)]
struct ReportedEvidence {
    pod: Option<String>,
    container: Option<String>,
    #[serde(default)]
    log_lines: Vec<String>,
}

impl FailureEvidence {
    /// The failure of `report` about the verdict's resource, else its first failure.
    pub fn from_report(report: &Event, verdict: Option<&Verdict>) -> Option<Self> {
        let data: ReportData = serde_json::from_value(report.data.clone()).ok()?;
        let failed: Vec<(ResourceRef, ReportedFailure)> = data
            .resources
            .into_iter()
            .filter_map(|reported| {
                let key = reported.resource;
                let resource = ResourceRef {
                    kind: key.kind,
                    namespace: key.namespace.unwrap_or_default(),
                    name: key.name,
                };
                Some((resource, reported.failure?))
            })
            .collect();
        let wanted = verdict.and_then(|verdict| verdict.resource.as_ref());
        let index = failed
            .iter()
            .position(|(resource, _)| {
                wanted.is_some_and(|w| w.kind == resource.kind && w.name == resource.name)
            })
            .unwrap_or(0);
        let (resource, failure) = failed.into_iter().nth(index)?;
        Some(FailureEvidence {
            resource,
            reason: failure.reason,
            message: failure.message,
            pod: failure.evidence.pod,
            container: failure.evidence.container,
            log_lines: failure.evidence.log_lines,
        })
    }
}

/// The deploy as a notification summarizes it.
#[derive(Serialize)]
struct DeploySummary<'a> {
    id: Uuid,
    cluster: &'a str,
    namespace: &'a str,
    release: &'a str,
    chart: &'a ChartSource,
    status: DeployStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<Phase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rolled_back_to: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<&'a Verdict>,
    requested_by: &'a str,
    labels: &'a BTreeMap<String, String>,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<DateTime<Utc>>,
}

impl<'a> From<&'a Deploy> for DeploySummary<'a> {
    fn from(deploy: &'a Deploy) -> Self {
        DeploySummary {
            id: deploy.id,
            cluster: &deploy.cluster,
            namespace: &deploy.namespace,
            release: &deploy.release,
            chart: &deploy.chart,
            status: deploy.status,
            phase: deploy.phase,
            revision: deploy.revision,
            rolled_back_to: deploy.rolled_back_to,
            verdict: deploy.verdict.as_ref(),
            requested_by: &deploy.requested_by,
            labels: &deploy.labels,
            created_at: deploy.created_at,
            started_at: deploy.started_at,
            finished_at: deploy.finished_at,
        }
    }
}

/// The body of a notification in `format`.
pub fn render(format: NotifyFormat, message: &Message<'_>) -> String {
    let body = match format {
        NotifyFormat::Json => json_body(message),
        NotifyFormat::Slack => slack_body(message),
    };
    body.to_string()
}

fn json_body(message: &Message<'_>) -> Value {
    let mut data = json!({
        "event": message.event,
        "deploy": DeploySummary::from(message.deploy),
        "links": message.links,
    });
    if let Some(failure) = &message.failure {
        data["failure"] = json!(failure);
    }
    json!({
        "type": message.event.kind.as_str(),
        "timestamp": message.event.at,
        "data": data,
    })
}

/// The state an event announces, with its emoji.
fn state_of(event: &Event) -> (&'static str, String) {
    let named = |emoji, word: &str| (emoji, word.to_owned());
    match event.kind {
        EventType::DeployQueued => named(":hourglass_flowing_sand:", "queued"),
        EventType::DeployStarted => named(":arrow_forward:", "started"),
        EventType::DeployCancelling => named(":warning:", "cancelling"),
        EventType::DeploySucceeded => named(":white_check_mark:", "succeeded"),
        EventType::DeployFailed => named(":x:", "failed"),
        EventType::DeployCancelled => named(":no_entry_sign:", "cancelled"),
        EventType::DeployRecovered => named(":arrows_counterclockwise:", "taken over"),
        EventType::RollbackStarted => named(":leftwards_arrow_with_hook:", "rolling back"),
        EventType::RollbackSucceeded => named(":leftwards_arrow_with_hook:", "rolled back"),
        EventType::RollbackFailed => named(":x:", "rollback failed"),
        other => {
            let emoji = match event.level {
                Level::Info => ":information_source:",
                Level::Warning => ":warning:",
                Level::Error => ":x:",
            };
            (emoji, other.as_str().to_owned())
        }
    }
}

fn chart_label(chart: &ChartSource) -> String {
    match chart {
        ChartSource::Path { path } => format!("{path} (catalog)"),
        ChartSource::Repo { name, version, .. } => format!("{name} {version}"),
        ChartSource::Oci { oci, version } => {
            let name = oci.rsplit('/').next().unwrap_or(oci);
            format!("{name} {version}")
        }
    }
}

/// Slack's mrkdwn control characters, escaped (api.slack.com/reference/surfaces/formatting).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `limit` characters, cut with an ellipsis.
fn clip(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(limit.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

/// The last log lines as a code block, its start dropped to fit `limit`.
fn log_block(lines: &[String], limit: usize) -> String {
    let shown = &lines[lines.len().saturating_sub(SLACK_LOG_LINES)..];
    let mut text = escape(&shown.join("\n").replace("```", "'''"));
    let budget = limit.saturating_sub(8);
    let excess = text.chars().count().saturating_sub(budget);
    if excess > 0 {
        text = format!("…{}", text.chars().skip(excess + 1).collect::<String>());
    }
    format!("```\n{text}\n```")
}

fn slack_body(message: &Message<'_>) -> Value {
    let Message {
        event,
        deploy,
        failure,
        links,
    } = message;
    let (emoji, state) = state_of(event);
    let release = escape(&deploy.release);
    let namespace = escape(&deploy.namespace);
    let chart = escape(&chart_label(&deploy.chart));
    let asked_by = escape(&deploy.requested_by);
    let headline = format!("{emoji} *{release}* {state} in *{namespace}*");

    let verdict = deploy
        .verdict
        .as_ref()
        .filter(|_| event.kind != EventType::DeploySucceeded);
    let mut lines = vec![headline.clone()];
    let mut details = format!("chart {chart}, requested by {asked_by}");
    if let Some(revision) = deploy.revision {
        details.push_str(&format!(", revision {revision}"));
    }
    if deploy.cluster != "default" {
        details.push_str(&format!(", cluster {}", escape(&deploy.cluster)));
    }
    lines.push(details);
    let reason = match verdict {
        Some(verdict) => Some(format!(
            "*{}*: {}",
            verdict.reason,
            escape(&verdict.message)
        )),
        // A success's message says only that; other events without a verdict say what happened.
        None if !event.message.is_empty() && event.kind != EventType::DeploySucceeded => {
            Some(escape(&event.message))
        }
        None => None,
    };
    lines.extend(reason.clone());
    let failing = failure.as_ref().map(|failure| {
        let mut who = format!("Failing: {}", escape(&failure.resource.to_string()));
        if let Some(pod) = &failure.pod {
            who.push_str(&format!(", pod {}", escape(pod)));
        }
        if let Some(container) = &failure.container {
            who.push_str(&format!(", container {}", escape(container)));
        }
        (
            who,
            (!failure.log_lines.is_empty())
                .then(|| log_block(&failure.log_lines, SECTION_LIMIT - 200)),
        )
    });
    if let Some((who, logs)) = &failing {
        lines.push(who.clone());
        lines.extend(logs.clone());
    }
    if let Some(link) = links.openable() {
        lines.push(format!("<{link}|Deploy {}>", deploy.id));
    }

    let field = |title: &str, value: &str| json!({"type": "mrkdwn", "text": clip(&format!("*{title}*\n{value}"), FIELD_LIMIT)});
    let mut fields = vec![
        field("Release", &release),
        field("Namespace", &namespace),
        field("Chart", &chart),
        field("Requested by", &asked_by),
        field("State", &format!("{emoji} {state}")),
    ];
    if deploy.cluster != "default" {
        fields.push(field("Cluster", &escape(&deploy.cluster)));
    }
    let header_text = format!("{} {state} in {}", deploy.release, deploy.namespace);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&header_text, HEADER_LIMIT), "emoji": true}}),
        json!({"type": "section", "fields": fields}),
    ];
    let section = |text: &str| json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}});
    if let Some(reason) = &reason {
        blocks.push(section(reason));
    }
    if let Some((who, logs)) = &failing {
        blocks.push(section(&match logs {
            Some(logs) => format!("{who}\n{logs}"),
            None => who.clone(),
        }));
    }
    if let Some(link) = links.openable() {
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open deploy"}, "url": link}
        ]}));
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": format!("{} · deploy {} · {}", event.kind.as_str(), deploy.id, event.at.format("%Y-%m-%d %H:%M:%S UTC"))}
    ]}));
    json!({"text": lines.join("\n"), "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::deploy::QueueMode;
    use crate::domain::verdict::VerdictDetail;
    use crate::store::deploys::DeploySummary;

    fn deploy(status: DeployStatus, verdict: Option<Verdict>) -> Deploy {
        let now = Utc::now();
        let summary = DeploySummary {
            id: Uuid::nil(),
            cluster: "default".into(),
            namespace: "prod".into(),
            create_namespace: false,
            release: "web".into(),
            chart: ChartSource::Repo {
                repo: "https://charts.example.com".into(),
                name: "web".into(),
                version: "1.4.2".into(),
            },
            has_secret_values: false,
            secret_values_digest: None,
            timeout_seconds: 600,
            rollback_on_failure: false,
            queue: QueueMode::Fifo,
            notify: Vec::new(),
            labels: BTreeMap::new(),
            requested_by: "ci <bot>".into(),
            status,
            phase: None,
            revision: Some(3),
            rolled_back_to: None,
            rollback_target: None,
            verdict,
            cancel_reason: None,
            cancelled_by: None,
            lease_owner: None,
            lease_until: None,
            last_event_seq: 9,
            created_at: now,
            started_at: Some(now),
            cancel_requested_at: None,
            finished_at: Some(now),
            updated_at: now,
        };
        Deploy {
            summary,
            values: Default::default(),
            tracking: Default::default(),
        }
    }

    fn event(kind: EventType, message: &str) -> Event {
        Event {
            deploy_id: Uuid::nil(),
            seq: 9,
            kind,
            at: Utc::now(),
            level: Level::Error,
            resource: None,
            message: message.into(),
            data: json!({}),
        }
    }

    fn crash_verdict() -> Verdict {
        Verdict {
            reason: VerdictReason::CrashLoopBackOff,
            resource: Some(ResourceRef {
                kind: "Deployment".into(),
                namespace: "prod".into(),
                name: "web".into(),
            }),
            message: "container app exited with code 1 <twice>".into(),
            detail: VerdictDetail::default(),
        }
    }

    fn report() -> Event {
        Event {
            kind: EventType::Report,
            data: json!({"outcome": {}, "resources": [
                {"resource": {"api_version": "v1", "kind": "Service", "namespace": "prod", "name": "web"},
                 "status": {}, "incidents": []},
                {"resource": {"api_version": "apps/v1", "kind": "Deployment", "namespace": "prod", "name": "web"},
                 "status": {}, "incidents": [],
                 "failure": {"kind": "incident", "reason": "CrashLoopBackOff", "message": "crashed",
                             "evidence": {"pod": "web-7d9-abc", "container": "app", "previous_instance": true,
                                          "events": [], "log_lines": ["starting", "panic: no database"]}}}
            ]}),
            ..event(EventType::Report, "Deployment prod/web failed")
        }
    }

    #[test]
    fn the_failure_is_read_from_the_report() {
        let failure = FailureEvidence::from_report(&report(), Some(&crash_verdict())).unwrap();
        assert_eq!(failure.resource.to_string(), "Deployment prod/web");
        assert_eq!(failure.pod.as_deref(), Some("web-7d9-abc"));
        assert_eq!(failure.log_lines, ["starting", "panic: no database"]);
        let empty = Event {
            data: json!({"resources": []}),
            ..report()
        };
        assert_eq!(FailureEvidence::from_report(&empty, None), None);
    }

    #[test]
    fn json_carries_the_event_the_deploy_the_failure_and_links() {
        let deploy = deploy(DeployStatus::Failed, Some(crash_verdict()));
        let event = event(EventType::DeployFailed, "container app exited");
        let base = PublicUrl::parse("https://rollcall.example.com").unwrap();
        let message = Message {
            event: &event,
            deploy: &deploy,
            failure: FailureEvidence::from_report(&report(), deploy.verdict.as_ref()),
            links: Links::of(deploy.id, Some(&base)),
        };
        let body: Value = serde_json::from_str(&render(NotifyFormat::Json, &message)).unwrap();
        assert_eq!(body["type"], "deploy.failed");
        assert_eq!(body["data"]["event"]["seq"], 9);
        assert_eq!(
            body["data"]["deploy"]["verdict"]["reason"],
            "CrashLoopBackOff"
        );
        assert_eq!(body["data"]["deploy"]["chart"]["version"], "1.4.2");
        assert_eq!(
            body["data"]["failure"]["log_lines"][1],
            "panic: no database"
        );
        assert_eq!(
            body["data"]["links"]["deploy"],
            format!("https://rollcall.example.com/v1/deploys/{}", deploy.id)
        );
        assert_eq!(
            body["data"]["links"]["page"],
            format!("https://rollcall.example.com/ui/deploys/{}", deploy.id)
        );
    }

    #[test]
    fn slack_text_says_it_all_and_blocks_hold_the_fields() {
        let deploy = deploy(DeployStatus::Failed, Some(crash_verdict()));
        let event = event(EventType::DeployFailed, "container app exited");
        let message = Message {
            event: &event,
            deploy: &deploy,
            failure: FailureEvidence::from_report(&report(), deploy.verdict.as_ref()),
            links: Links::of(
                deploy.id,
                PublicUrl::parse("https://rc.example").ok().as_ref(),
            ),
        };
        let body: Value = serde_json::from_str(&render(NotifyFormat::Slack, &message)).unwrap();
        let text = body["text"].as_str().unwrap();
        for expected in [
            ":x: *web* failed in *prod*",
            "chart web 1.4.2, requested by ci &lt;bot&gt;, revision 3",
            "*CrashLoopBackOff*: container app exited with code 1 &lt;twice&gt;",
            "Failing: Deployment prod/web, pod web-7d9-abc, container app",
            "panic: no database",
            "<https://rc.example/ui/deploys/00000000-0000-0000-0000-000000000000|Deploy",
        ] {
            assert!(text.contains(expected), "{expected:?} in {text}");
        }
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        let fields: Vec<&str> = blocks[1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|field| field["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "*Release*\nweb",
                "*Namespace*\nprod",
                "*Chart*\nweb 1.4.2",
                "*Requested by*\nci &lt;bot&gt;",
                "*State*\n:x: failed"
            ]
        );
        assert!(blocks.iter().any(|block| block["type"] == "actions"));
    }

    #[test]
    fn long_logs_are_cut_to_fit_a_section() {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("{i} {}", "x".repeat(400)))
            .collect();
        let block = log_block(&lines, 2800);
        assert!(block.chars().count() <= 2800, "{}", block.len());
        assert!(block.contains("99 xxx"));
        assert!(!block.contains("\n80 "));
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
