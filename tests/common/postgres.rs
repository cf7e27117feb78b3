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
    let name = format!("rollcall_test_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&server.admin_url)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot connect to the test PostgreSQL at {}: {error}",
                server.admin_url
            )
        });
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut connection)
        .await
        .expect("create a test database");
    connection.close().await.ok();
    database_url(&server.admin_url, &name)
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
    let admin_url = server.admin_url();
    // The watchdog stops the server when this process is gone; dropping it here would stop it now.
    std::mem::forget(server);
    Ok(Server { admin_url })
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
