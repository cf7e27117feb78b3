//! helm 4 hands the manifest it is about to apply, hooks included, to a post-renderer plugin before
//! it writes anything. rollcall's plugin passes it to the runner and waits for the answer: the
//! runner plans exactly what helm applies (an invalid tracking annotation refuses it, and helm stops
//! before any write) and learns the hooks before helm runs them, without a separate `helm template`
//! process. helm 3's post-renderer is not given the hooks: it keeps rendering with `helm template`.
//!
//! The hand-over goes through a private directory (0700): the plugin copies the manifest to helm
//! and to the file `manifest`, says `handed` through a FIFO, and reads the answer from another.
//! Both FIFOs are held open by the runner for reading and writing, so neither side ever blocks in
//! `open`, and the plugin's `read` ends (refused) if the runner goes away.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::unix::pipe;

use super::helm::PrivateDir;

/// The plugin's name, as `--post-renderer` takes it.
const PLUGIN: &str = "rollcall-manifest-check";

const PLUGIN_YAML: &str = r#"apiVersion: v1
name: rollcall-manifest-check
version: 1.0.0
type: postrenderer/v1
runtime: subprocess
runtimeConfig:
  platformCommand:
    - command: "${HELM_PLUGIN_DIR}/hand-over.sh"
"#;

/// `$1`: the hand-over directory. helm gets the manifest only if the runner accepts it.
const HAND_OVER: &str = r#"#!/bin/sh
set -eu
tee "$1/manifest"
echo handed > "$1/handed"
read -r answer < "$1/answer"
test "$answer" = accepted
"#;

/// Installs the plugin under `plugins` (helm's `$HELM_DATA_HOME/plugins`), replacing an older copy.
/// Each file is renamed into place: a helm of another process sharing the directory never reads
/// half a file.
pub fn install_plugin(plugins: &Path) -> std::io::Result<()> {
    let dir = plugins.join(PLUGIN);
    std::fs::create_dir_all(&dir)?;
    write_in_place(&dir, "plugin.yaml", PLUGIN_YAML, 0o600)?;
    write_in_place(&dir, "hand-over.sh", HAND_OVER, 0o700)
}

fn write_in_place(dir: &Path, name: &str, contents: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let partial = dir.join(format!(".{name}.{}", uuid::Uuid::new_v4()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&partial)?
        .write_all(contents.as_bytes())?;
    std::fs::rename(&partial, dir.join(name))
}

/// One upgrade's hand-over.
#[derive(Debug)]
pub struct ManifestCheck {
    dir: PrivateDir,
    handed: BufReader<pipe::Receiver>,
    answer: pipe::Sender,
}

impl ManifestCheck {
    pub fn create(home: &Path) -> std::io::Result<Self> {
        let dir = PrivateDir::create(home, "manifest")?;
        for fifo in ["handed", "answer"] {
            make_fifo(&dir.path().join(fifo))?;
        }
        let handed = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(dir.path().join("handed"))?;
        let answer = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(dir.path().join("answer"))?;
        Ok(ManifestCheck {
            dir,
            handed: BufReader::new(handed),
            answer,
        })
    }

    /// helm's arguments that make it hand the manifest over.
    pub fn args(&self) -> Vec<OsString> {
        vec![
            "--post-renderer".into(),
            PLUGIN.into(),
            "--post-renderer-args".into(),
            self.dir.path().into(),
        ]
    }

    /// The manifest, once helm has handed it over (helm waits for [`Self::answer`]).
    pub async fn handed(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.handed.read_line(&mut line).await?;
        tokio::fs::read_to_string(self.dir.path().join("manifest")).await
    }

    /// Lets helm apply the manifest, or stops it before any write.
    pub async fn answer(&mut self, accepted: bool) -> std::io::Result<()> {
        let answer: &[u8] = if accepted {
            b"accepted\n"
        } else {
            b"refused\n"
        };
        self.answer.write_all(answer).await
    }
}

fn make_fifo(path: &Path) -> std::io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use tokio::io::AsyncReadExt as _;
    use tokio::process::Command;

    use super::*;

    const MANIFEST: &str = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n";

    /// Starts the installed plugin as helm does: the manifest on stdin, the hand-over directory as
    /// its argument.
    async fn start_plugin(home: &Path, check: &ManifestCheck) -> tokio::process::Child {
        install_plugin(&home.join("plugins")).unwrap();
        let directory = check.args().pop().unwrap();
        let mut plugin = Command::new(home.join("plugins").join(PLUGIN).join("hand-over.sh"))
            .arg(directory)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = plugin.stdin.take().unwrap();
        stdin.write_all(MANIFEST.as_bytes()).await.unwrap();
        plugin
    }

    /// The plugin's exit status, the manifest the runner was handed and what helm got.
    async fn hand_over(accept: bool) -> (bool, String, String) {
        let home = tempfile::tempdir().unwrap();
        let mut check = ManifestCheck::create(home.path()).unwrap();
        let mut plugin = start_plugin(home.path(), &check).await;
        let handed = check.handed().await.unwrap();
        check.answer(accept).await.unwrap();
        let mut printed = String::new();
        plugin
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut printed)
            .await
            .unwrap();
        let status = plugin.wait().await.unwrap();
        (status.success(), handed, printed)
    }

    #[tokio::test]
    async fn an_accepted_manifest_reaches_helm_unchanged() {
        let (succeeded, handed, printed) = hand_over(true).await;
        assert_eq!(handed, MANIFEST);
        assert!(succeeded);
        assert_eq!(printed, MANIFEST);
    }

    #[tokio::test]
    async fn a_refused_manifest_fails_the_post_renderer() {
        let (succeeded, handed, _) = hand_over(false).await;
        assert_eq!(handed, MANIFEST);
        assert!(!succeeded, "helm must not apply a refused manifest");
    }

    #[tokio::test]
    async fn the_post_renderer_fails_when_the_runner_is_gone() {
        let home = tempfile::tempdir().unwrap();
        let check = ManifestCheck::create(home.path()).unwrap();
        let mut plugin = start_plugin(home.path(), &check).await;
        // The runner ends without answering (its deploy was cancelled, its process stopped).
        drop(check);
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), plugin.wait())
            .await
            .expect("the post-renderer does not wait forever")
            .unwrap();
        assert!(!status.success());
    }
}
