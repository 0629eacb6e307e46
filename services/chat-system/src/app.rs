//! The composition root: opens the adapters the settings ask for, binds the listeners and
//! starts the parts [`Roles`] names, then runs them until one shutdown signal. `main`, every
//! test that starts the system and (through the binary) the bench start it here and nowhere
//! else.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_api::AppState;
use chat_core::config::Settings;
use chat_core::feed::Hub;
use chat_core::search::SearchIndex;
use chat_core::wiring::{self, Backend, Schema};
use chat_core::{Error, Result};
use chat_search::Access;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::roles::Roles;

/// A started-but-not-yet-running system: adapters open, listeners bound (so their addresses
/// are known, port 0 included), nothing served yet.
pub struct App {
    settings: Settings,
    roles: Roles,
    backend: Backend,
    state: AppState,
    public: Option<TcpListener>,
    admin: TcpListener,
}

/// Opens the search index and every other adapter; what the repair commands use too.
pub async fn open_backend(settings: &Settings, schema: Schema, access: Access) -> Result<Backend> {
    open_backend_with(settings, schema, access, |search| search).await
}

async fn open_backend_with(
    settings: &Settings,
    schema: Schema,
    access: Access,
    wrap_search: impl FnOnce(Arc<dyn SearchIndex>) -> Arc<dyn SearchIndex>,
) -> Result<Backend> {
    let search = chat_search::open(settings, access).await?;
    let backend = wiring::open(settings, schema, wrap_search(search)).await?;
    tracing::info!(
        database = backend.database,
        numbering = backend.numbers.backend(),
        queue = backend.queue.backend(),
        search = backend.search.backend(),
        "backends ready"
    );
    Ok(backend)
}

impl App {
    pub async fn build(settings: Settings, roles: Roles) -> Result<App> {
        Self::build_with_search(settings, roles, |search| search).await
    }

    /// Like [`App::build`], with the search index `wrap_search` makes of the one the settings
    /// open: the seam fault-injection tests use to take search down.
    pub async fn build_with_search(
        settings: Settings,
        roles: Roles,
        wrap_search: impl FnOnce(Arc<dyn SearchIndex>) -> Arc<dyn SearchIndex>,
    ) -> Result<App> {
        let backend =
            open_backend_with(&settings, roles.schema, roles.search_access(), wrap_search).await?;
        let state = AppState::new(backend.service.clone())
            .with_queue(backend.queue.clone())
            .with_streams(
                backend.streams.clone(),
                Duration::from_secs(settings.stream_heartbeat_s),
            )
            .with_guards(&settings)?;
        let public = if roles.public_api {
            Some(bind(settings.listen, "CHAT_LISTEN").await?)
        } else {
            None
        };
        let admin = bind(settings.admin_listen, "CHAT_ADMIN_LISTEN").await?;
        Ok(App {
            settings,
            roles,
            backend,
            state,
            public,
            admin,
        })
    }

    /// The public port's bound address (`None` for the worker roles).
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or(self.settings.admin_listen)
    }

    /// This process's live subscriptions.
    pub fn streams(&self) -> Arc<Hub> {
        self.backend.streams.clone()
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Serves and works until `shutdown` resolves, then drains: readiness turns 503 first and
    /// the listeners keep serving a moment (so load balancers see the 503 and stop sending
    /// before connections are refused), then the workers stop and in-flight work finishes
    /// within `CHAT_SHUTDOWN_GRACE_S`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let App {
            settings,
            roles,
            backend,
            state,
            public,
            admin,
        } = self;
        tracing::info!(
            public = ?public.as_ref().and_then(|l| l.local_addr().ok()),
            admin = ?admin.local_addr().ok(),
            ?roles,
            "listening"
        );

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
        let notice = Duration::from_secs(settings.shutdown_grace_s / 4).min(Duration::from_secs(3));
        tokio::spawn(async move {
            shutdown.await;
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
                chat_api::serve::Limits::from_settings(&settings),
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
}

async fn bind(addr: SocketAddr, setting: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| Error::Config(format!("{setting}: cannot listen on {addr}: {err}")))
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The process's shutdown signal: SIGTERM or Ctrl-C.
pub async fn os_signal() {
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
