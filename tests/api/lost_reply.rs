//! The event writer and a lost commit reply: PostgreSQL committed a batch, but the connection died
//! before its answer reached rollcall. The writer tries the batch again; it must not be appended
//! twice (with new seqs), and nothing may be missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rollcall::bus::{BusMessage, EventHub, EventWriter};
use rollcall::domain::event::{EventType, NewEvent};
use rollcall::telemetry::Metrics;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::common::app::{all_events, deploy_body, spawn_app};
use crate::events::log_line;

/// The text of the event whose batch loses its reply.
const MARKER: &str = "the batch whose commit reply is lost";

/// A TCP proxy in front of PostgreSQL that, once, lets the statement carrying [`MARKER`] run and
/// commit, swallows the server's complete answer (up to its ReadyForQuery) and cuts the connection.
struct LostReplyProxy {
    address: std::net::SocketAddr,
    replies_lost: Arc<AtomicUsize>,
}

impl LostReplyProxy {
    async fn start(upstream: String) -> LostReplyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let replies_lost = Arc::new(AtomicUsize::new(0));
        let lost = replies_lost.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream)
                    .await
                    .expect("reach PostgreSQL");
                tokio::spawn(relay(client, server, lost.clone()));
            }
        });
        LostReplyProxy {
            address,
            replies_lost,
        }
    }
}

async fn relay(client: TcpStream, server: TcpStream, replies_lost: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let marked = Arc::new(AtomicBool::new(false));
    let marked_by_client = marked.clone();
    let upstream = tokio::spawn(async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read) = client_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            let chunk = &buffer[..read];
            if chunk
                .windows(MARKER.len())
                .any(|window| window == MARKER.as_bytes())
            {
                marked_by_client.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(chunk).await.is_err() {
                break;
            }
        }
    });
    let mut buffer = vec![0; 64 * 1024];
    let mut swallowed = Vec::new();
    while let Ok(read) = server_read.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        if marked.load(Ordering::SeqCst) && replies_lost.load(Ordering::SeqCst) == 0 {
            swallowed.extend_from_slice(chunk);
            // ReadyForQuery ('Z', length 5, status) ends the answer: the statement has committed.
            let answered =
                swallowed.len() >= 6 && swallowed[swallowed.len() - 6..][..5] == *b"Z\0\0\0\x05";
            if answered {
                replies_lost.fetch_add(1, Ordering::SeqCst);
                upstream.abort();
                return;
            }
            continue;
        }
        if client_write.write_all(chunk).await.is_err() {
            break;
        }
    }
    upstream.abort();
}

#[tokio::test]
async fn a_batch_whose_commit_reply_is_lost_is_written_once_and_published_once() {
    let app = spawn_app().await;
    let id = app.submit(&deploy_body("prod", "web")).await;
    let mut through_proxy = url::Url::parse(&app.database_url).expect("database URL");
    let upstream = format!(
        "{}:{}",
        through_proxy.host_str().expect("host"),
        through_proxy.port().expect("port")
    );
    let proxy = LostReplyProxy::start(upstream).await;
    through_proxy.set_port(Some(proxy.address.port())).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(through_proxy.as_str())
        .await
        .expect("connect through the proxy");
    let (tasks, shutdown) = (TaskTracker::new(), CancellationToken::new());
    let hub = EventHub::new(
        pool,
        1024,
        tasks.clone(),
        shutdown.clone(),
        Arc::new(Metrics::default()),
    );
    let mut live = hub.subscribe();

    let writer = EventWriter::open(&hub, id);
    for index in 0..3 {
        writer.emit(log_line(index)).await.unwrap();
    }
    writer
        .emit(NewEvent::new(EventType::ResourceStatus, MARKER))
        .await
        .unwrap();
    writer
        .flush()
        .await
        .expect("the batch is written despite the lost reply");
    writer
        .emit(NewEvent::new(
            EventType::ResourceReady,
            "after the lost reply",
        ))
        .await
        .unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        proxy.replies_lost.load(Ordering::SeqCst),
        1,
        "the proxy cut the connection after the commit"
    );

    let stored = all_events(&app.address, &app.admin_token, id).await;
    let seqs: Vec<i64> = stored.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>(), "no gap, no duplicate");
    let messages: Vec<&str> = stored
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages[1..],
        ["line 0", "line 1", "line 2", MARKER, "after the lost reply"]
    );

    // Live subscribers of the writer's instance get each event once, in order.
    let mut published = Vec::new();
    while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(200), live.recv()).await
    {
        if let BusMessage::Event(event) = message {
            published.push(event.event.seq);
        }
    }
    assert_eq!(published, (2..=6).collect::<Vec<_>>());
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
}
