use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chat_operator::crd::{ChatSystem, crd_yaml};
use chat_operator::lease::{self, LeaseConfig};
use chat_operator::metrics::Metrics;
use chat_operator::{Error, build, controller};
use clap::{Parser, Subcommand};
use kube::Client;
use tokio::sync::watch;
use tracing::{error, info};

#[derive(Parser)]
#[command(name = "chat-operator", version, about = "Kubernetes operator for chat-system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster of the current kubeconfig or service account.
    Run(RunArgs),
    /// Print the ChatSystem CustomResourceDefinition as YAML.
    Crd,
    /// Print, as multi-document YAML, every object the operator wants for the ChatSystem in FILE
    /// (as if its migrations Job had succeeded). No cluster needed.
    Render {
        file: PathBuf,
        /// Namespace for a ChatSystem whose metadata has none.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Only watch this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Take the leader Lease before reconciling (needed whenever more than one replica runs).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "chat-operator")]
    lease_name: String,
    /// Namespace of the Lease; the operator's own namespace in the chart.
    #[arg(long, env = "LEASE_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease (the pod name in the chart).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    log_format: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => {
            print!("{}", crd_yaml());
            Ok(())
        }
        Command::Render { file, namespace } => render(&file, &namespace),
        Command::Run(args) => run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-operator: {e}");
            ExitCode::FAILURE
        }
    }
}

fn render(file: &PathBuf, namespace: &str) -> Result<(), Error> {
    let text = std::fs::read_to_string(file)?;
    let mut cs: ChatSystem = serde_norway::from_str(&text)?;
    if cs.metadata.namespace.is_none() {
        cs.metadata.namespace = Some(namespace.to_string());
    }
    let observed = build::observed_after_migration(&cs)?;
    print!("{}", build::build(&cs, &observed)?.to_yaml());
    Ok(())
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "text" {
        builder.init();
    } else {
        builder.json().init();
    }
}

async fn run(args: RunArgs) -> Result<(), Error> {
    init_tracing(&args.log_format);
    let client = Client::try_default().await?;
    let metrics = Metrics::default();

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            shutdown_signal().await;
            info!("shutdown signal received");
            let _ = stop_tx.send(true);
        }
    });

    let server = serve(args.listen, metrics.clone(), stopped(stop_rx.clone()));
    let server = tokio::spawn(server);

    let lease_config = LeaseConfig {
        name: args.lease_name.clone(),
        namespace: args.lease_namespace.clone(),
        identity: args
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("chat-operator-{}", std::process::id())),
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(4),
    };
    let mut lost = None;
    if args.leader_election {
        tokio::select! {
            acquired = lease::acquire(client.clone(), &lease_config) => acquired?,
            () = stopped(stop_rx.clone()) => {
                let _ = server.await;
                return Ok(());
            }
        }
        metrics.leader.set(1);
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel();
        lost = Some(lost_rx);
        tokio::spawn({
            let client = client.clone();
            let config = lease_config.clone();
            let stop_tx = stop_tx.clone();
            async move {
                let error = lease::hold(client, config).await;
                error!(error = %error, "stopping: leadership lost");
                let _ = lost_tx.send(error);
                let _ = stop_tx.send(true);
            }
        });
    }

    controller::run(
        client.clone(),
        args.namespace.clone(),
        metrics.clone(),
        stopped(stop_rx.clone()),
    )
    .await;
    metrics.leader.set(0);
    let _ = stop_tx.send(true);
    let _ = server.await;
    if let Some(mut lost) = lost {
        if let Ok(error) = lost.try_recv() {
            return Err(error);
        }
        lease::release(client, &lease_config).await;
    }
    Ok(())
}

async fn serve(addr: SocketAddr, metrics: Metrics, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = metrics.encode();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { (StatusCode::OK, "ok").into_response() }))
        .route("/readyz", get(|| async { (StatusCode::OK, "ok").into_response() }));
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            info!(%addr, "serving /metrics, /healthz and /readyz");
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                error!(error = %e, "metrics server failed");
            }
        }
        Err(e) => error!(error = %e, %addr, "cannot bind the metrics address"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
