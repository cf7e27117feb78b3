//! The suite's helm helper on a machine without helm: nothing configured and none on `PATH`, it
//! fetches the pinned v4 and v3 into its cache, and finds them there the next time.

use std::ffi::OsString;

use rollcall::runner::pinned_helm::HelmMajor;

use super::common::helm::locate;

#[test]
fn without_helm_on_path_the_suite_fetches_the_pinned_v4_and_v3_once() {
    let cache = tempfile::tempdir().expect("temp dir");
    let no_helm = || Some(OsString::new());

    let v4 = locate(HelmMajor::V4, None, no_helm(), cache.path());
    let v3 = locate(HelmMajor::V3, None, no_helm(), cache.path());

    // `locate` checked that each reports its major version.
    assert_eq!(v4, cache.path().join("helm"));
    assert_eq!(v3, cache.path().join("helm3"));
    let fetched_at = std::fs::metadata(&v4)
        .and_then(|metadata| metadata.modified())
        .expect("mtime");
    assert_eq!(locate(HelmMajor::V4, None, no_helm(), cache.path()), v4);
    assert_eq!(
        std::fs::metadata(&v4)
            .and_then(|metadata| metadata.modified())
            .expect("mtime"),
        fetched_at,
        "a cached helm is not fetched again"
    );
}
