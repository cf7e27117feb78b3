//! Tracking: following a release's resources in the cluster to an honest verdict (DESIGN §5).
//!
//! [`core`] is the pure decision core (objects and events in, statuses, incidents and a verdict out);
//! [`explain`] runs it over a saved file for `rollcall explain`. Where rollcall deliberately differs
//! from werf/kubedog is written down in `src/tracker/README.md`. [`watch`] is the cluster side: shared
//! watches, log streams and `track()`.

pub mod core;
pub mod explain;
pub mod watch;
