//! `rollcall sim`: run a simulated cluster until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::Cluster;
use crate::options::{ClusterOptions, KubeVersion};

#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to serve the Kubernetes API on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the cluster (context `kubesim`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Multiplies every simulated duration: 0.1 runs scenarios ten times faster.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Kubernetes version to emulate, e.g. 1.29 (default: current behaviour).
    #[arg(long, default_value_t = KubeVersion::DEFAULT)]
    pub kube_version: KubeVersion,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.time_scale > 0.0 && args.time_scale.is_finite(),
        "--time-scale must be a positive number"
    );
    let options = ClusterOptions {
        nodes: args.nodes,
        time_scale: args.time_scale,
        kube_version: args.kube_version,
    };
    let cluster = Cluster::start_on(options, args.listen).await?;
    if let Some(path) = &args.kubeconfig {
        cluster.write_kubeconfig(path)?;
        println!("kubesim: wrote kubeconfig to {}", path.display());
    }
    println!(
        "kubesim: Kubernetes {} API on {} ({} nodes, time scale {}); admin endpoints under {}/sim/",
        args.kube_version,
        cluster.url(),
        args.nodes,
        args.time_scale,
        cluster.url()
    );
    stopped().await.context("waiting for a stop signal")?;
    println!("kubesim: stopping");
    cluster.shutdown().await;
    Ok(())
}

async fn stopped() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted,
        _ = terminate.recv() => Ok(()),
    }
}
