//! Serving the public port with hyper directly (not `axum::serve`) to hold slow and abusive
//! clients in check: a deadline for each request's headers, an idle timeout for keep-alive
//! connections with no request in progress, and a cap on open connections. Each request
//! carries `ConnectInfo<SocketAddr>` for the per-address limits.
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for its
//! next request, so it would cap the idle time at the header deadline; both deadlines are
//! therefore kept here, per connection, by a watchdog that knows which phase it is in.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use chat_core::config::Settings;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a connection's first byte (or its accept) until its request's headers are in.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress (and no bytes of a next one) is closed after.
    pub idle_timeout: Duration,
    /// Connections past this are accepted and closed at once.
    pub max_connections: usize,
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(settings.header_read_timeout_ms),
            idle_timeout: Duration::from_secs(settings.idle_timeout_s),
            max_connections: settings.max_connections as usize,
        }
    }
}

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    chat_core::metrics::REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

static OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "chat_connections_open",
            "Client connections open on the public port",
        )
        .expect("valid metric"),
    )
});
static REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    register(
        IntCounter::new(
            "chat_connections_refused_total",
            "Connections closed on accept because CHAT_MAX_CONNECTIONS were open",
        )
        .expect("valid metric"),
    )
});
static TIMED_OUT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            prometheus::Opts::new(
                "chat_connections_timed_out_total",
                "Connections closed by a timeout, by phase (headers: too slow to send a request; idle: keep-alive with nothing to do; write_stalled: stopped reading a response)",
            ),
            &["phase"],
        )
        .expect("valid metric"),
    )
});

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets each
/// connection finish its request in progress (idle ones close at once) and returns when all
/// are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    LazyLock::force(&OPEN);
    LazyLock::force(&REFUSED);
    LazyLock::force(&TIMED_OUT);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, mostly: back off rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        // Accept-and-close past the cap (not a stalled accept loop): the client learns at once
        // and its load balancer can pick another replica, instead of waiting in our backlog.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            REFUSED.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            peer,
            router.clone(),
            limits,
            permit,
            closing.clone(),
        ));
    }
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    _permit: OwnedSemaphorePermit,
    mut closing: watch::Receiver<bool>,
) {
    OPEN.inc();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = tower::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = Busy::new(requests.clone());
        let router = router.clone();
        async move {
            let response = router.oneshot(request.map(Body::new)).await?;
            // The request counts as in progress until its body is fully sent (or dropped),
            // so a long streaming response is never idle.
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _in_progress = &busy;
                    frame
                }))
            }))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
    tokio::pin!(conn);
    let watchdog = watchdog(activity, limits);
    tokio::pin!(watchdog);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                break;
            }
            phase = &mut watchdog => {
                // Nothing is in progress on it, or the client stopped reading what is: closing
                // loses nothing it would get.
                TIMED_OUT.with_label_values(&[phase]).inc();
                break;
            }
            _ = closing.wait_for(|c| *c), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    OPEN.dec();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request's headers.
    Headers,
    /// A keep-alive connection between requests.
    Idle,
    /// At least one request in progress.
    Busy,
}

struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    phase: Phase,
    since: Instant,
    in_progress: usize,
    /// Since when a write has been waiting on a full socket (the client stopped reading).
    write_blocked_since: Option<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            // A new connection owes its first request's headers from the start: a client
            // that connects and sends nothing is as slow as one that sends a byte a minute.
            state: Mutex::new(State {
                phase: Phase::Headers,
                since: Instant::now(),
                in_progress: 0,
                write_blocked_since: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bytes_read(&self) {
        let mut state = self.lock();
        if state.phase == Phase::Idle {
            state.phase = Phase::Headers;
            state.since = Instant::now();
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        let mut state = self.lock();
        state.in_progress += 1;
        state.phase = Phase::Busy;
        self.changed.notify_one();
    }

    fn request_finished(&self) {
        let mut state = self.lock();
        state.in_progress = state.in_progress.saturating_sub(1);
        if state.in_progress == 0 {
            state.phase = Phase::Idle;
            state.since = Instant::now();
            self.changed.notify_one();
        }
    }

    /// A write returned Pending (`true`) or made progress (`false`).
    fn write_blocked(&self, blocked: bool) {
        let mut state = self.lock();
        match (blocked, state.write_blocked_since) {
            (true, None) => {
                state.write_blocked_since = Some(Instant::now());
                self.changed.notify_one();
            }
            (false, Some(_)) => state.write_blocked_since = None,
            _ => {}
        }
    }

    fn deadline(&self, limits: &Limits) -> (Phase, Option<Instant>) {
        let state = self.lock();
        let deadline = match state.phase {
            Phase::Headers => Some(state.since + limits.header_read_timeout),
            Phase::Idle => Some(state.since + limits.idle_timeout),
            // A response in progress is never idle, but one the client has stopped reading
            // for the idle timeout is dead: a stalled live stream, or a slow reader, would
            // otherwise hold its connection (and its slot under the cap) for ever.
            Phase::Busy => state.write_blocked_since.map(|at| at + limits.idle_timeout),
        };
        (state.phase, deadline)
    }
}

/// Completes (with the phase's name) once the connection has overstayed its phase.
async fn watchdog(activity: Arc<Activity>, limits: Limits) -> &'static str {
    loop {
        let (phase, deadline) = activity.deadline(&limits);
        match deadline {
            Some(at) if Instant::now() >= at => {
                return match phase {
                    Phase::Headers => "headers",
                    Phase::Idle => "idle",
                    Phase::Busy => "write_stalled",
                };
            }
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = activity.changed.notified() => {}
                }
            }
            None => activity.changed.notified().await,
        }
    }
}

/// Marks one request in progress for as long as it lives.
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Busy {
        activity.request_started();
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The socket, reporting reads: the first bytes after an idle spell start a header deadline.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.write_blocked(result.is_pending());
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.write_blocked(result.is_pending());
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
