//! Many deploys at once through one rollcall process (issue 16 §1 at the suite's size; the 1,000
//! are `cargo bench --bench fleet`): every verdict right, and the Kubernetes API cost shaped as
//! DESIGN §5.5 says: watches shared per (namespace, kind), LISTs bounded by namespaces × kinds
//! however many deploys, no polling, one read of each tracked resource.

use std::time::Duration;

use crate::common::fleet::{Expect, Fleet, ROLLCALL, WATCHED, plan};

const NAMESPACES: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_deploys_at_once_end_right_and_cost_lists_per_namespace_and_kind_not_per_deploy() {
    let fleet = Fleet::start(&[]).await;
    let members = plan(NAMESPACES as usize, 20);
    let run = fleet.run(&members, Duration::from_secs(240)).await;
    assert!(run.wrong().is_empty(), "wrong verdicts: {:#?}", run.wrong());
    let requests = &run.requests;
    for resource in WATCHED {
        let lists = requests.client_count(ROLLCALL, "list", resource);
        let watches = requests.client_count(ROLLCALL, "watch", resource);
        assert!(
            (1..=NAMESPACES).contains(&lists),
            "{lists} lists of {resource} for {} deploys: {requests:?}",
            members.len()
        );
        assert!(
            (1..=NAMESPACES).contains(&watches),
            "{watches} watches of {resource}, not shared: {requests:?}"
        );
    }
    assert!(
        requests.client_verb(ROLLCALL, "list") <= NAMESPACES * WATCHED.len() as u64,
        "lists of other kinds (polling?): {:?}",
        run.rollcall_requests("list")
    );
    let count = |expect: Expect| members.iter().filter(|m| m.expect == expect).count() as u64;
    let workloads = count(Expect::Healthy) + count(Expect::CrashLoop);
    assert_eq!(
        requests.client_count(ROLLCALL, "get", "deployments.apps"),
        workloads,
        "one read of each tracked Deployment: {requests:?}"
    );
    assert_eq!(
        requests.client_count(ROLLCALL, "get", "jobs.batch"),
        count(Expect::FailingJob),
        "one read of each tracked Job: {requests:?}"
    );
}
