//! The container image and compose, as an operator uses them, without a container registry:
//! - the Dockerfile's build stage copies everything the build reads: `cargo check --locked` of the
//!   workspace made of exactly the files its COPY lines name;
//! - its runtime image, built by podman (runc) on a Debian base bootstrapped by mmdebstrap, from
//!   this build's rollcall binary (`--build-arg ROLLCALL_BINARY`; no Rust toolchain can be fetched
//!   into a build stage here) and with helm installed the pinned, hash-checked way, runs `rollcall
//!   serve` as a non-root user (read-only root, /tmp writable, no capabilities, as the Helm chart
//!   runs it) against the test PostgreSQL and a kubesim: `/readyz` answers, its HEALTHCHECK
//!   passes, a deploy succeeds, SIGTERM stops it cleanly; the sandbox target runs the client
//!   command its banner prints, inside its container, to success;
//! - `docker-compose config` accepts docker-compose.yml, with and without the sandbox profile,
//!   whose ports do not clash with the default services'.
//!
//! Needs podman, runc, mmdebstrap and docker-compose: `apt-get install podman runc mmdebstrap
//! docker-compose` (`.ci/run` does).

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const INSTALL: &str = "apt-get install podman runc mmdebstrap docker-compose";
const SAFETY_TIMEOUT: Duration = Duration::from_secs(120);

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `command`; its stdout, or a panic with what it printed.
fn run(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?} ({error}): {INSTALL}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The sources of the build stage's COPY lines (`COPY SRC... DEST`, the last word the target).
fn build_stage_copies(dockerfile: &str) -> Vec<String> {
    let stage = dockerfile
        .split("\nFROM ")
        .find(|stage| stage.contains(" AS build\n"))
        .expect("the Dockerfile has a build stage");
    stage
        .lines()
        .filter_map(|line| line.strip_prefix("COPY "))
        .flat_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|word| (*word).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create a directory of the copy");
        for entry in std::fs::read_dir(from).expect("read a directory") {
            let entry = entry.expect("directory entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("create the parent");
        std::fs::copy(from, to).unwrap_or_else(|error| panic!("copy {}: {error}", from.display()));
    }
}

/// Where the copy is checked: a directory of its own beside the build's, kept between runs. A
/// second cargo in the build's own target directory would see other environment variables (those
/// cargo sets for a test) and rebuild what the build had built.
fn context_target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_rollcall"))
        .ancestors()
        .nth(2)
        .expect("the binary lies in <target>/<profile>/")
        .join("dockerfile-context")
}

#[test]
fn the_build_stage_copies_everything_the_build_reads() {
    let dockerfile = std::fs::read_to_string(repository().join("Dockerfile")).expect("Dockerfile");
    let copies = build_stage_copies(&dockerfile);
    assert!(copies.contains(&"src".to_owned()), "{copies:?}");
    let context = tempfile::tempdir().expect("temp dir");
    for source in &copies {
        copy_tree(&repository().join(source), &context.path().join(source));
    }
    run(Command::new(env!("CARGO"))
        .args(["check", "--locked", "--offline", "--bin", "rollcall"])
        .current_dir(context.path())
        .env("CARGO_TARGET_DIR", context_target_dir()));
}

/// podman with a storage of its own in a temporary directory: nothing is shared with other images
/// on the machine, and nothing is left behind.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Self {
        Podman {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(self.dir.path().join("storage"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--events-backend", "file", "--runtime", "runc"]);
        command
    }

    fn run(&self, args: &[&str]) -> String {
        run(self.command().args(args))
    }

    /// Imports a root filesystem tarball as `name`.
    fn import(&self, tarball: &Path, name: &str) {
        run(self.command().arg("import").arg(tarball).arg(name));
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args(["rm", "--all", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// debian:bookworm-slim's stand-in: bookworm's minimal base by mmdebstrap, without docs, man
/// pages and locales (as the slim image), cached in the user's cache dir by its recipe.
fn debian_base() -> PathBuf {
    let recipe = [
        "--variant=minbase",
        "--dpkgopt=force-unsafe-io",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--aptopt=Acquire::Languages \"none\"",
        "--format=tar",
        "bookworm",
    ];
    let digest = hex::encode(Sha256::digest(recipe.join("\n")));
    let cache = rollcall::runner::pinned_helm::user_cache_dir()
        .expect("HOME is set")
        .with_file_name("images");
    let tarball = cache.join(format!("debian-bookworm-{}.tar", &digest[..16]));
    if tarball.is_file() {
        return tarball;
    }
    std::fs::create_dir_all(&cache).expect("create the image cache");
    eprintln!(
        "image: bootstrapping a Debian bookworm base with mmdebstrap into {}",
        tarball.display()
    );
    let partial = tarball.with_extension("partial");
    let started = Instant::now();
    run(Command::new("mmdebstrap")
        .args(recipe)
        .arg(&partial)
        .arg("http://deb.debian.org/debian"));
    std::fs::rename(&partial, &tarball).expect("keep the base");
    eprintln!("image: base ready in {:.0?}", started.elapsed());
    tarball
}

/// An image holding only this build's rollcall binary, stripped, at /usr/local/bin/rollcall.
fn binary_image(podman: &Podman, scratch: &Path) {
    let root = scratch.join("binary");
    std::fs::create_dir_all(root.join("usr/local/bin")).expect("create the binary's tree");
    run(Command::new("strip")
        .arg("-o")
        .arg(root.join("usr/local/bin/rollcall"))
        .arg(env!("CARGO_BIN_EXE_rollcall")));
    let tarball = scratch.join("binary.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    podman.import(&tarball, "localhost/rollcall-binary:test");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A directory anyone can read, holding the demo `web` chart (the rollcall user reads it).
fn readable_catalog(scratch: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let catalog = scratch.join("charts");
    for (path, contents) in rollcall::sandbox::DEMO_CHARTS {
        if path.starts_with("web/") {
            let file = catalog.join(path);
            std::fs::create_dir_all(file.parent().expect("a parent")).expect("create the chart");
            std::fs::write(&file, contents).expect("write the chart");
        }
    }
    for dir in [scratch, &catalog] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(&catalog));
    catalog
}

#[tokio::test]
async fn the_images_serve_and_run_the_sandbox_as_a_non_root_user_and_deploy() {
    let podman = Podman::new();
    let scratch = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    podman.import(&debian_base(), "docker.io/library/debian:bookworm-slim");
    binary_image(&podman, scratch.path());
    build(&podman, "serve", "localhost/rollcall:test");
    eprintln!(
        "image: base, binary and serve image in {:.0?}",
        started.elapsed()
    );
    let config: Value = serde_json::from_str(&podman.run(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        "localhost/rollcall:test",
    ]))
    .expect("image config JSON");
    assert_eq!(config["User"], "10001:10001", "{config}");
    assert_eq!(config["Entrypoint"], json!(["rollcall"]), "{config}");
    assert_eq!(config["Cmd"], json!(["serve"]), "{config}");
    let healthcheck = podman.run(&[
        "image",
        "inspect",
        "--format",
        "{{json .HealthCheck}}",
        "localhost/rollcall:test",
    ]);
    assert!(healthcheck.contains("/readyz"), "{healthcheck}");

    let database_url = common::postgres::fresh_database().await;
    let cluster = kubesim::Cluster::start(kubesim::options::ClusterOptions {
        time_scale: 0.1,
        ..Default::default()
    })
    .await
    .expect("kubesim starts");
    let kubeconfig = scratch.path().join("kubeconfig");
    cluster
        .write_kubeconfig(&kubeconfig)
        .expect("write the kubeconfig");
    let catalog = readable_catalog(scratch.path());
    let port = free_port();
    let token = "image-test-admin-token";
    let volume = |from: &Path, to: &str| format!("--volume={}:{to}:ro", from.display());
    let serve = Container::start(
        &podman,
        "rollcall-image-test",
        &[
            format!("--env=DATABASE_URL={database_url}"),
            format!("--env=ROLLCALL_LISTEN=127.0.0.1:{port}"),
            format!("--env=ROLLCALL_ADMIN_TOKEN={token}"),
            "--env=KUBECONFIG=/etc/rollcall/kubeconfig".to_owned(),
            "--env=ROLLCALL_CHART_DIR=/charts".to_owned(),
            volume(&kubeconfig, "/etc/rollcall/kubeconfig"),
            volume(&catalog, "/charts"),
            // As the Helm chart runs it: a read-only root, /tmp writable, no capabilities.
            "--read-only".to_owned(),
            "--tmpfs=/tmp".to_owned(),
            "--cap-drop=ALL".to_owned(),
            "--security-opt=no-new-privileges".to_owned(),
        ],
        "localhost/rollcall:test",
    );
    let url = format!("http://127.0.0.1:{port}");
    serve.wait_ready(&url).await;
    podman.run(&["healthcheck", "run", serve.name]);
    assert_eq!(
        podman.run(&["exec", serve.name, "id", "-u"]).trim(),
        "10001"
    );
    let web = json!({"release": "web", "namespace": "default", "chart": {"path": "web"}});
    let deploy = common::remote::deploy_to_the_end(&url, token, &web).await;
    assert_eq!(deploy["status"], "succeeded", "{deploy}\n{}", serve.logs());
    serve.stop_cleanly("rollcall stopped");
    cluster.shutdown().await;

    // The sandbox target, as compose's sandbox profile runs it: its own PostgreSQL, as the
    // rollcall user, and its own cluster; the banner's example deploy succeeds.
    build(&podman, "sandbox", "localhost/rollcall-sandbox:test");
    let port = free_port();
    let sandbox = Container::start(
        &podman,
        "rollcall-sandbox-test",
        &[format!("--env=ROLLCALL_LISTEN=127.0.0.1:{port}")],
        "localhost/rollcall-sandbox:test",
    );
    let url = format!("http://127.0.0.1:{port}");
    sandbox.wait_ready(&url).await;
    // The banner's client command, run where the banner was printed (as `docker compose exec
    // sandbox sh -c '...'` would): it deploys the web chart and follows it to success.
    let banner = podman.run(&["logs", sandbox.name]);
    let client_command = banner
        .lines()
        .find(|line| line.starts_with("ROLLCALL_URL="))
        .unwrap_or_else(|| panic!("no client command in the banner: {banner}"));
    let printed = podman.run(&["exec", sandbox.name, "sh", "-c", client_command]);
    assert!(
        printed.contains("of web to demo succeeded"),
        "{client_command}\n{printed}\n{}",
        sandbox.logs()
    );
    sandbox.stop_cleanly("sandbox stopped");
}

/// `podman build` of the Dockerfile's `target` from this build's binary, tagged `tag`.
fn build(podman: &Podman, target: &str, tag: &str) {
    let started = Instant::now();
    podman.run(&[
        "build",
        "--pull=never",
        "--network=host",
        // HEALTHCHECK is kept in the docker format only.
        "--format=docker",
        // The machine's CAs join the image's bundle when ca-certificates is installed, so that
        // pip reaches PyPI through what this network requires.
        "--volume=/etc/ssl/certs/ca-certificates.crt:/usr/local/share/ca-certificates/build-machine.crt:ro",
        "--build-arg=ROLLCALL_BINARY=localhost/rollcall-binary:test",
        &format!("--target={target}"),
        &format!("--tag={tag}"),
        "--file",
        repository().join("Dockerfile").to_str().expect("UTF-8 path"),
        repository().to_str().expect("UTF-8 path"),
    ]);
    let size = podman.run(&["image", "inspect", "--format", "{{.Size}}", tag]);
    eprintln!(
        "image: {tag} built in {:.0?}, {} MB",
        started.elapsed(),
        size.trim().parse::<u64>().unwrap_or(0) / 1_000_000
    );
}

/// A container of the test, on the host's network (PostgreSQL and kubesim listen on loopback).
struct Container<'a> {
    podman: &'a Podman,
    name: &'static str,
}

impl<'a> Container<'a> {
    fn start(podman: &'a Podman, name: &'static str, options: &[String], image: &str) -> Self {
        let mut args = vec![
            "run".to_owned(),
            "--detach".to_owned(),
            format!("--name={name}"),
            "--network=host".to_owned(),
            "--ulimit=nproc=1024:1024".to_owned(),
            "--ulimit=nofile=1024:1024".to_owned(),
        ];
        args.extend(options.iter().cloned());
        args.push(image.to_owned());
        run(podman.command().args(&args));
        Container { podman, name }
    }

    /// What it logged: rollcall logs to stderr, which `podman logs` passes on as its own.
    fn logs(&self) -> String {
        let output = self
            .podman
            .command()
            .args(["logs", self.name])
            .output()
            .expect("podman logs");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    async fn wait_ready(&self, url: &str) {
        let deadline = Instant::now() + SAFETY_TIMEOUT;
        loop {
            let ready = reqwest::get(format!("{url}/readyz")).await;
            if ready.is_ok_and(|answer| answer.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz never answered:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM (`podman stop`): the process, PID 1 of the container, exits 0 having logged
    /// `farewell`.
    fn stop_cleanly(&self, farewell: &str) {
        self.podman.run(&["stop", "--time=30", self.name]);
        let exit = self
            .podman
            .run(&["inspect", "--format", "{{.State.ExitCode}}", self.name]);
        let logs = self.logs();
        assert_eq!(exit.trim(), "0", "SIGTERM stops it cleanly:\n{logs}");
        assert!(logs.contains(farewell), "{logs}");
    }
}

/// `docker-compose config` of the repository's file, with `env` and extra arguments.
fn compose_config(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = Command::new("docker-compose");
    command
        .arg("--file")
        .arg(repository().join("docker-compose.yml"))
        .args(args)
        .arg("config")
        .env_remove("ROLLCALL_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run docker-compose ({error}): {INSTALL}"))
}

#[test]
fn compose_runs_postgres_and_rollcall_and_a_sandbox_beside_them() {
    let token = [("ROLLCALL_ADMIN_TOKEN", "compose-test-token")];
    let refused = compose_config(&[], &[]);
    assert!(!refused.status.success(), "the admin token is required");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("set ROLLCALL_ADMIN_TOKEN"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let parse = |output: std::process::Output| -> Value {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        let (_, config) = rollcall::tracker::core::yaml_objects(&text)
            .expect("compose prints YAML")
            .into_iter()
            .next()
            .expect("one document");
        config
    };
    let config = parse(compose_config(&token, &[]));
    let services = config["services"].as_object().expect("services");
    let by_default: BTreeSet<&str> = services
        .iter()
        .filter(|(_, service)| service.get("profiles").is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(by_default, BTreeSet::from(["postgres", "rollcall"]));
    let rollcall = &services["rollcall"];
    assert_eq!(rollcall["build"]["target"], "serve");
    assert_eq!(
        rollcall["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    for name in ["postgres", "rollcall"] {
        assert!(services[name]["healthcheck"]["test"].is_array(), "{name}");
    }
    assert!(
        rollcall["healthcheck"]["test"]
            .to_string()
            .contains("/readyz")
    );

    // The sandbox profile is accepted, and its service runs beside the default ones.
    parse(compose_config(&token, &["--profile", "sandbox"]));
    let sandbox = &services["sandbox"];
    assert_eq!(sandbox["profiles"], json!(["sandbox"]));
    assert_eq!(sandbox["build"]["target"], "sandbox");
    assert!(
        sandbox["healthcheck"]["test"]
            .to_string()
            .contains("/readyz")
    );
    let mut published = Vec::new();
    for (name, service) in services {
        for port in service["ports"].as_array().into_iter().flatten() {
            published.push((port["published"].to_string(), name.clone()));
        }
    }
    let distinct: BTreeSet<&String> = published.iter().map(|(port, _)| port).collect();
    assert_eq!(
        distinct.len(),
        published.len(),
        "ports clash: {published:?}"
    );
}
