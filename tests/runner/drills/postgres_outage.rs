//! PostgreSQL stopped for 10 s and started again while deploys are tracked (DESIGN §8): `/readyz`
//! reports the outage, the event writers hold their events until the database is back, every
//! deploy reaches its true verdict and a client resuming with `Last-Event-ID` sees each event once.

use std::time::Duration;

use chrono::Utc;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::time::Instant;

use super::fleet::{self, assert_true_verdicts};
use super::{DRILL_TIMEOUT, Env};
use crate::common::postgres::OwnServer;

const OUTAGE: Duration = Duration::from_secs(10);

/// The `/readyz` status code (0: no answer).
async fn readiness(env: &Env, address: &str) -> u16 {
    env.client
        .get(format!("{address}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_or(0, |response| response.status().as_u16())
}

async fn running_deploys(env: &Env, address: &str) -> usize {
    let listed = env
        .get(address, "/v1/deploys?status=running&limit=200")
        .await;
    listed["items"].as_array().expect("items").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_ten_seconds_during_deploys_loses_no_event_and_every_verdict_is_true()
{
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(fleet::seed("postgres outage drill"));
    let (deploys, releases) = (fleet::size(10, 20), fleet::size(5, 10));
    let plan = fleet::plan(&mut rng, "outage", deploys, releases);
    let mut postgres = OwnServer::start().await;
    let env = Env::start_on(postgres.fresh_database().await).await;
    // A slot per release: every first deploy runs when the database goes away.
    let parallelism = releases.to_string();
    let server = env
        .spawn("outage", &[("ROLLCALL_PARALLELISM", &parallelism)])
        .await;
    let (_address, addresses) = watch::channel(server.address.clone());
    let submitted = fleet::submit(&env, &server, &addresses, &plan).await;

    // The outage begins with a deploy of every release running (in helm or tracking), the
    // later ones still queued behind them.
    let deadline = Instant::now() + DRILL_TIMEOUT;
    while running_deploys(&env, &server.address).await < releases {
        assert!(Instant::now() < deadline, "the deploys never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outage_start = Instant::now();
    let stopped_at = Utc::now();
    postgres.stop();
    let mut unready_after = None;
    while outage_start.elapsed() < OUTAGE {
        if readiness(&env, &server.address).await == 503 && unready_after.is_none() {
            unready_after = Some(outage_start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unready_after =
        unready_after.expect("/readyz never answered 503 while PostgreSQL was down");
    assert_eq!(
        readiness(&env, &server.address).await,
        503,
        "/readyz at the end of the outage"
    );
    postgres.start_again();
    let restarted = Instant::now();
    let outage = stopped_at..Utc::now();
    while readiness(&env, &server.address).await != 200 {
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "/readyz never answered 200 again after PostgreSQL restarted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_after = restarted.elapsed();

    let ending = assert_true_verdicts(&env, &server, submitted).await;
    assert_eq!(
        ending.recovered, 0,
        "a deploy of the running process was taken over: {ending}"
    );
    // Events the deploys emitted while the database was away, held until it came back.
    let held = ending
        .emitted_at
        .iter()
        .filter(|at| outage.contains(at))
        .count();
    assert!(held > 0, "no event was emitted during the outage: {ending}");
    println!(
        "postgres outage drill: {deploys} deploys over {releases} releases, PostgreSQL down for \
         {OUTAGE:?}: /readyz 503 after {unready_after:?}, 200 {ready_after:?} after the restart; \
         {held} events emitted during the outage; {:?}: {ending}",
        started.elapsed()
    );
    drop(server);
    env.cluster.shutdown().await;
}
