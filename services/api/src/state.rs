use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chat_core::feed::Hub;
use chat_core::queue::Queue;
use chat_core::service::ChatService;

use crate::idempotency::Idempotency;
use crate::limit::Limiter;
use crate::metrics::Metrics;

/// The one state every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub service: ChatService,
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Arc<Metrics>,
    /// The queue this process uses, reported in `/metrics` (length, pending, dead letters).
    pub queue: Option<Arc<dyn Queue>>,
    /// Rate limits; `None` = none (see [`AppState::with_guards`]).
    pub limiter: Option<Arc<Limiter>>,
    /// `Idempotency-Key` support; `None` = the header is ignored.
    pub idempotency: Option<Arc<Idempotency>>,
    /// Live streams of this process (`None`: the endpoints answer 404).
    pub streams: Option<Streams>,
}

#[derive(Clone)]
pub struct Streams {
    pub hub: Arc<Hub>,
    pub heartbeat: Duration,
}

impl AppState {
    pub fn new(service: ChatService) -> Self {
        AppState {
            service,
            lifecycle: Arc::new(Lifecycle::default()),
            metrics: Arc::new(Metrics::new()),
            queue: None,
            limiter: None,
            idempotency: None,
            streams: None,
        }
    }

    /// Rate limits and idempotency keys as the settings say: in Redis when `REDIS_URL` is set
    /// (shared by every replica), in-process otherwise.
    pub fn with_guards(
        mut self,
        settings: &chat_core::config::Settings,
    ) -> chat_core::Result<Self> {
        let (limiter, idempotency) = crate::guards::open(settings)?;
        self.limiter = Some(Arc::new(limiter));
        self.idempotency = Some(Arc::new(idempotency));
        Ok(self)
    }

    pub fn with_streams(mut self, hub: Arc<Hub>, heartbeat: Duration) -> Self {
        self.streams = Some(Streams { hub, heartbeat });
        self
    }

    pub fn with_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }
}

/// Process-wide state readiness depends on besides the dependencies.
pub struct Lifecycle {
    shutting_down: AtomicBool,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            shutting_down: AtomicBool::new(false),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Lifecycle {
    /// From now on readiness answers 503, so load balancers drain this instance first, and
    /// open live streams end (the graceful shutdown would otherwise wait on them forever).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.stopping.send_replace(true);
    }

    /// Resolves once shutdown has begun.
    pub async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
