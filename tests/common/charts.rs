//! The chart catalog the tests deploy from: the sandbox's demo charts (`web`, `statefulset`, ...),
//! exactly as `rollcall sandbox` writes them, beside the charts only tests need (`tests/charts`)
//! and rollcall's own (`deploy/helm/rollcall`, as `rollcall`).
//!
//! The catalog refuses symlinks that lead out of it, so both are copied into one directory under
//! cargo's target tmpdir, named by the digest of what it holds: the test processes of one build
//! share it, and a changed chart makes a new one.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The catalog directory (`chart.path` is resolved in it).
pub fn catalog() -> PathBuf {
    static CATALOG: OnceLock<PathBuf> = OnceLock::new();
    CATALOG
        .get_or_init(|| {
            assemble()
                .unwrap_or_else(|error| panic!("cannot assemble the test chart catalog: {error}"))
        })
        .clone()
}

fn assemble() -> io::Result<PathBuf> {
    let mut files = BTreeMap::new();
    for (path, contents) in rollcall::sandbox::DEMO_CHARTS {
        files.insert(PathBuf::from(path), contents.as_bytes().to_vec());
    }
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
    read_tree(&repository.join("tests/charts"), Path::new(""), &mut files)?;
    // rollcall's own chart, which rollcall deploys in a test.
    read_tree(
        &repository.join("deploy/helm/rollcall"),
        Path::new("rollcall"),
        &mut files,
    )?;

    let mut digest = Sha256::new();
    for (path, contents) in &files {
        digest.update(path.to_string_lossy().as_bytes());
        digest.update(contents.len().to_le_bytes());
        digest.update(contents);
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let catalog = tmp.join(format!("charts-{}", &hex::encode(digest.finalize())[..16]));
    if catalog.is_dir() {
        return Ok(catalog);
    }
    let staging = tempfile::Builder::new()
        .prefix(".charts-")
        .tempdir_in(tmp)?
        .keep();
    for (path, contents) in &files {
        let path = staging.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, contents)?;
    }
    match std::fs::rename(&staging, &catalog) {
        Ok(()) => Ok(catalog),
        // Another test process made the same catalog first.
        Err(_) if catalog.is_dir() => {
            std::fs::remove_dir_all(&staging)?;
            Ok(catalog)
        }
        Err(error) => Err(error),
    }
}

/// Reads every file below `dir` (through symlinks: `migrating-web`'s subchart is the demo `web`).
fn read_tree(
    dir: &Path,
    relative: &Path,
    files: &mut BTreeMap<PathBuf, Vec<u8>>,
) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let relative = relative.join(entry.file_name());
        if std::fs::metadata(&path)?.is_dir() {
            read_tree(&path, &relative, files)?;
        } else {
            let contents = std::fs::read(&path)?;
            assert!(
                files.insert(relative.clone(), contents).is_none(),
                "tests/charts/{} is also a demo chart's file: deploy the demo chart instead",
                relative.display()
            );
        }
    }
    Ok(())
}
