//! End-to-end tracking on kubesim: objects applied with kube-rs, followed by `track()` through shared
//! watches, one test per tracking row of the DESIGN §8 scenario matrix.

mod already_complete;
mod custom_resources;
mod failures;
mod faults;
mod healthy;
mod history;
mod logs;
mod policies;
mod sharing;
mod support;
