//! The real helm for the tests: `HELM_BIN` / `HELM3_BIN` when set, else `helm` / `helm3` on
//! `PATH`, else the pinned release fetched into the user's cache (`~/.cache/rollcall/helm`) with
//! one line saying so, so that the suite runs on a machine where nothing was installed first.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rollcall::runner::pinned_helm::{self, HelmMajor};

/// helm v4, the one rollcall runs first.
pub fn helm_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| from_environment(HelmMajor::V4)).clone()
}

/// helm v3, for the scenarios that both majors must pass.
pub fn helm3_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| from_environment(HelmMajor::V3)).clone()
}

fn from_environment(major: HelmMajor) -> PathBuf {
    let variable = match major {
        HelmMajor::V4 => "HELM_BIN",
        HelmMajor::V3 => "HELM3_BIN",
    };
    let cache = pinned_helm::user_cache_dir()
        .expect("neither XDG_CACHE_HOME nor HOME is set: set HELM_BIN and HELM3_BIN instead");
    locate(
        major,
        std::env::var_os(variable).map(|bin| (variable, PathBuf::from(bin))),
        std::env::var_os("PATH"),
        &cache,
    )
}

/// The helm of `major`: `configured` (the variable that named it, and its value) if given, else
/// the pinned name on `search_path`, else the pinned release fetched into `cache`. Panics with
/// the fix when the helm found is not of that major.
pub fn locate(
    major: HelmMajor,
    configured: Option<(&str, PathBuf)>,
    search_path: Option<OsString>,
    cache: &Path,
) -> PathBuf {
    let (source, bin) = match configured {
        Some((variable, bin)) => (variable.to_owned(), bin),
        None => match pinned_helm::find(Path::new(major.file_name()), search_path.as_deref()) {
            Some(bin) => ("PATH".to_owned(), bin),
            None => {
                let bin = pinned_helm::ensure_in(cache, major, |target| {
                    eprintln!(
                        "tests: {} is not on PATH: fetching the pinned helm (hash-checked) as {}",
                        major.file_name(),
                        target.display()
                    );
                })
                .unwrap_or_else(|error| panic!("{error}"));
                ("the cache".to_owned(), bin)
            }
        },
    };
    let version = std::process::Command::new(&bin)
        .args(["version", "--short"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    assert!(
        version
            .as_deref()
            .is_some_and(|version| version.starts_with(major.version_prefix())),
        "{} (from {source}) is not a working helm {}x (it says {version:?}): unset the variable, \
         or install it with scripts/install-helm{}",
        bin.display(),
        major.version_prefix(),
        if major == HelmMajor::V3 { " --v3" } else { "" },
    );
    bin
}
