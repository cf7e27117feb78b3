//! Kubernetes API faults on rollcall's own watches, lists and log streams while deploys run
//! (DESIGN §5.3, §8): watches dropped every second, 410s, bursts of 5xx and 429s, 2 s latency.
//! helm's requests are left alone (a 5xx on helm's own PATCH is a real helm failure). The verdicts
//! are those of a fault-free run of the same deploys, none false.

use std::time::Duration;

use axum::http::StatusCode;
use kubesim::admin::Admin;
use kubesim::store::Store;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Env;
use super::fleet::{self, Ending, Planned, assert_true_verdicts};

/// Which faults a run gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    None,
    OnRollcallsRequests,
}

/// Until `stop`, every second: the watches dropped, then the next step of a five-second cycle
/// (latency off, 410s on re-watches, a burst of 5xx, a burst of 429s, 2 s latency on); history
/// compacted every seventh second. Returns the seconds it ran.
async fn inject(admin: Admin, store: Store, stop: CancellationToken) -> u64 {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut second = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return second,
            _ = tick.tick() => {}
        }
        admin.drop_watches();
        match second % 5 {
            0 => admin.set_latency(Duration::ZERO),
            // A re-watch from a resourceVersion the server no longer holds: 410, re-list.
            1 => admin.fail_next(3, StatusCode::GONE, Some("watch=true".into())),
            2 => admin.fail_next(5, StatusCode::INTERNAL_SERVER_ERROR, None),
            3 => admin.fail_next(5, StatusCode::TOO_MANY_REQUESTS, None),
            _ => admin.set_latency(Duration::from_secs(2)),
        }
        if second % 7 == 6 {
            // History compacted under open watches: their next resume is an expired ERROR event.
            store.compact();
        }
        second += 1;
    }
}

/// Runs the plan on a cluster, database and rollcall of its own; returns how the deploys ended
/// and for how many seconds faults were injected.
async fn run(plan: &[Planned], faults: Faults) -> (Ending, u64) {
    let env = Env::start().await;
    let server = env.spawn("faults", &[]).await;
    let (_address, addresses) = watch::channel(server.address.clone());
    let stop = CancellationToken::new();
    let injector = (faults == Faults::OnRollcallsRequests).then(|| {
        env.cluster.scope_faults(Some("rollcall/"));
        tokio::spawn(inject(
            env.cluster.admin().clone(),
            env.cluster.store().clone(),
            stop.clone(),
        ))
    });
    let submitted = fleet::submit(&env, &server, &addresses, plan).await;
    let ending = assert_true_verdicts(&env, &server, submitted).await;
    stop.cancel();
    let injected = match injector {
        Some(injector) => injector.await.expect("the injector ran"),
        None => 0,
    };
    drop(server);
    env.cluster.shutdown().await;
    (ending, injected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_on_rollcalls_own_requests_change_no_verdict() {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(fleet::seed("API fault drill"));
    let (deploys, releases) = (fleet::size(10, 50), fleet::size(5, 10));
    let plan = fleet::plan(&mut rng, "faults", deploys, releases);
    let ((calm, _), (faulted, injected)) = tokio::join!(
        run(&plan, Faults::None),
        run(&plan, Faults::OnRollcallsRequests)
    );
    assert_eq!(
        faulted.verdicts, calm.verdicts,
        "the verdicts under faults differ from those of the fault-free run"
    );
    assert!(
        faulted.api_errors > 0,
        "tracking never saw an injected fault ({injected} s of faults): {faulted}"
    );
    println!(
        "API fault drill: {deploys} deploys over {releases} releases, faults for {injected} s, \
         {:?}: {faulted} (fault-free run: {} API errors retried)",
        started.elapsed(),
        calm.api_errors
    );
}
