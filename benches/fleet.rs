//! Many deploys at once (issue 16 §1): `FLEET_NAMESPACES` × `FLEET_PER_NAMESPACE` releases (default
//! 10 × 100) submitted at once through the API to one `rollcall serve` (the optimized binary, a child
//! process) on one kubesim in this process: half healthy, three in ten crash-looping, two in ten
//! with a failing Job, each with a 5-minute timeout. Checks every verdict, then prints deploys per
//! minute, the verdict latency (kubesim's decisive change to the deploy's end, healthy and Job
//! members), the peak RSS of the rollcall process and the Kubernetes requests of rollcall by verb
//! and resource. `FLEET_HELM_SLOTS` sets the server's helm pool (default: one per core).
//! Run: `cargo bench --bench fleet`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::figures::{figure, latency_summary, load_average, millis, percentiles};
use common::fleet::{Fleet, plan};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let namespaces = setting("FLEET_NAMESPACES", 10);
    let per_namespace = setting("FLEET_PER_NAMESPACE", 100);
    let helm_slots = std::env::var("FLEET_HELM_SLOTS").ok();
    let extra: Vec<(&str, &str)> = helm_slots
        .as_deref()
        .map(|slots| ("ROLLCALL_HELM_SLOTS", slots))
        .into_iter()
        .collect();
    println!("load average at start: {}", load_average());
    let fleet = Fleet::start(&extra).await;
    let members = plan(namespaces, per_namespace);
    println!(
        "== fleet: {} deploys over {namespaces} namespaces, submitted at once (helm slots: {})",
        members.len(),
        helm_slots.as_deref().unwrap_or("one per core")
    );
    let run = fleet.run(&members, Duration::from_secs(30 * 60)).await;
    let wrong = run.wrong();
    println!(
        "verdicts: {} right, {} wrong or not ended",
        members.len() - wrong.len(),
        wrong.len()
    );
    for line in wrong.iter().take(20) {
        println!("  wrong: {line}");
    }
    println!(
        "deploys/minute: {:.1} ({} deploys in {:.1} s)",
        run.deploys_per_minute(),
        members.len(),
        run.elapsed.as_secs_f64()
    );
    println!(
        "verdict latency under load: {} over {} deploys",
        latency_summary(&run.verdict_latencies),
        run.verdict_latencies.len()
    );
    println!(
        "rollcall peak RSS: {:.1} MiB",
        run.peak_rss_kib as f64 / 1024.0
    );
    figure("fleet.deploys", members.len() as f64, "deploys");
    figure("fleet.wrong_verdicts", wrong.len() as f64, "deploys");
    figure("fleet.rss_mib", run.peak_rss_kib as f64 / 1024.0, "MiB");
    figure(
        "fleet.deploys_per_minute",
        run.deploys_per_minute(),
        "deploys/min",
    );
    figure(
        "fleet.verdict_latency_p99_ms",
        millis(percentiles(&run.verdict_latencies)[2]),
        "ms",
    );
    for (verb, id) in [
        ("watch", "fleet.watches"),
        ("list", "fleet.lists"),
        ("get", "fleet.gets"),
    ] {
        let requests = run.rollcall_requests(verb);
        let total: u64 = requests.iter().map(|(_, count)| count).sum();
        println!("rollcall {verb}: {total} {requests:?}");
        figure(id, total as f64, "requests");
    }
    println!(
        "kubesim requests of all clients: {} {:?}",
        run.requests.total, run.requests.by_verb
    );
    println!("load average at end: {}", load_average());
    assert!(wrong.is_empty(), "{} deploys ended wrong", wrong.len());
}
