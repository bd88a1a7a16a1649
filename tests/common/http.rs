//! A scriptable loopback HTTP/1.1 server for tests: no outside address, ever.
//!
//! It binds `127.0.0.1:0` on its own thread with its own tokio runtime, so it serves both async
//! tests and sync tests that run the `sealroom` binary. Each path gets a script of [`Reply`]s:
//! the n-th request gets the n-th reply, and the last one repeats. Unknown paths get 404.
//! Every response carries `Connection: close`, so one request is one connection.
//!
//! ```ignore
//! #[path = "common/http.rs"]
//! mod http;
//! let server = http::TestServer::start();
//! server.route("/a.tar.gz", [http::Reply::status(500), http::Reply::ok(b"bytes".to_vec())]);
//! let url = server.url("/a.tar.gz");
//! // ... fetch it ...
//! assert_eq!(server.requests("/a.tar.gz"), 2);
//! ```
//!
//! The server stops (and drops every open connection) when the [`TestServer`] is dropped.
#![allow(dead_code)] // each test file uses a different part of it

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One scripted response.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// `Content-Length` to announce; defaults to the body's length.
    declared_length: Option<u64>,
    /// Close the connection after this many body bytes (with the full length announced).
    cut_after: Option<usize>,
    delay_before_headers: Duration,
    delay_before_body: Duration,
    /// Send the body in chunks of this size with this pause between them.
    chunks: Option<(usize, Duration)>,
}

impl Reply {
    /// `200 OK` with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            declared_length: None,
            cut_after: None,
            delay_before_headers: Duration::ZERO,
            delay_before_body: Duration::ZERO,
            chunks: None,
        }
    }

    /// An empty response with `status` (e.g. 404, 500).
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::ok(Vec::new())
        }
    }

    /// A `302 Found` to `location` (absolute, or relative to the request).
    pub fn redirect(location: &str) -> Self {
        Self::status(302).header("Location", location)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Announce the full length, send only `bytes` of the body, then close the connection.
    pub fn cut_after(mut self, bytes: usize) -> Self {
        self.cut_after = Some(bytes);
        self
    }

    /// Announce this `Content-Length` whatever the body is.
    pub fn declared_length(mut self, length: u64) -> Self {
        self.declared_length = Some(length);
        self
    }

    /// Wait before sending the status line (the client sees no response at all).
    pub fn delay_headers(mut self, delay: Duration) -> Self {
        self.delay_before_headers = delay;
        self
    }

    /// Send the headers at once, then wait before the body.
    pub fn delay_body(mut self, delay: Duration) -> Self {
        self.delay_before_body = delay;
        self
    }

    /// Send the body in `size`-byte chunks with `pause` between them.
    pub fn chunked_slowly(mut self, size: usize, pause: Duration) -> Self {
        self.chunks = Some((size.max(1), pause));
        self
    }
}

#[derive(Default)]
struct PathState {
    script: Vec<Reply>,
    requests: usize,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Default)]
struct State {
    paths: HashMap<String, PathState>,
    in_flight: usize,
    max_in_flight: usize,
}

/// The running server. Dropping it stops it.
pub struct TestServer {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Binds 127.0.0.1 on a free port and starts serving on a background thread.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (shutdown, shutdown_received) = tokio::sync::oneshot::channel::<()>();
        let (address_sender, address_receiver) = std::sync::mpsc::channel();
        let thread_state = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test server runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1:0");
                address_sender
                    .send(listener.local_addr().expect("local address"))
                    .expect("send address");
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(serve(stream, Arc::clone(&thread_state)));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = shutdown_received => {}
                }
            });
            // Dropping the runtime cancels every connection task still sleeping or writing.
            runtime.shutdown_background();
        });
        let address = address_receiver.recv().expect("test server address");
        Self {
            address,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Scripts `path` (with its query, if the client sends one): the n-th request gets the n-th
    /// reply, the last one repeats. Replaces an earlier script and resets its counters.
    pub fn route(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let script: Vec<Reply> = replies.into_iter().collect();
        assert!(!script.is_empty(), "a route needs at least one reply");
        let mut state = self.state.lock().unwrap();
        state.paths.insert(
            path.to_string(),
            PathState {
                script,
                ..PathState::default()
            },
        );
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Requests received for `path` so far (also counts unscripted paths).
    pub fn requests(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .paths
            .get(path)
            .map_or(0, |p| p.requests)
    }

    /// Requests received for every path.
    pub fn total_requests(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .paths
            .values()
            .map(|p| p.requests)
            .sum()
    }

    /// The most requests for `path` that were being answered at the same time.
    pub fn max_concurrent(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .paths
            .get(path)
            .map_or(0, |p| p.max_in_flight)
    }

    /// The most requests (any path) that were being answered at the same time.
    pub fn max_concurrent_total(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request head; returns the request target (path and query).
async fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buffer[..read]);
        // Not HTTP (a TLS ClientHello, as a client trying HTTPS first sends): closed at once,
        // as a server that speaks only HTTP would fail the handshake.
        if !head[0].is_ascii_uppercase() {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let request_line = text.lines().next()?;
    let mut parts = request_line.split_whitespace();
    let _method = parts.next()?;
    parts.next().map(str::to_string)
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let Some(target) = read_request_target(&mut stream).await else {
        return;
    };
    let reply = {
        let mut state = state.lock().unwrap();
        state.in_flight += 1;
        state.max_in_flight = state.max_in_flight.max(state.in_flight);
        let path = state.paths.entry(target.clone()).or_default();
        path.requests += 1;
        path.in_flight += 1;
        path.max_in_flight = path.max_in_flight.max(path.in_flight);
        if path.script.is_empty() {
            Reply::status(404)
        } else {
            let index = (path.requests - 1).min(path.script.len() - 1);
            path.script[index].clone()
        }
    };
    let _ = write_reply(&mut stream, &reply).await;
    let mut state = state.lock().unwrap();
    state.in_flight -= 1;
    if let Some(path) = state.paths.get_mut(&target) {
        path.in_flight -= 1;
    }
}

async fn write_reply(stream: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    tokio::time::sleep(reply.delay_before_headers).await;
    let length = reply.declared_length.unwrap_or(reply.body.len() as u64);
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {length}\r\nConnection: close\r\n",
        reply.status,
        reason_phrase(reply.status)
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    tokio::time::sleep(reply.delay_before_body).await;
    let body = match reply.cut_after {
        Some(bytes) => &reply.body[..bytes.min(reply.body.len())],
        None => &reply.body[..],
    };
    match reply.chunks {
        Some((size, pause)) => {
            for chunk in body.chunks(size) {
                stream.write_all(chunk).await?;
                stream.flush().await?;
                tokio::time::sleep(pause).await;
            }
        }
        None => stream.write_all(body).await?,
    }
    stream.flush().await?;
    stream.shutdown().await
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
