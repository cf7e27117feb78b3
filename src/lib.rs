//! rollcall: a deploy-tracking service for Kubernetes.
//!
//! Data flows one way: `http` → `domain` → `store` / `runner` → `tracker` → events → `store` → `http`.

pub mod bus;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod runner;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tracker;
