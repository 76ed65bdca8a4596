//! alertgate: an alert-to-incident gateway.
//!
//! Senders push alerts over HTTP (`api`), each format is parsed into the
//! normalized [`model::Alert`] (`ingest`), and the store (`store`), the only
//! owner of the SQLite file, deduplicates and commits them durably before the
//! sender gets its 2xx. Pure decisions live in `model`, `rules`, `ingest` and
//! `oncall` (who is on call); I/O lives at the edges (`api`, `web`, `store`,
//! `client`).
#![forbid(unsafe_code)]
// stdout is written through `output`, which survives a closed pipe.
#![warn(clippy::print_stdout)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod connections;
pub mod engine;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod oncall;
pub mod output;
pub mod replay;
pub mod rules;
pub mod server;
pub mod sla;
pub mod store;
pub mod web;
pub mod yaml;
