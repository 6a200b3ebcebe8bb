//! The operator endpoint under a flood. While the processor decides, 1,000 idle
//! connections and one client that never reads its responses are held open:
//! `/metrics` and `/readyz` still answer. The same events are decided once
//! without and once with the flood, and the hot path's percentiles of both are
//! printed with their ratio (measured, not asserted: no timing assertions in
//! tests). `FRAUDSTREAM_FLOOD_EVENTS` and `FRAUDSTREAM_FLOOD_ROUNDS` scale the
//! measurement up.

mod common;

use common::{Cluster, Running};
use fraudstream::demo::loadtest::{generate, LoadTestOptions};
use fraudstream::ops::http::{get, HttpLimits};
use fraudstream::pipeline::RunStats;
use std::io::Write;
use std::time::{Duration, Instant};

const IDLE: usize = 1000;
const WAIT: Duration = Duration::from_secs(60);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value of an unlabelled metric in an exposition.
fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A connection that asks for the exposition many times over and never reads.
fn slow_reader(rt: &tokio::runtime::Runtime, addr: &str) -> tokio::net::TcpStream {
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket.connect(addr.parse().unwrap()).await.unwrap();
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        use tokio::io::AsyncWriteExt;
        s.write_all(request.repeat(200).as_bytes()).await.unwrap();
        s
    })
}

/// Decides `events` on a fresh cluster, flooding the endpoint if `flood`.
fn phase(events: &[(String, Vec<u8>)], flood: bool) -> RunStats {
    let cluster = Cluster::start(2);
    let running = Running::start(&cluster.config);
    // The endpoint on a one-thread runtime of its own, as `run` has it; the
    // flood is held for the whole phase (timeouts longer than it).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let limits = HttpLimits {
        read_timeout: Duration::from_secs(600),
        write_timeout: Duration::from_secs(600),
        ..HttpLimits::default()
    };
    let addr = running.serve_http_with(&rt, limits);
    let deadline = Instant::now() + WAIT;
    while get(&addr, "/readyz").unwrap().0 != 200 {
        assert!(Instant::now() < deadline, "processor never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut held = Vec::new();
    let mut slow = None;
    if flood {
        for _ in 0..IDLE {
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            // Half of them start a request and never finish it.
            if held.len() % 2 == 1 {
                c.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            }
            held.push(c);
        }
        slow = Some(slow_reader(&rt, &addr));
        // Every connection is accepted and held (the endpoint counts them).
        loop {
            let (code, body) = get(&addr, "/metrics").unwrap();
            assert_eq!(code, 200);
            let open = metric(&body, "fraudstream_http_connections").unwrap();
            if open >= (IDLE + 2) as f64 {
                break;
            }
            assert!(Instant::now() < deadline, "{open} connections open");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    cluster.produce("payments", events);
    let want = events.len() as u64;
    let mut scrapes = 0;
    while running.metrics.events_decided.get() < want {
        assert!(Instant::now() < deadline, "events not decided");
        // An operator scraping throughout: both answer.
        let (code, body) = get(&addr, "/metrics").unwrap();
        assert!(code == 200 && body.contains("fraudstream_events_decided_total"));
        assert_eq!(get(&addr, "/readyz").unwrap(), (200, "ready\n".into()));
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(scrapes > 0 || want == 0);
    let stats = running.stop();
    drop((held, slow));
    stats
}

#[test]
fn metrics_and_readyz_answer_under_a_connection_flood() {
    fraudstream::ops::lifecycle::raise_fd_limit();
    let opts = LoadTestOptions {
        events: env_or("FRAUDSTREAM_FLOOD_EVENTS", 3_000),
        accounts: 500,
        ..LoadTestOptions::default()
    };
    let events = generate(&opts);
    let us = |s: &RunStats, q: f64| s.hot_path_ns.quantile(q) as f64 / 1000.0;
    for round in 0..env_or("FRAUDSTREAM_FLOOD_ROUNDS", 1) {
        let quiet = phase(&events, false);
        let flooded = phase(&events, true);
        for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            let (a, b) = (us(&quiet, q), us(&flooded, q));
            println!(
                "round {round} hot path {name}: quiet {a:.1} us, flooded {b:.1} us, ratio {:.2}",
                b / a
            );
        }
        assert_eq!(quiet.decided, flooded.decided);
    }
}
