//! What each subcommand runs: wiring, the two listeners, and a graceful stop.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use chat_api::AppState;
use chat_core::config::{LogFormat, Settings};
use chat_core::wiring::{self, Schema};
use chat_core::{Error, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

pub fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let settings = &cli.settings;
    let role = cli.command.name();
    let config: Vec<String> = settings
        .redacted()
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    tracing::info!(role, version = env!("CARGO_PKG_VERSION"), config = %config.join(" "), "starting");
    match cli.command {
        Command::Migrate => {
            let database = wiring::migrate(settings).await?;
            tracing::info!(database, "migrations applied");
            Ok(())
        }
        Command::Serve => serve_api(settings, Schema::Migrate).await,
        Command::Api => serve_api(settings, Schema::Check).await,
    }
}

async fn serve_api(settings: &Settings, schema: Schema) -> Result<()> {
    let backend = wiring::open(settings, schema).await?;
    tracing::info!(
        database = backend.database,
        numbering = backend.numbers.backend(),
        "storage and numbering ready"
    );
    let state = AppState::new(backend.service);
    let public = bind(settings.listen, "CHAT_LISTEN").await?;
    let admin = bind(settings.admin_listen, "CHAT_ADMIN_LISTEN").await?;
    tracing::info!(public = %settings.listen, admin = %settings.admin_listen, "listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let lifecycle = state.lifecycle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: draining");
        lifecycle.begin_shutdown();
        let _ = stop_tx.send(true);
    });

    let public_server = axum::serve(public, chat_api::public_router(state.clone()))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let admin_server = axum::serve(admin, chat_api::admin_router(state))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let servers =
        async { tokio::try_join!(public_server.into_future(), admin_server.into_future()) };

    let grace = Duration::from_secs(settings.shutdown_grace_s);
    tokio::pin!(servers);
    tokio::select! {
        result = &mut servers => result.map(|_| ()).map_err(|e| Error::Config(format!("server error: {e}"))),
        () = async { stopped(stop_rx).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_s = settings.shutdown_grace_s, "grace period over; exiting with requests in flight");
            Ok(())
        }
    }
}

async fn bind(addr: SocketAddr, setting: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| Error::Config(format!("{setting}: cannot listen on {addr}: {err}")))
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
}
