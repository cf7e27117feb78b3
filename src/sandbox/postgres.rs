//! A private PostgreSQL server in a directory of its own: initdb on first use, pg_ctl start on a
//! free port, `pg_ctl stop -m fast` when done.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sqlx::Connection;

/// Database the sandbox server uses.
pub const DATABASE: &str = "rollcall";

#[derive(Debug, thiserror::Error)]
pub enum LocalPostgresError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in \
         /usr/lib/postgresql/*/bin: install them (`apt-get install postgresql`) or set DATABASE_URL"
    )]
    NotInstalled,
    #[error(
        "the postgres user cannot write to {0}: make its parent directories traversable \
         (chmod o+x) or choose a directory elsewhere"
    )]
    Unreachable(PathBuf),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{command} failed ({message}): set DATABASE_URL (--database-url) to a running PostgreSQL \
         instead"
    )]
    Command {
        command: &'static str,
        message: String,
    },
    #[error(
        "the private PostgreSQL did not start ({message}; its log is {log}): fix what the log \
         says, or set DATABASE_URL (--database-url) to a running PostgreSQL instead"
    )]
    Start { message: String, log: PathBuf },
    #[error("cannot create database {DATABASE}: {0}")]
    CreateDatabase(#[from] sqlx::Error),
}

/// A running server; stopped by `stop()` or, failing that, on drop.
#[derive(Debug)]
pub struct LocalPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_root: bool,
    running: bool,
}

impl LocalPostgres {
    /// Starts the cluster in `dir/data` (created by initdb unless it exists), with its unix socket
    /// in `dir`; `server_options` are added to the postgres command line (e.g. `-c fsync=off`).
    /// Blocks while the server starts.
    pub fn start(dir: &Path, server_options: &str) -> Result<Self, LocalPostgresError> {
        let bin = find_postgres_bin().ok_or(LocalPostgresError::NotInstalled)?;
        let io = |source| LocalPostgresError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let as_root = is_root();
        if as_root {
            // initdb and postgres refuse to run as root: the server runs as the postgres user.
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir),
                "chown",
            )?;
            let reachable = postgres_command(Path::new("/usr/bin"), "test", true)
                .arg("-w")
                .arg(dir)
                .status()
                .is_ok_and(|status| status.success());
            if !reachable {
                return Err(LocalPostgresError::Unreachable(dir.to_owned()));
            }
        }
        let data = dir.join("data");
        if !data.join("PG_VERSION").is_file() {
            run(
                postgres_command(&bin, "initdb", as_root)
                    .arg("-D")
                    .arg(&data)
                    .args([
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--no-sync",
                        "--no-instructions",
                    ]),
                "initdb",
            )?;
        }
        stop_leftover_server(&bin, &data, as_root)?;
        let log = dir.join("server.log");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port().map_err(io)?;
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 {server_options}",
                dir.display()
            );
            let started = run(
                postgres_command(&bin, "pg_ctl", as_root)
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-o", &options, "-w", "-t", "60", "start"]),
                "pg_ctl start",
            );
            match started {
                Ok(()) => {
                    return Ok(LocalPostgres {
                        bin,
                        data,
                        port,
                        as_root,
                        running: true,
                    });
                }
                // Another process may have taken the port between probing and binding.
                Err(error) => last_error = error.to_string(),
            }
        }
        Err(LocalPostgresError::Start {
            message: last_error,
            log,
        })
    }

    /// URL of the maintenance database `postgres`.
    pub fn admin_url(&self) -> String {
        self.url_of("postgres")
    }

    /// URL of database [`DATABASE`].
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The cluster's data directory (its `postmaster.pid` names the server process).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Creates database [`DATABASE`] unless it exists.
    pub async fn create_database(&self) -> Result<(), LocalPostgresError> {
        let mut connection = sqlx::PgConnection::connect(&self.admin_url()).await?;
        let exists = sqlx::query_scalar!(
            r#"select exists (select 1 from pg_database where datname = $1) as "exists!""#,
            DATABASE,
        )
        .fetch_one(&mut connection)
        .await?;
        if !exists {
            // A database name is an identifier, which cannot be a bind parameter.
            sqlx::query(sqlx::AssertSqlSafe(format!("create database {DATABASE}")))
                .execute(&mut connection)
                .await?;
        }
        connection.close().await?;
        Ok(())
    }

    /// `pg_ctl stop -m fast`: open sessions are disconnected, the server shuts down cleanly.
    pub fn stop(mut self) -> Result<(), LocalPostgresError> {
        self.stop_server()
    }

    fn stop_server(&mut self) -> Result<(), LocalPostgresError> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let stopped = run(
            postgres_command(&self.bin, "pg_ctl", self.as_root)
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        );
        // Ctrl-C in a terminal reaches the server too, which may have stopped on its own.
        match stopped {
            Err(_) if !self.data.join("postmaster.pid").exists() => Ok(()),
            result => result,
        }
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Err(error) = self.stop_server() {
            tracing::warn!(%error, "cannot stop the private PostgreSQL");
        }
    }
}

/// Stops a server that an earlier owner of `data` started and could not stop (it was killed
/// with SIGKILL): `pg_ctl start` would refuse to start a second one on the same data.
fn stop_leftover_server(bin: &Path, data: &Path, as_root: bool) -> Result<(), LocalPostgresError> {
    if !data.join("postmaster.pid").exists() {
        return Ok(());
    }
    // Exit status 0: a live server; otherwise the pid file is stale and postgres ignores it.
    let running = postgres_command(bin, "pg_ctl", as_root)
        .arg("-D")
        .arg(data)
        .arg("status")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !running {
        return Ok(());
    }
    tracing::warn!(data = %data.display(), "stopping the PostgreSQL server that an earlier run left behind");
    run(
        postgres_command(bin, "pg_ctl", as_root)
            .arg("-D")
            .arg(data)
            .args(["-m", "fast", "-w", "stop"]),
        "pg_ctl stop (server left behind)",
    )
}

fn find_postgres_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .filter(|(_, bin)| bin.join("initdb").is_file())
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn postgres_command(bin: &Path, program: &str, as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

fn run(command: &mut Command, what: &'static str) -> Result<(), LocalPostgresError> {
    let output =
        command
            .stdin(Stdio::null())
            .output()
            .map_err(|error| LocalPostgresError::Command {
                command: what,
                message: error.to_string(),
            })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LocalPostgresError::Command {
            command: what,
            message: format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

fn free_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")?
        .local_addr()
        .map(|address| address.port())
}
