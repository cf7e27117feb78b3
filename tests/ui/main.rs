//! The pages for people (`/ui`) and the API reference (`/docs`) in a real browser: headless
//! Chromium through chromedriver, against the real server on a fresh PostgreSQL database (and, for a
//! live deploy, the runner with the real helm on kubesim). Every request the browser makes is
//! recorded and must stay on the server's origin; screenshots land in `target/ui-screenshots/`.

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod deploy_list;
mod deploy_page;
mod docs;
mod permissions;
mod proxy;
mod resume;
mod sse_reader;
