//! The daemon's HTTP endpoints: `GET /healthz`, `GET /metrics` and, when the caller supplies
//! one, the status page at `GET /`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::health::HealthHandle;
use crate::scheduler::Clock;

/// Where the endpoints listen unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9187";

/// Produces the Prometheus text exposition for `/metrics`.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Produces the status page's HTML for `GET /`: called on each request, so it should only
/// render what a background task prepared (no storage access).
pub type PageFn = Arc<dyn Fn() -> String + Send + Sync>;

/// The endpoints' inputs.
#[derive(Clone)]
pub struct Endpoints {
    /// The scheduler's state.
    pub health: HealthHandle,
    /// The metrics text.
    pub metrics: MetricsFn,
    /// The clock `/healthz` judges freshness by.
    pub clock: Clock,
    /// The status page at `GET /`; `None`: `/` is not found.
    pub status_page: Option<PageFn>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn handle(ep: &Endpoints, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    match req.uri().path() {
        "/healthz" => {
            let state = ep.health.snapshot(ep.clock.now());
            let status = if state.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::to_vec_pretty(&state).unwrap_or_default();
            respond(status, "application/json", body)
        }
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            (ep.metrics)(),
        ),
        "/" if ep.status_page.is_some() => {
            let page = ep.status_page.as_ref().map(|f| f()).unwrap_or_default();
            let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", page);
            // A page that runs no script and loads nothing: the browser is told so, and
            // never to keep a copy.
            for (k, v) in [
                (
                    hyper::header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                     form-action 'none'; frame-ancestors 'none'",
                ),
                (hyper::header::CACHE_CONTROL, "no-store"),
                (hyper::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (hyper::header::REFERRER_POLICY, "no-referrer"),
            ] {
                r.headers_mut()
                    .insert(k, hyper::header::HeaderValue::from_static(v));
            }
            r
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// How long a client may take to send a request's headers (and how long an idle keep-alive
/// connection stays open) unless told otherwise.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one connection may live in all (reading the request, writing the response)
/// unless told otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How many connections are served at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// The first pause after a failed `accept` (e.g. out of file descriptors); it doubles up to
/// [`ACCEPT_BACKOFF_MAX`] while `accept` keeps failing.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause after a failed `accept`.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Repeated warnings (failed accepts, the connection limit) are logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How long a connection past its request timeout may take to finish the response it writes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Limits that keep slow or idle clients from holding the endpoints (and the daemon's file
/// descriptors, which its backups need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// A client must send a request's complete headers within this time after connecting (or
    /// after its previous response), else the connection is closed.
    pub header_timeout: Duration,
    /// A connection is closed this long after it was accepted, whatever it is doing (a
    /// response being written gets one second more).
    pub request_timeout: Duration,
    /// At most this many connections are open at once (at least 1). A connection arriving
    /// when all are taken closes the oldest one, so a flood of slow clients cannot lock out a
    /// health check.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The warning for a listen address other than loopback: the endpoints have no
/// authentication and reveal job names and backup times. `None` for loopback.
pub fn listen_warning(addr: SocketAddr) -> Option<String> {
    if addr.ip().to_canonical().is_loopback() {
        return None;
    }
    Some(format!(
        "--listen {addr} is not a loopback address: /, /healthz and /metrics have no \
         authentication and show job names and backup times to anyone who can reach it; \
         restrict it with a firewall or listen on 127.0.0.1"
    ))
}

/// Binds `addr` (use [`DEFAULT_LISTEN`] unless the operator chose otherwise). An address
/// other than loopback is logged as a warning ([`listen_warning`]).
///
/// # Errors
/// The address is in use or not permitted.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if let Some(w) = listen_warning(addr) {
        tracing::warn!(%addr, "{w}");
    }
    TcpListener::bind(addr).await
}

/// Serves the endpoints on `listener` until `cancel` fires, with the default limits
/// ([`ServeOptions::default`]).
pub async fn serve(listener: TcpListener, endpoints: Endpoints, cancel: CancellationToken) {
    serve_with(listener, endpoints, ServeOptions::default(), cancel).await;
}

/// A warning that repeats: logged at most once per [`WARN_EVERY`], with the count of
/// occurrences since the last one.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    /// Counts one occurrence; `Some(count)` when it is time to log.
    fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// Whether an `accept` error concerns only the connection being accepted (the next accept
/// may succeed at once) rather than the process (out of descriptors or memory).
fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused | K::Interrupted
    )
}

/// The open connections, oldest first, each with the token that closes it.
type Open = Arc<Mutex<VecDeque<(u64, CancellationToken)>>>;

/// Serves the endpoints on `listener` until `cancel` fires, within `options`' limits.
///
/// A failed `accept` that is not about one connection (e.g. `EMFILE`, out of file
/// descriptors) pauses accepting for 100 ms, doubling up to 1 s while it keeps failing, and is
/// logged at most once per 10 s with the number of failures.
pub async fn serve_with(
    listener: TcpListener,
    endpoints: Endpoints,
    options: ServeOptions,
    cancel: CancellationToken,
) {
    let endpoints = Arc::new(endpoints);
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let open: Open = Arc::default();
    let mut next_id: u64 = 0;
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let (mut accept_errors, mut evictions) = (Throttled::default(), Throttled::default());
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    stream
                }
                Err(e) => {
                    let pause = !per_connection(&e);
                    if let Some(n) = accept_errors.hit() {
                        tracing::warn!(
                            error = %e,
                            failures = n,
                            "accepting a connection on the health endpoint failed{}",
                            if pause { "; pausing accepts" } else { "" }
                        );
                    }
                    if pause {
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    }
                    continue;
                }
            },
        };
        let permit = if let Ok(p) = Arc::clone(&permits).try_acquire_owned() {
            p
        } else {
            // All taken: close the oldest connection (a slow client's, most likely) so this
            // one is served.
            let oldest = lock(&open).pop_front();
            if let Some((_, token)) = oldest {
                token.cancel();
            }
            if let Some(n) = evictions.hit() {
                tracing::warn!(
                    limit = options.max_connections,
                    closed = n,
                    "the health endpoint's connection limit was reached; closed the oldest \
                     connections"
                );
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            }
        };
        let id = next_id;
        next_id += 1;
        let close = cancel.child_token();
        lock(&open).push_back((id, close.clone()));
        let ep = Arc::clone(&endpoints);
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            serve_connection(stream, ep, options, close).await;
            lock(&open).retain(|(i, _)| *i != id);
            drop(permit);
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve_connection(
    stream: TcpStream,
    ep: Arc<Endpoints>,
    options: ServeOptions,
    close: CancellationToken,
) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let r = handle(&ep, &req);
        async move { Ok::<_, Infallible>(r) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r {
            tracing::debug!(error = %e, "connection ended");
        },
        () = tokio::time::sleep(options.request_timeout) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
        () = close.cancelled() => {}
    }
}
