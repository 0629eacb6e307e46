//! The chat-system core: domain rules, configuration, and the ports the services talk through.
//!
//! A request goes route → handler (api crate) → one [`service::ChatService`] function → the
//! [`store::Store`] and [`numbers::Numbers`] ports → their adapters (`store/mysql.rs`,
//! `store/sqlite.rs`, `numbers/redis.rs`, `numbers/local.rs`).

pub mod coalesce;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod feed;
pub mod metrics;
pub mod numbers;
pub mod queue;
pub mod redis_conn;
pub mod search;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod wiring;
pub mod workers;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{Error, Result};
