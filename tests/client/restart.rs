//! The server dies (`kill -9`) while a CI job follows its deploy, and comes back on the same
//! address: the client reconnects with `Last-Event-ID` and prints the rest, nothing twice.

use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use super::common::app::all_events;
use super::common::charts;
use super::common::helm::helm_bin;
use super::common::postgres::fresh_database;
use super::common::runner::start_kubesim;
use super::common::serve::{ServeEnv, ServeProcess};
use super::{SAFETY_TIMEOUT, assert_each_event_once, client, deploy_id, event_lines, words};

/// A free port for both servers, one after the other.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn the_client_resumes_after_a_server_restart_without_repeating_an_event() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (cluster, kubeconfig) = start_kubesim(0.1, dir.path()).await;
    let database_url = fresh_database().await;
    let token = format!("client-admin-{}", uuid::Uuid::new_v4().simple());
    let helm = helm_bin();
    let catalog = charts::catalog();
    let env = ServeEnv {
        database_url: &database_url,
        kubeconfig: &kubeconfig,
        helm: &helm,
        chart_dir: &catalog,
        admin_token: &token,
        dir: dir.path(),
    };
    let listen = format!("127.0.0.1:{}", free_port());
    // A short lease: the restarted server takes the deploy over quickly.
    let settings = [
        ("ROLLCALL_LISTEN", listen.as_str()),
        ("ROLLCALL_LEASE", "2s"),
    ];
    let mut first = ServeProcess::start(&env, "first", &settings).await;

    let output_path = dir.path().join("client.out");
    let output = std::fs::File::create(&output_path).expect("client output file");
    // Ready after 8 s: the deploy is still tracking when the server dies.
    let command = words("deploy web -n default --chart web --set behavior=readyAfter=80s");
    let mut following = client(&first.address, &token, &command, &[])
        .stdout(Stdio::from(output))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");

    let deadline = Instant::now() + SAFETY_TIMEOUT;
    let read = || std::fs::read_to_string(&output_path).unwrap_or_default();
    while !event_lines(&read())
        .iter()
        .any(|line| line.contains(" phase ") && line.ends_with(" tracking"))
    {
        assert!(
            Instant::now() < deadline,
            "the deploy never tracked:\n{}",
            read()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let printed_before = event_lines(&read()).len();
    first.kill();
    let second = ServeProcess::start(&env, "second", &settings).await;

    let status = tokio::time::timeout(SAFETY_TIMEOUT, following.wait())
        .await
        .expect("the client ends")
        .expect("the client's exit status");
    let stderr = {
        use tokio::io::AsyncReadExt as _;
        let mut stderr = String::new();
        let mut pipe = following.stderr.take().expect("piped stderr");
        pipe.read_to_string(&mut stderr).await.expect("stderr");
        stderr
    };
    let stdout = read();
    let shown = format!(
        "{status}\n--- stdout\n{stdout}--- stderr\n{stderr}\n--- second server\n{}",
        second.log()
    );
    assert_eq!(status.code(), Some(0), "{shown}");
    assert!(stdout.contains("rollcall: connection lost"), "{shown}");
    assert!(
        stdout.contains("rollcall: reconnected; resuming after event"),
        "{shown}"
    );
    let lines = event_lines(&stdout);
    assert!(
        lines.len() > printed_before,
        "events after the restart were printed: {shown}"
    );
    let id = deploy_id(&stdout).expect("the deploy id");
    let events = all_events(&second.address, &token, id).await;
    assert_each_event_once(&lines, &events, &shown);
    assert!(
        events
            .iter()
            .any(|event| event["type"] == "deploy.recovered"),
        "the second server took the deploy over: {shown}"
    );
    drop(second);
    cluster.shutdown().await;
}
