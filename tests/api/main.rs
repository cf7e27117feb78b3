//! HTTP API integration tests against a real PostgreSQL.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod cancel;
mod chart_sources;
mod create;
mod events;
mod hooks;
mod hooks_serve;
mod list;
mod lost_reply;
mod notifications;
mod openapi;
mod operations;
mod scale_out;
mod security;
mod verdicts;
