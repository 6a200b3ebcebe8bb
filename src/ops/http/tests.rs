use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

const HOUR: Duration = Duration::from_secs(3600);

fn state() -> OperatorState {
    OperatorState {
        metrics: Arc::new(Metrics::new()),
        health: Health::new(),
        shutdown: Shutdown::new(),
    }
}

fn limits(max_connections: usize, read: Duration, write: Duration) -> HttpLimits {
    HttpLimits {
        max_connections,
        read_timeout: read,
        write_timeout: write,
    }
}

/// A server on its own runtime (as in production), with its state.
fn start(limits: HttpLimits) -> (tokio::runtime::Runtime, String, OperatorState) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let s = state();
    let addr = rt
        .block_on(serve("127.0.0.1:0", limits, s.clone()))
        .unwrap()
        .to_string();
    (rt, addr, s)
}

#[test]
fn routes_answer_get_and_head_and_refuse_other_methods_and_paths() {
    let (_rt, addr, s) = start(HttpLimits::default());
    let (code, head, body) = request(&addr, "GET", "/metrics").unwrap();
    assert_eq!(code, 200, "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/plain; version=0.0.4"));
    assert!(body.contains("fraudstream_ready 0"), "{body}");
    assert_eq!(get(&addr, "/healthz").unwrap(), (200, "ok\n".into()));
    assert_eq!(get(&addr, "/readyz").unwrap(), (503, "not ready\n".into()));
    s.health.set_assigned(1);
    s.health.set_broker_ok(true);
    assert_eq!(get(&addr, "/readyz").unwrap(), (200, "ready\n".into()));
    s.shutdown.trigger();
    assert_eq!(
        get(&addr, "/readyz").unwrap().0,
        503,
        "not ready once shutdown starts"
    );

    for path in ["/metrics", "/healthz", "/readyz"] {
        // HEAD: GET's status and length, without the body.
        let (get_code, _, get_body) = request(&addr, "GET", path).unwrap();
        let (code, head, body) = request(&addr, "HEAD", path).unwrap();
        assert_eq!((code, body.as_str()), (get_code, ""), "HEAD {path}: {head}");
        if path != "/metrics" {
            let length = format!("content-length: {}", get_body.len());
            assert!(
                head.to_ascii_lowercase().contains(&length),
                "HEAD {path}: {head}"
            );
        }
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let (code, head, _) = request(&addr, method, path).unwrap();
            assert_eq!(code, 405, "{method} {path}: {head}");
            assert!(
                head.to_ascii_lowercase().contains("allow: get,head"),
                "{method} {path}: {head}"
            );
        }
    }
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/metricsx"),
        ("POST", "/nope"),
        ("HEAD", "/x"),
    ] {
        assert_eq!(
            request(&addr, method, path).unwrap().0,
            404,
            "{method} {path}"
        );
    }
    // A malformed request is answered (400) or closed, never served.
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"\x00\x01 garbage\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 400"), "{out}");
}

/// A client connected to the server end, as a fake listener hands it out.
fn pair() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(1024)
}

async fn connection(
    server_end: DuplexStream,
    limits: HttpLimits,
    s: &OperatorState,
) -> tokio::task::JoinHandle<()> {
    let slot = Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap();
    let open = Open::new(slot, &s.metrics);
    tokio::spawn(serve_connection(
        server_end,
        operator_routes(s.clone()),
        limits,
        open,
        None,
    ))
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_is_dropped_after_the_write_timeout() {
    let s = state();
    let (mut client, server_end) = pair();
    let served = connection(server_end, limits(4, HOUR, Duration::from_secs(10)), &s).await;
    // The exposition is larger than the pipe: the server's write waits for a reader.
    client
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    assert!(!served.is_finished(), "closed before the write timeout");
    assert_eq!(s.metrics.http_connections.get(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(served.is_finished(), "a stalled write holds the connection");
    assert_eq!(s.metrics.http_connections.get(), 0);
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn idle_and_slow_clients_are_dropped_after_the_read_timeout() {
    let s = state();
    let read = Duration::from_secs(10);
    // Connected, silent.
    let (idle, server_end) = pair();
    let silent = connection(server_end, limits(4, read, HOUR), &s).await;
    // A head trickled byte by byte, each well within the read timeout (slowloris).
    let (mut slow, server_end) = pair();
    let trickled = connection(server_end, limits(4, read, HOUR), &s).await;
    let writer = tokio::spawn(async move {
        for b in b"GET /metrics HTTP/1.1\r\nX-Padding: ".iter().cycle() {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(9_900)).await;
    assert!(!silent.is_finished() && !trickled.is_finished());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(silent.is_finished(), "an idle connection is held");
    assert!(trickled.is_finished(), "a trickled head is held");
    assert_eq!(s.metrics.http_connections.get(), 0);
    writer.abort();
    drop(idle);
}

/// Hands out queued connections (or errors), counting accepts.
struct FakeListener {
    queue: mpsc::UnboundedReceiver<std::io::Result<DuplexStream>>,
    accepted: Arc<AtomicUsize>,
}

impl Accept for FakeListener {
    type Io = DuplexStream;
    async fn accept(&mut self) -> std::io::Result<DuplexStream> {
        let Some(next) = self.queue.recv().await else {
            return std::future::pending().await;
        };
        self.accepted.fetch_add(1, Ordering::SeqCst);
        next
    }
}

fn fake_listener() -> (
    FakeListener,
    mpsc::UnboundedSender<std::io::Result<DuplexStream>>,
    Arc<AtomicUsize>,
) {
    let (tx, queue) = mpsc::unbounded_channel();
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = FakeListener {
        queue,
        accepted: accepted.clone(),
    };
    (listener, tx, accepted)
}

#[tokio::test(start_paused = true)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let s = state();
    let (listener, queue, accepted) = fake_listener();
    tokio::spawn(accept_loop(
        listener,
        limits(2, HOUR, HOUR),
        operator_routes(s.clone()),
        s.metrics.clone(),
        None,
    ));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (client, server_end) = pair();
        queue.send(Ok(server_end)).unwrap();
        clients.push(client);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "accepted past the cap");
    assert_eq!(s.metrics.http_connections.get(), 2);
    drop(clients.remove(0));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "a freed slot is reused");
    assert_eq!(s.metrics.http_connections.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn accept_errors_are_backed_off_and_counted() {
    let s = state();
    let (listener, queue, accepted) = fake_listener();
    for _ in 0..100 {
        queue
            .send(Err(std::io::Error::from_raw_os_error(libc::EMFILE)))
            .unwrap();
    }
    tokio::spawn(accept_loop(
        listener,
        limits(4, HOUR, HOUR),
        operator_routes(s.clone()),
        s.metrics.clone(),
        None,
    ));
    // Pauses of 10 ms doubling to 1 s: tries at 0, 10, 30, 70, ... 1270 ms, then
    // one a second, so 16 in the first 10 s (a busy loop would make thousands).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let tries = accepted.load(Ordering::SeqCst);
    assert_eq!(tries, 16, "accepts in 10 s of errors");
    assert_eq!(s.metrics.http_accept_errors.get(), 16);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_gave_up_before_its_accept_costs_no_pause() {
    let s = state();
    let (listener, queue, accepted) = fake_listener();
    for _ in 0..100 {
        let aborted = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        queue.send(Err(aborted)).unwrap();
    }
    let (_client, server_end) = pair();
    queue.send(Ok(server_end)).unwrap();
    tokio::spawn(accept_loop(
        listener,
        limits(4, HOUR, HOUR),
        operator_routes(s.clone()),
        s.metrics.clone(),
        None,
    ));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 101);
    assert_eq!(s.metrics.http_connections.get(), 1);
    assert_eq!(s.metrics.http_accept_errors.get(), 0);
}
