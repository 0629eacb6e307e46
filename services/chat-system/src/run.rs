//! What each long-running subcommand runs: wiring, the listeners, the workers, a graceful stop.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use chat_api::AppState;
use chat_core::config::{LogFormat, Settings};
use chat_core::wiring::{self, Backend, Schema};
use chat_core::{Error, Result};
use chat_search::Access;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::cli::{Cli, Command};
use crate::repair;

/// Logs (text on a terminal, JSON with `LOG_FORMAT=json`) and, when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry traces over OTLP/HTTP (no exporter and no
/// cost otherwise). Answers the tracer provider, to be shut down (flushed) at exit.
pub fn init_telemetry(settings: &Settings) -> Option<SdkTracerProvider> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match settings.log_format {
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let provider = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|endpoint| !endpoint.trim().is_empty())
        .and_then(|endpoint| match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name("chat-system").build())
                    .build(),
            ),
            Err(err) => {
                eprintln!("chat-system: OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}: traces disabled: {err}");
                None
            }
        });
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("chat-system"))
            .with_filter(LevelFilter::INFO)
    });
    tracing_subscriber::registry().with(fmt).with(traces).init();
    provider
}

/// Which parts one process runs.
#[derive(Debug, Clone, Copy)]
struct Roles {
    public_api: bool,
    relay: bool,
    indexer: bool,
    counter: bool,
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
    let all = Roles {
        public_api: true,
        relay: true,
        indexer: true,
        counter: true,
    };
    let none = Roles {
        public_api: false,
        relay: false,
        indexer: false,
        counter: false,
    };
    match cli.command {
        Command::Migrate {
            forget_plain_tokens,
        } => {
            let database = wiring::migrate(settings, forget_plain_tokens).await?;
            tracing::info!(database, "migrations applied");
            Ok(())
        }
        Command::Serve => serve(settings, all, Schema::Migrate, Access::Writer).await,
        Command::Api => {
            serve(
                settings,
                Roles {
                    public_api: true,
                    relay: true,
                    ..none
                },
                Schema::Check,
                Access::Reader,
            )
            .await
        }
        Command::Indexer => {
            serve(
                settings,
                Roles {
                    indexer: true,
                    ..none
                },
                Schema::Check,
                Access::Writer,
            )
            .await
        }
        Command::Counter => {
            serve(
                settings,
                Roles {
                    counter: true,
                    ..none
                },
                Schema::Check,
                Access::Reader,
            )
            .await
        }
        Command::Reindex { chat, restart } => repair::reindex(settings, chat, restart).await,
        Command::Recount => repair::recount(settings).await,
        Command::Dlq { action } => repair::dlq(settings, action).await,
    }
}

pub async fn open(settings: &Settings, schema: Schema, access: Access) -> Result<Backend> {
    let search = chat_search::open(settings, access).await?;
    let backend = wiring::open(settings, schema, search).await?;
    tracing::info!(
        database = backend.database,
        numbering = backend.numbers.backend(),
        queue = backend.queue.backend(),
        search = backend.search.backend(),
        "backends ready"
    );
    Ok(backend)
}

async fn serve(settings: &Settings, roles: Roles, schema: Schema, access: Access) -> Result<()> {
    let backend = open(settings, schema, access).await?;
    let state = AppState::new(backend.service.clone())
        .with_queue(backend.queue.clone())
        .with_streams(
            backend.streams.clone(),
            Duration::from_secs(settings.stream_heartbeat_s),
        )
        .with_guards(settings)?;
    let public = if roles.public_api {
        Some(bind(settings.listen, "CHAT_LISTEN").await?)
    } else {
        None
    };
    let admin = bind(settings.admin_listen, "CHAT_ADMIN_LISTEN").await?;
    tracing::info!(public = ?public.as_ref().map(|_| settings.listen), admin = %settings.admin_listen, ?roles, "listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    if roles.relay {
        workers.spawn(backend.relay().run(stop_rx.clone()));
    }
    if roles.indexer {
        workers.spawn(backend.indexer().await?.run(stop_rx.clone()));
    }
    if roles.counter {
        workers.spawn(backend.counter().await?.run(stop_rx.clone()));
        workers.spawn(backend.purge().run(stop_rx.clone()));
    }

    let lifecycle = state.lifecycle.clone();
    // Readiness turns 503 first and the listeners keep serving a moment, so load balancers see
    // the 503 and stop sending before connections are refused; then in-flight work drains.
    let notice = Duration::from_secs(settings.shutdown_grace_s / 4).min(Duration::from_secs(3));
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(
            notice_ms = notice.as_millis() as u64,
            "shutdown requested: readiness is 503, draining"
        );
        lifecycle.begin_shutdown();
        tokio::time::sleep(notice).await;
        let _ = stop_tx.send(true);
    });

    let mut servers = JoinSet::new();
    if let Some(public) = public {
        servers.spawn(chat_api::serve::serve(
            public,
            chat_api::public_router(state.clone()),
            chat_api::serve::Limits::from_settings(settings),
            stopped(stop_rx.clone()),
        ));
    }
    servers.spawn(
        axum::serve(admin, chat_api::admin_router(state))
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );

    let drained = async {
        while let Some(result) = servers.join_next().await {
            if let Ok(Err(err)) = result {
                tracing::error!(error = %err, "server failed");
            }
        }
        while workers.join_next().await.is_some() {}
    };
    let grace = Duration::from_secs(settings.shutdown_grace_s);
    tokio::select! {
        () = drained => Ok(()),
        () = async { stopped(stop_rx).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_s = settings.shutdown_grace_s, "grace period over; exiting with work in flight (it is redelivered)");
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
