//! rollcall: a deploy-tracking service for Kubernetes.
//!
//! Data flows one way: `http` → `domain` → `store` / `runner` → `tracker` → events → `store` → `http`.

pub mod cli;
pub mod domain;
pub mod tracker;
