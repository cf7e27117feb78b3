//! Serving the router over TCP with the connection hygiene `axum::serve` does not configure: a
//! client that opens a connection, or keeps one idle, without sending a complete request header
//! within the header-read timeout is disconnected; headers are limited in count and size.
//!
//! hyper answers malformed HTTP itself, before any handler runs and so without a problem body:
//! too many or too large headers get `431 Request Header Fields Too Large`, a request line or
//! header it cannot parse `400 Bad Request`, both with an empty body, and the connection is closed.
//! Responses in progress, such as SSE streams (kept alive by their comments), are not affected.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Limits of each client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a connection may wait for a complete request header, when it opens and between
    /// requests (the idle timeout of HTTP/1 keep-alive).
    pub header_read_timeout: Duration,
    /// Most headers in one request.
    pub max_headers: usize,
    /// Most bytes of a request's start line and headers.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(30),
            max_headers: 100,
            max_header_bytes: 64 * 1024,
        }
    }
}

/// Raises this process's soft limit of open files to its hard limit and returns the limit in
/// force: every client connection holds a descriptor for as long as it is open (an SSE stream for
/// hours), and the usual soft default of 1,024 would refuse connections long before memory runs
/// short. The hard limit is the operator's (`ulimit -Hn`, systemd's `LimitNOFILE`, a container
/// runtime's `nofile`).
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// Serves `router` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        // The head must fit in the read buffer (hyper's minimum is 8 KiB).
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // HTTP/2 has no header-read timeout in hyper: a peer that stops answering pings is dropped.
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let connections = TaskTracker::new();
    loop {
        let (stream, _peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: accepting again later may succeed.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (builder, router, watcher) = (builder.clone(), router.clone(), graceful.watcher());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            // hyper's header-read timer starts once it knows the protocol, from the first bytes:
            // a connection that sends none is dropped here.
            let mut first = [0u8; 1];
            tokio::select! {
                () = shutdown.cancelled() => return,
                peeked = tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first)) => {
                    if !matches!(peeked, Ok(Ok(read)) if read > 0) {
                        return;
                    }
                }
            }
            let service = TowerToHyperService::new(router);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    connections.close();
    connections.wait().await;
    Ok(())
}
