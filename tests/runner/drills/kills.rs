//! `kill -9` of rollcall at random moments while many deploys of many releases run (DESIGN §8):
//! none stuck, every verdict true, no event lost or repeated for a client resuming with
//! `Last-Event-ID`, no release left `pending-*`.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Env;
use super::fleet::{self, assert_true_verdicts};
use crate::common::serve::ServeProcess;

const KILLS: usize = 3;

/// How many running deploys are in each phase.
async fn phases(env: &Env, server: &ServeProcess) -> BTreeMap<String, usize> {
    let listed = env
        .get(&server.address, "/v1/deploys?status=running&limit=200")
        .await;
    let mut phases = BTreeMap::new();
    for deploy in listed["items"].as_array().expect("items") {
        let phase = deploy["phase"].as_str().unwrap_or("none").to_owned();
        *phases.entry(phase).or_default() += 1;
    }
    phases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollcall_killed_three_times_during_many_deploys_leaves_none_stuck_and_loses_no_event() {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(fleet::seed("kill drill"));
    let (deploys, releases) = (fleet::size(15, 100), fleet::size(5, 20));
    let plan = fleet::plan(&mut rng, "kill", deploys, releases);
    let env = Env::start().await;
    let mut server = env.spawn("kill", &[]).await;
    let (address, addresses) = watch::channel(server.address.clone());
    let submitted = fleet::submit(&env, &server, &addresses, &plan).await;

    // Kills spread over the first part of the run, whatever each deploy is doing then.
    let longest_pause = deploys as u64 * 150;
    for kill in 1..=KILLS {
        let pause = rng.random_range(500..=longest_pause);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        println!(
            "kill drill: kill {kill} after {pause} ms, running by phase: {:?}",
            phases(&env, &server).await
        );
        env.kill_and_restart(&mut server, &address, "kill").await;
    }

    let ending = assert_true_verdicts(&env, &server, submitted).await;
    assert!(
        ending.recovered > 0,
        "no deploy was interrupted by a kill: {ending}"
    );
    println!(
        "kill drill: {deploys} deploys over {releases} releases, {KILLS} kills, {:?}: {ending}",
        started.elapsed()
    );
    drop(server);
    env.cluster.shutdown().await;
}
