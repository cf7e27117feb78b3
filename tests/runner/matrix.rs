//! The DESIGN §8 scenario matrix through `POST /v1/deploys`, one test per row, on the support of
//! `scenarios` (the seed rows live there; Jobs and hooks elsewhere).

mod failures;
mod faults;
mod policies;
mod readiness;
mod workloads;
