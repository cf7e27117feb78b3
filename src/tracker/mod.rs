//! Tracking: following a release's resources in the cluster to an honest verdict (DESIGN §5).

pub mod watch;
