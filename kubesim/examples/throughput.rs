//! Requests per second the simulator serves: concurrent GETs of one object and LISTs of a namespace
//! holding `OBJECTS` ConfigMaps, over plain HTTP keep-alive connections.
//!
//! `cargo run -p kubesim --example throughput [--release]`

use std::time::{Duration, Instant};

use kubesim::Cluster;
use kubesim::options::ClusterOptions;
use kubesim::store::CONFIGMAPS;
use serde_json::json;

const OBJECTS: usize = 200;
const CLIENTS: usize = 8;
const DURATION: Duration = Duration::from_secs(5);

async fn hammer(url: String) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut served = 0u64;
            while started.elapsed() < DURATION {
                let response = http.get(&url).send().await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "{url}: {}",
                    response.status()
                );
                response.bytes().await?;
                served += 1;
            }
            anyhow::Ok(served)
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    for index in 0..OBJECTS {
        cluster.store().create(
            &CONFIGMAPS,
            json!({"metadata": {"name": format!("config-{index}"), "namespace": "default", "labels": {"app": "bench"}}, "data": {"key": "value"}}),
        )?;
    }
    let get = hammer(cluster.url() + "/api/v1/namespaces/default/configmaps/config-7").await?;
    println!("GET one ConfigMap: {get:.0} requests/s ({CLIENTS} clients)");
    let list =
        hammer(cluster.url() + "/api/v1/namespaces/default/configmaps?labelSelector=app%3Dbench")
            .await?;
    println!("LIST {OBJECTS} ConfigMaps: {list:.0} requests/s ({CLIENTS} clients)");
    cluster.shutdown().await;
    Ok(())
}
