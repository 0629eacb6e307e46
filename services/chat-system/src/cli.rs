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

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Every role in one process on embedded defaults (SQLite, in-process numbering).
    Serve,
    /// The REST API (public port) and the admin port.
    Api,
    /// Apply the SQL migrations and exit.
    Migrate,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Serve => "serve",
            Command::Api => "api",
            Command::Migrate => "migrate",
        }
    }
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
