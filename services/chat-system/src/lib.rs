//! `chat-system`: one binary, one subcommand per role (docs/contract.md). This library is its
//! composition root: [`App`] starts what [`Roles`] names, for `main`, the tests and the bench.

pub mod app;
pub mod cli;
mod commands;
mod repair;
pub mod roles;
pub mod telemetry;

pub use app::App;
pub use commands::run;
pub use roles::Roles;
