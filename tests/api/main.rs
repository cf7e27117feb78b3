//! HTTP API integration tests against a real PostgreSQL.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod cancel;
mod chart_sources;
mod create;
mod events;
mod firehose;
mod hooks;
mod hooks_serve;
mod list;
mod lost_reply;
mod notifications;
mod openapi;
mod openapi_conformance;
mod operations;
mod retention;
mod scale_out;
mod security;
mod submissions;
mod verdicts;
