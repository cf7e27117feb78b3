//! One throwaway PostgreSQL server per test process (or `DATABASE_URL` when set), and a fresh
//! database per test.
//!
//! The server lives in a temporary directory on a free port. A watchdog process stops it and
//! removes the directory as soon as the test process is gone, however it ended, so no server is
//! ever left behind.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rollcall::sandbox::LocalPostgres;
use sqlx::Connection;

struct Server {
    /// URL of the maintenance database, where test databases are created.
    admin_url: String,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// A new, empty database; returns its URL.
pub async fn fresh_database() -> String {
    let server = SERVER
        .get_or_init(start_server)
        .as_ref()
        .unwrap_or_else(|error| panic!("{error}"));
    create_database(&server.admin_url).await
}

/// A PostgreSQL server of one test's own, which the test may stop and start again (the shared one
/// serves every other test of the process). Stopped when dropped.
pub struct OwnServer {
    server: LocalPostgres,
}

impl OwnServer {
    pub async fn start() -> OwnServer {
        let server = tokio::task::spawn_blocking(start_local)
            .await
            .expect("start PostgreSQL")
            .unwrap_or_else(|error| panic!("{error}"));
        OwnServer { server }
    }

    /// A new, empty database on this server; returns its URL.
    pub async fn fresh_database(&self) -> String {
        create_database(&self.server.admin_url()).await
    }

    /// `pg_ctl stop -m fast`: every session is cut and new connections are refused.
    pub fn stop(&mut self) {
        self.server.stop_for_now().expect("stop PostgreSQL");
    }

    /// Starts the server again on the same port.
    pub fn start_again(&mut self) {
        self.server.start_again().expect("start PostgreSQL again");
    }
}

async fn create_database(admin_url: &str) -> String {
    let name = format!("rollcall_test_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|error| {
            panic!("cannot connect to the test PostgreSQL at {admin_url}: {error}")
        });
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut connection)
        .await
        .expect("create a test database");
    connection.close().await.ok();
    database_url(admin_url, &name)
}

fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let server = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    format!("{server}/{name}{query}")
}

fn start_server() -> Result<Server, String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(Server { admin_url: url });
    }
    let server = start_local()?;
    let admin_url = server.admin_url();
    // The watchdog stops the server when this process is gone; dropping it here would stop it now.
    std::mem::forget(server);
    Ok(Server { admin_url })
}

/// A server in a temporary directory, tuned for tests, watched over so that it never outlives
/// this process.
fn start_local() -> Result<LocalPostgres, String> {
    let dir = tempfile::Builder::new()
        .prefix("rollcall-test-pg-")
        .tempdir()
        .map_err(|error| format!("cannot create a temporary directory: {error}"))?
        .keep();
    let server = LocalPostgres::start(
        &dir,
        "-c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c shared_buffers=64MB",
    )
    .map_err(|error| format!("the test PostgreSQL did not start: {error}"))?;
    watch_over(server.data_dir(), &dir)?;
    Ok(server)
}

/// Starts a detached shell that waits for this process to end, then stops the server (SIGQUIT:
/// immediate shutdown) and removes its directory.
fn watch_over(data: &Path, dir: &Path) -> Result<(), String> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         kill -QUIT \"$(head -n 1 '{pidfile}')\" 2>/dev/null; \
         i=0; while [ -e '{pidfile}' ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done; \
         rm -rf '{dir}'",
        pid = std::process::id(),
        pidfile = data.join("postmaster.pid").display(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|error| format!("cannot start the PostgreSQL watchdog: {error}"))
}

#[test]
fn database_urls_replace_only_the_database_name() {
    assert_eq!(
        database_url("postgres://u:p@h:5/postgres?sslmode=disable", "t1"),
        "postgres://u:p@h:5/t1?sslmode=disable"
    );
    assert_eq!(
        database_url("postgres://u@h:5", "t1"),
        "postgres://u@h:5/t1"
    );
}
