//! Shared test support: a throwaway PostgreSQL, the app on port 0 or `rollcall serve` as a child
//! process, a runner with the real helm deploying to kubesim, an SSE reader, the chart catalog.
//! Each test binary uses what it needs, so unused helpers are expected here.
#![allow(dead_code)]

pub mod app;
pub mod charts;
pub mod figures;
pub mod fleet;
pub mod helm;
pub mod hooks;
pub mod postgres;
pub mod receiver;
pub mod remote;
pub mod runner;
pub mod serve;
pub mod sse;
