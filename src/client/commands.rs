//! The client's subcommands: submit and follow a deploy, show one, cancel one, list them. Each
//! prints for people (or JSON with `-o json`) and returns the exit code of [`Outcome`].

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

use super::api::{ApiClient, ApiError, DeployFilter, DeploySummary, DeployView, Submitted};
use super::args::{
    CancelArgs, DeployArgs, DeploysArgs, OutputArgs, OutputFormat, ServerArgs, StatusArgs,
};
use super::ci::Ci;
use super::follow::{FollowError, FollowItem, Follower, Retry};
use super::outcome::Outcome;
use super::progress::DeployProgress;
use super::report::{FailureReport, headline, row_line, summary_markdown};
use super::values::ValueSources;
use super::view::live::LiveView;
use super::view::plain::PlainView;
use super::view::{Stream, View};
use crate::domain::chart::ChartSpec;
use crate::domain::deploy::{DeployRequest, DeployStatus};
use crate::domain::duration::format_duration;
use crate::domain::event::{Event, EventType};
use crate::domain::public_url::PublicUrl;

/// Events per page when a finished deploy's reports are read back.
const EVENT_PAGE: u32 = 1000;

/// `rollcall deploy`: submit, then follow to the verdict.
pub async fn deploy(args: DeployArgs) -> Outcome {
    let request = match deploy_request(&args) {
        Ok(request) => request,
        Err(message) => {
            eprintln!("rollcall: {message}");
            return Outcome::Usage;
        }
    };
    let session = match Session::open(&args.server, &args.output) {
        Ok(session) => session,
        Err(outcome) => return outcome,
    };
    if args.dry_run {
        return session.dry_run(&request).await;
    }
    let key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| format!("rollcall-cli-{}", Uuid::new_v4()));
    let submitted = session
        .retrying("submitting the deploy", || {
            session.api.submit(&request, Some(&key), false)
        })
        .await;
    let (accepted, replayed) = match submitted {
        Ok(Submitted::Accepted { accepted, replayed }) => (accepted, replayed),
        Ok(Submitted::DryRun(_)) => {
            return session.fail(
                "submitting the deploy",
                &ApiError::Unexpected("a dry run answer".into()),
            );
        }
        Err(error) => return session.fail("the deploy was not accepted", &error),
    };
    let stream = session.progress_stream();
    stream.line(&format!(
        "rollcall: deploy {} of {} to {} {}{}: {}",
        accepted.id,
        request.release,
        request.namespace,
        accepted.status.as_str(),
        if replayed {
            " (this Idempotency-Key made it before)"
        } else {
            ""
        },
        session.deploy_url(accepted.id),
    ));
    if args.no_follow {
        if session.output.output == OutputFormat::Json {
            return match session
                .retrying("reading the deploy", || session.api.deploy(accepted.id))
                .await
            {
                Ok(deploy) => {
                    print_json(&deploy.json);
                    Outcome::Succeeded
                }
                Err(error) => session.fail("reading the deploy", &error),
            };
        }
        return Outcome::Succeeded;
    }
    session
        .follow(accepted.id, &title(&request.release, &request.namespace))
        .await
}

/// `rollcall status`: the deploy as it stands, or followed to its end.
pub async fn status(args: StatusArgs) -> Outcome {
    let session = match Session::open(&args.server, &args.output) {
        Ok(session) => session,
        Err(outcome) => return outcome,
    };
    let deploy = match session
        .retrying("reading the deploy", || session.api.deploy(args.id))
        .await
    {
        Ok(deploy) => deploy,
        Err(error) => return session.fail("reading the deploy", &error),
    };
    let summary = &deploy.summary;
    if args.follow {
        return session
            .follow(args.id, &title(&summary.release, &summary.namespace))
            .await;
    }
    let reports = if FailureReport::of(summary, &[]).is_some() {
        match session.reports(args.id).await {
            Ok(reports) => reports,
            Err(error) => return session.fail("reading the deploy's events", &error),
        }
    } else {
        Vec::new()
    };
    session.conclude(&deploy, &reports, true)
}

/// `rollcall cancel`.
pub async fn cancel(args: CancelArgs) -> Outcome {
    let session = match Session::open(&args.server, &args.output) {
        Ok(session) => session,
        Err(outcome) => return outcome,
    };
    let reason = args
        .reason
        .clone()
        .unwrap_or_else(|| "cancelled with rollcall cancel".to_owned());
    // Not retried: a second cancel of a deploy that is already cancelling is refused.
    let deploy = match session.api.cancel(args.id, &reason).await {
        Ok(deploy) => deploy,
        Err(error) => return session.fail("the cancel was not accepted", &error),
    };
    if session.output.output == OutputFormat::Json {
        print_json(&deploy.json);
        return Outcome::Succeeded;
    }
    let next = match deploy.summary.status {
        DeployStatus::Cancelling => format!(
            " (its runner stops it; follow it to the end with rollcall status {} --follow)",
            args.id
        ),
        _ => String::new(),
    };
    Stream::Stdout.line(&format!(
        "deploy {} {}{next}",
        args.id,
        deploy.summary.status.as_str()
    ));
    Outcome::Succeeded
}

/// `rollcall deploys`: newest first.
pub async fn deploys(args: DeploysArgs) -> Outcome {
    let session = match Session::open(&args.server, &args.output) {
        Ok(session) => session,
        Err(outcome) => return outcome,
    };
    let filter = DeployFilter {
        release: args.release.as_deref(),
        namespace: args.namespace.as_deref(),
        cluster: args.cluster.as_deref(),
        status: args.status,
        labels: &args.labels,
    };
    let wanted = usize::from(args.limit);
    let mut deploys: Vec<DeployView> = Vec::new();
    let mut cursor: Option<String> = None;
    while deploys.len() < wanted {
        let page_size = (wanted - deploys.len()).min(200);
        let page = session
            .retrying("listing deploys", || {
                session.api.deploys(&filter, page_size, cursor.as_deref())
            })
            .await;
        let page = match page {
            Ok(page) => page,
            Err(error) => return session.fail("listing deploys", &error),
        };
        deploys.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if session.output.output == OutputFormat::Json {
        let items: Vec<&serde_json::Value> = deploys.iter().map(|deploy| &deploy.json).collect();
        print_json(&serde_json::json!(items));
        return Outcome::Succeeded;
    }
    for line in deploys_table(deploys.iter().map(|deploy| &deploy.summary)) {
        Stream::Stdout.line(&line);
    }
    Outcome::Succeeded
}

/// The request `rollcall deploy` sends; an error is the command line's fault.
fn deploy_request(args: &DeployArgs) -> Result<DeployRequest, String> {
    let values = ValueSources {
        files: &args.values,
        sets: &args.set,
        set_strings: &args.set_string,
    };
    let secret_values = ValueSources {
        files: &args.secret_values,
        ..ValueSources::default()
    };
    let chart = if args.chart.starts_with("oci://") {
        ChartSpec {
            oci: Some(args.chart.clone()),
            version: args.version.clone(),
            ..ChartSpec::default()
        }
    } else if let Some(repo) = &args.repo {
        ChartSpec {
            repo: Some(repo.clone()),
            name: Some(args.chart.clone()),
            version: args.version.clone(),
            ..ChartSpec::default()
        }
    } else {
        ChartSpec {
            path: Some(args.chart.clone()),
            version: args.version.clone(),
            ..ChartSpec::default()
        }
    };
    Ok(DeployRequest {
        release: args.release.clone(),
        namespace: args.namespace.clone(),
        create_namespace: args.create_namespace,
        cluster: args.cluster.clone(),
        chart,
        values: (!values.is_empty())
            .then(|| values.assemble())
            .transpose()
            .map_err(|error| error.to_string())?,
        secret_values: (!secret_values.is_empty())
            .then(|| secret_values.assemble())
            .transpose()
            .map_err(|error| format!("secret values: {error}"))?,
        timeout: args.timeout.clone(),
        rollback_on_failure: args.rollback_on_failure,
        queue: args.queue.unwrap_or_default(),
        tracking: None,
        notify: Vec::new(),
        labels: args.labels.iter().cloned().collect(),
    })
}

/// `web → default`.
fn title(release: &str, namespace: &str) -> String {
    format!("{release} → {namespace}")
}

fn print_json(json: &serde_json::Value) {
    Stream::Stdout.line(&serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string()));
}

/// What one command talks to and how it prints.
struct Session {
    api: ApiClient,
    server: PublicUrl,
    reconnect_budget: Duration,
    output: OutputArgs,
    ci: Ci,
}

impl Session {
    fn open(server: &ServerArgs, output: &OutputArgs) -> Result<Session, Outcome> {
        let api = ApiClient::new(&server.server.to_string(), &server.token).map_err(|error| {
            eprintln!("rollcall: {error}");
            Outcome::Usage
        })?;
        Ok(Session {
            api,
            server: server.server.clone(),
            reconnect_budget: server.reconnect_budget,
            output: output.clone(),
            ci: Ci::detect(),
        })
    }

    /// Progress and reports go to stdout, unless stdout carries JSON.
    fn progress_stream(&self) -> Stream {
        match self.output.output {
            OutputFormat::Text => Stream::Stdout,
            OutputFormat::Json => Stream::Stderr,
        }
    }

    fn deploy_url(&self, id: Uuid) -> String {
        self.server.join(&format!("/v1/deploys/{id}"))
    }

    /// Calls again while the server is out of reach or answers 5xx, within the reconnect budget.
    async fn retrying<T, F, Fut>(&self, what: &str, call: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut retry = Retry::new(self.reconnect_budget);
        loop {
            match call().await {
                Err(error) if error.is_transient() => {
                    let Some(wait) = retry.failed(None) else {
                        return Err(error);
                    };
                    eprintln!(
                        "rollcall: {what}: {error}; trying again in {}",
                        format_duration(wait)
                    );
                    tokio::time::sleep(wait).await;
                }
                result => return result,
            }
        }
    }

    /// Prints why a request failed (a rejection with its field errors) and returns the exit code.
    fn fail(&self, what: &str, error: &ApiError) -> Outcome {
        let outcome = match error {
            ApiError::Rejected(_) => Outcome::Rejected,
            ApiError::Unavailable { .. } | ApiError::Unreachable(_) | ApiError::Unexpected(_) => {
                Outcome::Unknown
            }
        };
        let mut lines = vec![format!("rollcall: {what}: {error}")];
        if let ApiError::Rejected(problem) = error {
            lines.extend(
                problem
                    .errors
                    .iter()
                    .map(|field| format!("  {}: {}", field.field, field.message)),
            );
            if let Some(blocking) = problem.blocking_deploy_id {
                lines.push(format!(
                    "  the release is busy with deploy {blocking}: {}",
                    self.deploy_url(blocking)
                ));
            }
            if let Some(request_id) = &problem.request_id {
                lines.push(format!("  (request id {request_id})"));
            }
        }
        for line in &lines {
            eprintln!("{line}");
        }
        if let Some(annotation) = self
            .ci
            .error(&format!("rollcall: {what}"), &lines.join("\n"))
        {
            self.progress_stream().line(&annotation);
        }
        outcome
    }

    /// Follows deploy `id` to its end with the view that suits the output, then concludes.
    async fn follow(&self, id: Uuid, title: &str) -> Outcome {
        let stream = self.progress_stream();
        let live = !self.output.plain && stream.is_terminal();
        let mut view: Box<dyn View + '_> = if live {
            Box::new(LiveView::start(stream, title))
        } else {
            Box::new(PlainView::start(
                stream,
                &self.ci,
                &format!("rollcall: {title}"),
            ))
        };
        let mut progress = DeployProgress::default();
        let mut follower = Follower::new(&self.api, id, 0, self.reconnect_budget);
        let ended = loop {
            let item = tokio::select! {
                _ = tokio::signal::ctrl_c() => break None,
                item = follower.next() => item,
            };
            match item {
                Ok(Some(FollowItem::Event(event))) => {
                    let changed = progress.apply(&event);
                    view.event(&progress, &event, changed);
                }
                Ok(Some(FollowItem::Reconnecting { error, retry_in })) => view.notice(&format!(
                    "connection lost ({error}); reconnecting in {}",
                    format_duration(retry_in)
                )),
                Ok(Some(FollowItem::Resumed { after })) => {
                    view.notice(&format!("reconnected; resuming after event {after}"));
                }
                Ok(None) => break Some(Ok(())),
                Err(error) => break Some(Err(error)),
            }
        };
        view.finish(&progress);
        match ended {
            None => {
                eprintln!(
                    "rollcall: stopped following; the deploy goes on. Follow it again with \
                     `rollcall status {id} --follow`, cancel it with `rollcall cancel {id}`"
                );
                return Outcome::Interrupted;
            }
            Some(Err(FollowError::Rejected(problem))) => {
                return self.fail("following the deploy", &ApiError::Rejected(problem));
            }
            Some(Err(error)) => {
                eprintln!("rollcall: following the deploy: {error}");
                if let Some(annotation) = self
                    .ci
                    .error("rollcall: could not tell", &error.to_string())
                {
                    stream.line(&annotation);
                }
                return Outcome::Unknown;
            }
            Some(Ok(())) => {}
        }
        match self
            .retrying("reading the deploy", || self.api.deploy(id))
            .await
        {
            Ok(deploy) => self.conclude(&deploy, &progress.reports, !live),
            Err(error) => self.fail("reading the finished deploy", &error),
        }
    }

    /// The `report` events of a deploy, read back page by page.
    async fn reports(&self, id: Uuid) -> Result<Vec<Event>, ApiError> {
        let mut reports = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .retrying("reading the deploy's events", || {
                    self.api.events_after(id, after, EVENT_PAGE)
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(reports);
            };
            after = last.seq;
            let full = page.len() == EVENT_PAGE as usize;
            reports.extend(
                page.into_iter()
                    .filter(|event| event.kind == EventType::Report),
            );
            if !full {
                return Ok(reports);
            }
        }
    }

    /// Prints how the deploy stands (its resources when `with_resources`), the failure report, the
    /// CI annotation and summary, and `-o json`'s JSON; the exit code follows its status.
    fn conclude(&self, deploy: &DeployView, reports: &[Event], with_resources: bool) -> Outcome {
        let summary = &deploy.summary;
        let stream = self.progress_stream();
        stream.line(&headline(summary));
        let rows = summary
            .resources
            .iter()
            .filter(|_| with_resources)
            .map(|row| format!("  {}", row_line(row)));
        let failure = FailureReport::of(summary, reports);
        let report = failure
            .iter()
            .flat_map(|failure| std::iter::once(String::new()).chain(failure.lines()));
        // Resource messages and the report quote the cluster (conditions, Events, log lines).
        let quoted: Vec<String> = rows.chain(report).collect();
        if !quoted.is_empty() {
            let lines = self
                .ci
                .untrusted_start()
                .into_iter()
                .chain(quoted)
                .chain(self.ci.untrusted_end());
            for line in lines {
                stream.line(&line);
            }
        }
        if let Some(failure) = &failure
            && summary.status == DeployStatus::Failed
            && let Some(annotation) = self.ci.error(
                &format!(
                    "rollcall: {} failed ({})",
                    summary.release, failure.verdict.reason
                ),
                &failure.verdict.message,
            )
        {
            stream.line(&annotation);
        }
        if summary.status.is_terminal() && self.ci.writes_summary() {
            let markdown =
                summary_markdown(summary, failure.as_ref(), &self.deploy_url(summary.id));
            if let Err(error) = self.ci.append_summary(&markdown) {
                eprintln!("rollcall: cannot write the job summary: {error}");
            }
        }
        if self.output.output == OutputFormat::Json {
            print_json(&deploy.json);
        }
        Outcome::of_status(summary.status)
    }

    /// `--dry-run`: what would be tracked.
    async fn dry_run(&self, request: &DeployRequest) -> Outcome {
        let answer = self
            .retrying("rendering the chart", || {
                self.api.submit(request, None, true)
            })
            .await;
        let planned = match answer {
            Ok(Submitted::DryRun(planned)) => planned,
            Ok(Submitted::Accepted { .. }) => {
                return self.fail(
                    "rendering the chart",
                    &ApiError::Unexpected("an accepted deploy".into()),
                );
            }
            Err(error) => return self.fail("the chart cannot be deployed", &error),
        };
        if self.output.output == OutputFormat::Json {
            print_json(&planned);
            return Outcome::Succeeded;
        }
        let resources = planned["resources"].as_array().cloned().unwrap_or_default();
        Stream::Stdout.line(&format!(
            "{} resources would be tracked (-o json shows their policies in full):",
            resources.len()
        ));
        for resource in &resources {
            let namespace = resource["namespace"]
                .as_str()
                .map_or_else(String::new, |namespace| format!(" in {namespace}"));
            Stream::Stdout.line(&format!(
                "  {}/{}{namespace}: {}",
                resource["kind"].as_str().unwrap_or_default(),
                resource["name"].as_str().unwrap_or_default(),
                policy_summary(&resource["policy"])
            ));
        }
        Outcome::Succeeded
    }
}

/// A tracking policy's plain settings in its annotations' words: `fail-mode
/// FailWholeDeployProcessImmediately, failures-allowed-per-replica 1, ...` (`-o json` has all).
fn policy_summary(policy: &serde_json::Value) -> String {
    let Some(fields) = policy.as_object() else {
        return policy.to_string();
    };
    fields
        .iter()
        .filter_map(|(name, value)| {
            let value = match value {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Number(number) => number.to_string(),
                serde_json::Value::Bool(flag) => flag.to_string(),
                _ => return None,
            };
            Some(format!("{} {value}", name.replace('_', "-")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The listing of `rollcall deploys`: aligned columns.
fn deploys_table<'a>(deploys: impl Iterator<Item = &'a DeploySummary>) -> Vec<String> {
    let mut rows = vec![[
        "ID".to_owned(),
        "RELEASE".to_owned(),
        "NAMESPACE".to_owned(),
        "CLUSTER".to_owned(),
        "STATUS".to_owned(),
        "REASON".to_owned(),
        "CREATED".to_owned(),
    ]];
    for deploy in deploys {
        rows.push([
            deploy.id.to_string(),
            deploy.release.clone(),
            deploy.namespace.clone(),
            deploy.cluster.clone(),
            deploy.status.as_str().to_owned(),
            deploy
                .verdict
                .as_ref()
                .map_or_else(|| "-".to_owned(), |verdict| verdict.reason.to_string()),
            deploy.created_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            row.iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        deploy: DeployArgs,
    }

    fn request(line: &str) -> serde_json::Value {
        let words = [
            "rollcall",
            "--server",
            "http://rollcall.test",
            "--token",
            "t",
        ]
        .into_iter()
        .chain(line.split_whitespace());
        let args = Command::try_parse_from(words)
            .expect("a valid command line")
            .deploy;
        serde_json::to_value(deploy_request(&args).expect("a request")).unwrap()
    }

    #[test]
    fn the_chart_flag_names_a_catalog_a_repository_or_an_oci_chart() {
        assert_eq!(
            request("web -n prod --chart web")["chart"],
            json!({"path": "web", "repo": null, "name": null, "oci": null, "version": null})
        );
        assert_eq!(
            request("web -n prod --chart oci://registry.test/charts/web --version 1.2.0")["chart"],
            json!({"path": null, "repo": null, "name": null, "oci": "oci://registry.test/charts/web", "version": "1.2.0"})
        );
        assert_eq!(
            request("web -n prod --repo https://charts.test --chart web --version 1.2.0")["chart"],
            json!({"path": null, "repo": "https://charts.test", "name": "web", "oci": null, "version": "1.2.0"})
        );
    }

    #[test]
    fn the_flags_become_the_requests_fields() {
        let sent = request(
            "web -n prod --chart web --cluster eu --create-namespace --timeout 5m \
             --rollback-on-failure --queue supersede --label ci.run=https://ci.test/1 \
             --set image.tag=v2",
        );
        assert_eq!(sent["cluster"], "eu");
        assert_eq!(sent["create_namespace"], true);
        assert_eq!(sent["timeout"], "5m");
        assert_eq!(sent["rollback_on_failure"], true);
        assert_eq!(sent["queue"], "supersede");
        assert_eq!(sent["labels"], json!({"ci.run": "https://ci.test/1"}));
        assert_eq!(sent["values"], json!({"image": {"tag": "v2"}}));
        assert_eq!(sent["secret_values"], json!(null));
        let plain = request("web -n prod --chart web");
        assert_eq!(plain["values"], json!(null), "no values: the chart's own");
        assert_eq!(plain["queue"], "fifo");
    }
}
