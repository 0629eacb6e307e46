//! What each subcommand does: the serving ones start [`App`] with their [`Roles`]; the
//! one-shot ones migrate or repair and exit.

use chat_core::Result;
use chat_core::wiring;

use crate::app::{self, App};
use crate::cli::{Cli, Command};
use crate::repair;
use crate::roles::Roles;

pub async fn run(cli: Cli) -> Result<()> {
    let settings = cli.settings;
    let role = cli.command.name();
    let config: Vec<String> = settings
        .redacted()
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    tracing::info!(role, version = env!("CARGO_PKG_VERSION"), config = %config.join(" "), "starting");
    let roles = match cli.command {
        Command::Serve => Roles::SERVE,
        Command::Api => Roles::api(&settings),
        Command::Indexer => Roles::worker("indexer", Roles::INDEXER, &settings)?,
        Command::Counter => Roles::worker("counter", Roles::COUNTER, &settings)?,
        Command::Migrate {
            forget_plain_tokens,
        } => {
            let database = wiring::migrate(&settings, forget_plain_tokens).await?;
            tracing::info!(database, "migrations applied");
            return Ok(());
        }
        Command::Reindex { chat, restart } => {
            return repair::reindex(&settings, chat, restart).await;
        }
        Command::Recount => return repair::recount(&settings).await,
        Command::Dlq { action } => return repair::dlq(&settings, action).await,
    };
    App::build(settings, roles)
        .await?
        .run_until_stopped(app::os_signal())
        .await
}
