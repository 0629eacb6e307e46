use std::process::ExitCode;

use chat_core::config::Settings;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chat-system",
    version,
    about = "A fast chat API: numbered chats and messages, searchable."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Every role in one process on embedded defaults (SQLite, in-process numbering and queue,
    /// embedded search index).
    Serve,
    /// The REST API (public port), its outbox relay, and the admin port.
    Api,
    /// Queue → search index.
    Indexer,
    /// Queue → chats_count / messages_count.
    Counter,
    /// Apply the SQL migrations and exit.
    Migrate {
        /// Also clear the plain tokens the previous release stored (only their SHA-256 stays).
        /// Run once every replica runs this release: previous-release replicas look tokens up
        /// in plain (docs/security.md, "Token storage").
        #[arg(long)]
        forget_plain_tokens: bool,
    },
    /// Rebuild the search index from the database (batched, resumable, safe while running).
    Reindex {
        /// Only this chat: `<token>/<number>`.
        #[arg(long, value_parser = parse_chat_address)]
        chat: Option<(String, i64)>,
        /// Start over instead of resuming from the last checkpoint.
        #[arg(long)]
        restart: bool,
    },
    /// Recompute every chats_count and messages_count from the database.
    Recount,
    /// Inspect and re-queue dead letters (events that failed too often).
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum DlqAction {
    /// Show dead letters, oldest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Re-queue the given dead letters (all when none is given) and remove them from the list.
    Replay { ids: Vec<String> },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Serve => "serve",
            Command::Api => "api",
            Command::Indexer => "indexer",
            Command::Counter => "counter",
            Command::Migrate { .. } => "migrate",
            Command::Reindex { .. } => "reindex",
            Command::Recount => "recount",
            Command::Dlq { .. } => "dlq",
        }
    }
}

fn parse_chat_address(raw: &str) -> Result<(String, i64), String> {
    let (token, number) = raw
        .split_once('/')
        .ok_or_else(|| "expected <token>/<number>".to_owned())?;
    let number = number
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("chat number must be a positive integer, got {number:?}"))?;
    Ok((token.to_owned(), number))
}

/// Parses the command line and environment. A bad setting is one line naming it (by its env
/// name, which is how deployments set it) and exit code 2; help and version print as usual.
pub fn parse() -> Result<Cli, ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            let _ = err.print();
            return Err(ExitCode::from(if err.use_stderr() { 2 } else { 0 }));
        }
        Err(err) => {
            eprintln!("chat-system: {}", one_line(&err));
            return Err(ExitCode::from(2));
        }
    };
    if let Err(err) = cli.settings.validate() {
        eprintln!("chat-system: {err}");
        return Err(ExitCode::from(2));
    }
    Ok(cli)
}

fn one_line(err: &clap::Error) -> String {
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => Some(arg.clone()),
        _ => None,
    };
    let value = match err.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    let reason = err
        .source()
        .map(|s| s.to_string())
        .unwrap_or_else(|| first_line(err));
    match (arg.as_deref().and_then(setting_name), value) {
        (Some(name), Some(value)) => format!("invalid {name}={value:?}: {reason}"),
        (Some(name), None) => format!("invalid {name}: {reason}"),
        _ => first_line(err),
    }
}

fn first_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

/// Maps clap's "--db-pool <DB_POOL>" back to the env name the contract documents.
fn setting_name(arg: &str) -> Option<String> {
    let long = arg.split_whitespace().next()?.trim_start_matches("--");
    let command = Cli::command();
    let found = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    Some(
        found
            .get_env()
            .map(|env| env.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("--{long}")),
    )
}

use std::error::Error as _;
