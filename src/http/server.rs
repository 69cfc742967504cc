//! The HTTP server: hyper's HTTP/1 connection driver serving the axum [`Router`], with
//! the protections `axum::serve` lacks.
//!
//! - **Header timeout** (`http.header_timeout`): every request header, the first
//!   included, must arrive completely within it, or the connection is closed. hyper
//!   starts this timer whenever it waits for a request head, so an idle keep-alive
//!   connection is closed after the same time.
//! - **Request timeout** (`http.request_timeout`): a handler that takes longer is
//!   answered `503`.
//! - **Connection cap** (`http.max_connections`): a new connection beyond it sheds the
//!   *oldest* open one (counted in `connections_shed_total{listener="http"}`), so
//!   slow or idle clients hold places only for as long as they keep opening new ones,
//!   and a probe always gets in. Accepting never waits for anything but the socket.
//! - **Bounded shutdown**: on the shutdown token the listener closes, every connection
//!   is asked to finish its request and close, and whatever is still open after
//!   [`GRACE`] is dropped.
//! - The socket is bound with `limits.listen_backlog`, and failing accepts (`EMFILE`)
//!   back off briefly and are logged at most once every 5 seconds.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::proxy::admission::{Place, Queue};
use crate::proxy::listener::bind_with_backlog;
use crate::state::Shared;

/// How long connections get to finish after the shutdown signal.
pub const GRACE: Duration = Duration::from_secs(1);
/// How long the accept loop pauses after a failed accept (`EMFILE` fails at once, again
/// and again, until a descriptor is freed).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The shortest time between two log lines about failed accepts.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);
/// hyper's read buffer cap per connection (the largest request head it accepts).
const MAX_BUF: usize = 64 * 1024;

/// Binds `http.host:http.port` with `limits.listen_backlog`; returns the bound address
/// and the server future, which runs until `shutdown` and then ends within about
/// [`GRACE`].
pub async fn bind(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> io::Result<(SocketAddr, impl Future<Output = io::Result<()>>)> {
    let addr = shared.config.http.addr();
    let listener = bind_with_backlog(addr, shared.config.limits.listen_backlog)?;
    let bound = listener.local_addr()?;
    Ok((bound, serve(listener, shared, shutdown)))
}

/// The router with the request timeout, as a hyper service.
#[derive(Clone)]
struct Routes {
    /// The axum routes.
    router: TowerToHyperService<Router>,
    /// `http.request_timeout`.
    timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for Routes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let answer = self.router.call(request);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, answer).await {
                Ok(answer) => answer,
                Err(_) => Ok((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the answer took longer than http.request_timeout\n",
                )
                    .into_response()),
            }
        })
    }
}

/// Logs failed accepts at a bounded rate.
#[derive(Default)]
struct AcceptErrors {
    /// When the last line was logged.
    logged: Option<Instant>,
    /// Failures since then.
    unlogged: u64,
}

impl AcceptErrors {
    fn failed(&mut self, error: &io::Error) {
        self.unlogged += 1;
        if self.logged.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
            warn!(
                %error,
                failures = self.unlogged,
                "HTTP accept failed (out of file descriptors?); retrying"
            );
            self.logged = Some(Instant::now());
            self.unlogged = 0;
        }
    }
}

/// Accepts until `shutdown`, then drains within [`GRACE`].
async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let config = &shared.config.http;
    let queue = Queue::new(config.max_connections);
    let routes = Routes {
        router: TowerToHyperService::new(super::router(shared.clone())),
        timeout: config.request_timeout,
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(MAX_BUF);
    let shed_total = shared
        .metrics
        .connections_shed_total
        .with_label_values(&["http"]);
    let mut connections = JoinSet::new();
    let mut errors = AcceptErrors::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                errors.failed(&e);
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        let (place, shed) = queue.admit();
        if shed {
            shed_total.inc();
            debug!("HTTP connections at http.max_connections: the oldest was shed");
        }
        connections.spawn(connection(
            builder.clone(),
            stream,
            routes.clone(),
            place,
            shutdown.clone(),
        ));
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        info!(open, "HTTP listener closed; finishing open connections");
    }
    // Each connection ends itself within GRACE of the signal; this is the backstop.
    let drained = tokio::time::timeout(GRACE + Duration::from_millis(200), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    Ok(())
}

/// Serves one connection until it ends, is shed, or shutdown (then finishes the request
/// in flight for at most [`GRACE`]). Holds `place` throughout.
async fn connection(
    builder: http1::Builder,
    stream: TcpStream,
    routes: Routes,
    place: Place,
    shutdown: CancellationToken,
) {
    let conn = builder.serve_connection(TokioIo::new(stream), routes);
    tokio::pin!(conn);
    tokio::select! {
        ended = conn.as_mut() => {
            if let Err(e) = ended {
                debug!(error = %e, "HTTP connection ended with an error");
            }
        }
        _ = place.shed() => debug!("HTTP connection shed for a newer one"),
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(GRACE, conn.as_mut()).await;
        }
    }
    drop(place);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A started server and what the tests need of it.
    struct Server {
        /// Where it listens.
        addr: SocketAddr,
        /// Its state (metrics).
        shared: Arc<Shared>,
        /// Stops it.
        shutdown: CancellationToken,
        /// The server future, running.
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start(change: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config::default();
        config.http.host = [127, 0, 0, 1].into();
        config.http.port = 0;
        change(&mut config);
        let shared = Arc::new(Shared::new(config).expect("metrics"));
        shared.set_listener_running(true);
        let shutdown = CancellationToken::new();
        let (addr, serve) = bind(shared.clone(), shutdown.clone()).await.expect("bind");
        Server {
            addr,
            shared,
            shutdown,
            task: tokio::spawn(serve),
        }
    }

    /// A connection that has sent half a request header.
    async fn half_header(addr: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
            .await
            .expect("send");
        stream
    }

    /// Waits up to `limit` for the server to close `stream`; how long it took.
    async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut buf = Vec::new();
        match tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await {
            Ok(_) => Some(start.elapsed()), // EOF or reset: closed either way
            Err(_) => None,
        }
    }

    /// Whether `stream` is still open after a short look.
    async fn still_open(stream: &mut TcpStream) -> bool {
        closed_within(stream, Duration::from_millis(50))
            .await
            .is_none()
    }

    /// A complete HTTP/1.0 GET on a new connection: status code and body.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
            .await
            .expect("send");
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
            .await
            .expect("answer in time")
            .expect("read");
        let code = response
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (code, body)
    }

    fn shed_count(shared: &Shared) -> u64 {
        shared
            .metrics
            .connections_shed_total
            .with_label_values(&["http"])
            .get()
    }

    #[tokio::test]
    async fn half_headers_are_closed_after_the_header_timeout_and_healthz_answers_meanwhile() {
        let timeout = Duration::from_millis(300);
        let server = start(|c| c.http.header_timeout = timeout).await;
        let mut slow = Vec::new();
        for _ in 0..20 {
            slow.push(half_header(server.addr).await);
        }
        let (code, body) = get(server.addr, "/healthz").await;
        assert_eq!((code, body.as_str()), (200, "ok\n"));
        for stream in &mut slow {
            let took = closed_within(stream, Duration::from_secs(3))
                .await
                .expect("a half header must be closed");
            assert!(took <= Duration::from_secs(2), "closed after {took:?}");
        }
        assert_eq!(get(server.addr, "/healthz").await.0, 200);
        assert_eq!(shed_count(&server.shared), 0);
    }

    #[tokio::test]
    async fn a_silent_connection_and_an_idle_keep_alive_are_closed_after_the_header_timeout() {
        let timeout = Duration::from_millis(300);
        let server = start(|c| c.http.header_timeout = timeout).await;
        let started = Instant::now();
        let mut silent = TcpStream::connect(server.addr).await.expect("connect");
        let took = closed_within(&mut silent, Duration::from_secs(3)).await;
        assert!(took.is_some(), "a connection that never sends stays open");
        assert!(started.elapsed() >= timeout - Duration::from_millis(50));

        let mut keep_alive = TcpStream::connect(server.addr).await.expect("connect");
        keep_alive
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .expect("send");
        // Read the whole response (its length is known), then stay idle.
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"ok\n") {
            let n = tokio::time::timeout(Duration::from_secs(3), keep_alive.read(&mut buf))
                .await
                .expect("answer in time")
                .expect("read");
            assert!(n > 0, "closed before the answer");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
        let idle_from = Instant::now();
        let took = closed_within(&mut keep_alive, Duration::from_secs(3)).await;
        assert!(took.is_some(), "an idle keep-alive connection stays open");
        assert!(idle_from.elapsed() >= timeout - Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_full_port_sheds_the_oldest_connection_and_healthz_still_answers() {
        let cap = 8;
        let server = start(|c| {
            c.http.max_connections = cap;
            c.http.header_timeout = Duration::from_secs(60);
        })
        .await;
        let mut first = Vec::new();
        for _ in 0..cap {
            first.push(half_header(server.addr).await);
        }
        assert_eq!(get(server.addr, "/healthz").await.0, 200, "full port");
        // The probe took the oldest place.
        assert!(
            closed_within(&mut first[0], Duration::from_secs(5))
                .await
                .is_some()
        );
        let mut second = Vec::new();
        for _ in 0..cap {
            second.push(half_header(server.addr).await);
        }
        // Every one of the first batch is shed now (the oldest first), none of the newest.
        for stream in &mut first {
            assert!(
                closed_within(stream, Duration::from_secs(5))
                    .await
                    .is_some(),
                "an old connection kept its place"
            );
        }
        assert_eq!(get(server.addr, "/healthz").await.0, 200);
        // The probe shed the oldest of the second batch.
        assert!(
            closed_within(&mut second[0], Duration::from_secs(5))
                .await
                .is_some()
        );
        for stream in &mut second[1..] {
            assert!(still_open(stream).await, "a newer connection was shed");
        }
        // The first probe, 7 of the second batch (one found the first probe's place
        // free), the second probe.
        assert_eq!(shed_count(&server.shared), 1 + (cap as u64 - 1) + 1);
    }

    #[tokio::test]
    async fn shutdown_ends_within_the_grace_period_despite_half_headers() {
        let server = start(|c| c.http.header_timeout = Duration::from_secs(60)).await;
        let mut slow = Vec::new();
        for _ in 0..10 {
            slow.push(half_header(server.addr).await);
        }
        assert_eq!(get(server.addr, "/healthz").await.0, 200);
        let started = Instant::now();
        server.shutdown.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(2), server.task)
            .await
            .expect("the server must stop within 2 s");
        assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
        println!("HTTP shutdown took {:?}", started.elapsed());
        for stream in &mut slow {
            assert!(
                closed_within(stream, Duration::from_secs(1))
                    .await
                    .is_some()
            );
        }
        assert!(
            TcpStream::connect(server.addr).await.is_err(),
            "still accepting after shutdown"
        );
    }

    #[tokio::test]
    async fn a_slow_answer_is_cut_at_the_request_timeout() {
        let routes = Routes {
            router: TowerToHyperService::new(Router::new().route(
                "/slow",
                axum::routing::get(|| async {
                    std::future::pending::<()>().await;
                }),
            )),
            timeout: Duration::from_millis(100),
        };
        let listener =
            bind_with_backlog(SocketAddr::from(([127, 0, 0, 1], 0)), 16).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let serving = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), routes)
                .await
        });
        let (code, body) = get(addr, "/slow").await;
        assert_eq!(code, 503);
        assert!(body.contains("http.request_timeout"), "{body}");
        let _ = serving.await;
    }
}
