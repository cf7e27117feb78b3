//! rollcall: a deploy-tracking service for Kubernetes.
//!
//! Data flows one way: `http` → `domain` → `store` / `runner` → `tracker` → `bus` → `store` →
//! `http`. No module imports a module that imports it (`scripts/module-cycles src` checks).
//!
//! | module | what it holds |
//! |---|---|
//! | [`http`] | axum routers per feature, the API's state ([`http::state::ApiState`]), auth extractor, problem JSON, SSE, OpenAPI; the `/ui` pages and the `/docs` reference, embedded |
//! | [`domain`] | requests parsed once into types that cannot be invalid, the deploy state machine, the event and verdict vocabularies, tracking policy, release identity, chart sources and the repositories and registries they may come from, auth model, inbound webhooks (definitions, signatures, what a delivery asks for) |
//! | [`store`] | compile-checked SQL, one module per table group (`deploys`, `deploy_events`, `tokens`, `idempotency`, `webhooks`, `notifications`) |
//! | [`bus`] | the event bus: each deploy's writer (gapless seq, batched, commit then publish) and delivery to live subscribers (in-process broadcast, LISTEN/NOTIFY relay) |
//! | [`runner`] | the worker loop with its narrow [`runner::RunnerContext`], leases, the helm driver, charts pulled from allowed sources (`runner::chart`), the one render path, each deploy's phases (`runner::execute`) |
//! | [`notify`] | outgoing notifications from the outbox: the delivery worker with its narrow [`notify::NotifyContext`], json and slack formats, Standard Webhooks signing, the destination guard |
//! | [`tracker`] | the pure decision core (`tracker::core`: objects in, verdicts out) and the watches, log streams and `track()` driver around it (`tracker::watch`) |
//! | [`config`] | reads flags, environment and the TOML file into the types their owners define |
//! | [`startup`] | builds the API's state and the runner's context from the configuration; serves until shutdown |
//! | [`client`] | `rollcall deploy`, `status`, `cancel`, `deploys`: the API's command-line client (it imports no server module) |
//! | [`cli`], [`sandbox`], [`telemetry`] | the command line, the sandbox (kubesim + private PostgreSQL + demo charts), logs and metrics |

pub mod bus;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod http;
pub mod notify;
pub mod runner;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tracker;
