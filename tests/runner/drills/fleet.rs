//! Many deploys of a drill at once: planned from a seed (which releases, which crash), submitted
//! with a client following each one's stream, and checked at the end against the verdict each
//! must reach.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{
    Env, Followed, assert_nothing_unfinished, assert_stream_complete, at, follow, has_event,
    migrating_web, web,
};
use crate::common::serve::ServeProcess;

/// The deploys of a drill's size, from `DRILL_FULL` (set by `scripts/drills`): the suite runs the
/// small one.
pub fn size(small: usize, full: usize) -> usize {
    if std::env::var_os("DRILL_FULL").is_some() {
        full
    } else {
        small
    }
}

/// A drill's seed: `DRILL_SEED` when set, else a random one; printed so that a run can be repeated.
pub fn seed(drill: &str) -> u64 {
    let seed = std::env::var("DRILL_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    println!("{drill}: seed {seed} (DRILL_SEED={seed} repeats this run)");
    seed
}

/// One deploy of a drill and the verdict it must reach.
#[derive(Clone)]
pub struct Planned {
    pub name: String,
    pub release: String,
    pub body: Value,
    /// A crash loop (verdict `CrashLoopBackOff`); otherwise it must succeed.
    pub crash: bool,
}

/// `count` deploys over `releases` releases named `<prefix>-<n>`, queued behind each other per
/// release: one release in four behind a migration Job that helm waits for (helm runs long enough
/// to be caught with the release `pending-*`), about one deploy in five a crash loop (at least
/// one), half of those rolled back.
pub fn plan(rng: &mut StdRng, prefix: &str, count: usize, releases: usize) -> Vec<Planned> {
    let mut crashes: Vec<bool> = (0..count).map(|_| rng.random_ratio(1, 5)).collect();
    if !crashes.contains(&true) {
        crashes[rng.random_range(0..count)] = true;
    }
    crashes
        .into_iter()
        .enumerate()
        .map(|(index, crash)| {
            let release_index = index % releases;
            let release = format!("{prefix}-{release_index}");
            let behavior = if crash {
                "crashAfter=1s;exitCode=1".to_owned()
            } else {
                format!("readyAfter={}ms", rng.random_range(0..3000))
            };
            let mut body = if release_index.is_multiple_of(4) {
                migrating_web(&release, &behavior)
            } else {
                web(&release, &behavior)
            };
            if crash && rng.random_bool(0.5) {
                body["rollback_on_failure"] = json!(true);
            }
            Planned {
                name: format!("{release} #{index}"),
                release,
                body,
                crash,
            }
        })
        .collect()
}

pub struct Submitted {
    pub planned: Planned,
    pub id: Uuid,
    follower: JoinHandle<Followed>,
}

/// Submits every deploy through `server`, each followed over SSE at whichever address `addresses`
/// holds.
pub async fn submit(
    env: &Env,
    server: &ServeProcess,
    addresses: &watch::Receiver<String>,
    plan: &[Planned],
) -> Vec<Submitted> {
    let mut submitted = Vec::new();
    for planned in plan {
        let id = env.submit(server, &planned.body).await;
        let follower = tokio::spawn(follow(
            env.client.clone(),
            addresses.clone(),
            env.token.clone(),
            id,
        ));
        submitted.push(Submitted {
            planned: planned.clone(),
            id,
            follower,
        });
    }
    submitted
}

/// What the deploys of a drill ended with.
#[derive(Debug, Default)]
pub struct Ending {
    /// `(name, status, verdict reason)` in plan order.
    pub verdicts: Vec<(String, String, Option<String>)>,
    /// When each event of every deploy was emitted.
    pub emitted_at: Vec<DateTime<Utc>>,
    pub reconnects: usize,
    /// Deploys taken over after their process stopped renewing the lease.
    pub recovered: usize,
    /// Errors of rollcall's own Kubernetes API calls that tracking retried (from the reports).
    pub api_errors: u64,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events, {} stream reconnects, {} deploys taken over, {} API errors retried; \
             verdicts {:?}",
            self.emitted_at.len(),
            self.reconnects,
            self.recovered,
            self.api_errors,
            self.verdicts
        )
    }
}

/// Waits for every deploy to end and checks it: the verdict it must reach, its stream complete
/// (each event once, in order, through `end`, however often the follower reconnected), and no
/// release left `pending-*` by helm.
pub async fn assert_true_verdicts(
    env: &Env,
    server: &ServeProcess,
    submitted: Vec<Submitted>,
) -> Ending {
    let mut ending = Ending::default();
    let mut releases = Vec::new();
    for Submitted {
        planned,
        id,
        follower,
    } in submitted
    {
        let name = &planned.name;
        let deploy = env.wait_for_end(server, id).await;
        let events = env.events(server, id).await;
        let story = || {
            let lines: Vec<String> = events
                .iter()
                .map(|e| format!("{} {} {} {}", e["seq"], e["type"], e["message"], e["data"]))
                .collect();
            format!("{deploy}\n{}", lines.join("\n"))
        };
        if planned.crash {
            assert_eq!(
                (&deploy["status"], &deploy["verdict"]["reason"]),
                (&json!("failed"), &json!("CrashLoopBackOff")),
                "{name}: {}",
                story()
            );
        } else {
            assert_eq!(deploy["status"], "succeeded", "{name}: {}", story());
            assert!(
                has_event(&events, "resource.ready", |event| {
                    event["resource"]["kind"] == "Deployment"
                }),
                "{name}: no resource.ready of its Deployment: {events:#?}"
            );
        }
        let followed = follower.await.expect("the follower finished");
        assert_stream_complete(name, &followed, &events);
        ending.emitted_at.extend(events.iter().map(at));
        ending.reconnects += followed.reconnects;
        ending.recovered += usize::from(has_event(&events, "deploy.recovered", |_| true));
        ending.api_errors += events
            .iter()
            .filter(|event| event["type"] == "report")
            .filter_map(|event| event["data"]["api_errors"].as_u64())
            .sum::<u64>();
        ending.verdicts.push((
            name.clone(),
            deploy["status"].as_str().unwrap_or_default().to_owned(),
            deploy["verdict"]["reason"].as_str().map(str::to_owned),
        ));
        releases.push(planned.release);
    }
    releases.sort();
    releases.dedup();
    for release in releases {
        let status = env.helm_status(&release).await;
        assert!(
            status
                .as_deref()
                .is_some_and(|status| !status.starts_with("pending-")),
            "release {release} left {status:?}"
        );
    }
    assert_nothing_unfinished(env, server).await;
    let logs = server.log();
    for lost in [
        "event batch lost",
        "events of the deploy were lost",
        "helm output not recorded",
    ] {
        assert!(!logs.contains(lost), "the server logged {lost:?}:\n{logs}");
    }
    ending
}
