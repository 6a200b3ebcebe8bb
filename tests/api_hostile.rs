//! Slow and oversized requests against the decision API: slow headers
//! (slowloris), a slow body, huge bodies, huge and many headers, garbage, and
//! more idle connections than `api.max_connections`. Each is answered 400, 408,
//! 413 or 431 or cut off (never 5xx, never left hanging), and meanwhile and
//! afterwards calls and Kafka events are still decided.

mod common;

use common::api::{post, ApiProcessor};
use common::{read_until, Cluster, Output};
use fraudstream::config::Config;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const PATH: &str = "/v1/decisions";

fn payment(id: &str) -> Vec<u8> {
    let ts = fraudstream::source::time::now_ms() - 1000;
    format!(
        r#"{{"event_id":"{id}","ts":{ts},"account_id":"acc-{id}","terminal_id":"t-1","amount":12.5,"currency":"EUR"}}"#
    )
    .into_bytes()
}

/// Short timeouts, so that slow clients are cut off quickly.
fn config(cluster: &Cluster, rules: &std::path::Path) -> Config {
    let mut c = cluster.config.clone();
    c.api.addr = "127.0.0.1:0".into();
    c.api.read_timeout_ms = 300;
    c.api.body_timeout_ms = 400;
    c.api.write_timeout_ms = 1000;
    c.api.max_connections = 32;
    c.api.timeout_ms = 30_000;
    c.rules.dir = rules.display().to_string();
    c.processing.commit_interval_ms = 20;
    c
}

/// A raw connection whose reads give up after 30 s: a server that never
/// answers fails the test instead of hanging it.
fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// The status the server answered on `s` before closing it, or `None` when it
/// closed without answering.
fn answer(s: &mut TcpStream) -> Option<u16> {
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("the server left a hostile client hanging")
        }
        Err(e) => panic!("{e}"),
    }
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

/// Writes `bytes` a piece at a time, `pause` apart, on another thread, until
/// done or the server closes; returns the connection to read the answer from.
fn trickle(addr: &str, head: &[u8], bytes: Vec<u8>, piece: usize, pause: Duration) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(head).unwrap();
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        for chunk in bytes.chunks(piece) {
            if w.write_all(chunk).is_err() {
                return;
            }
            std::thread::sleep(pause);
        }
    });
    s
}

fn head(extra: &str) -> Vec<u8> {
    format!("POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}")
        .into_bytes()
}

#[test]
fn slow_and_oversized_requests_are_cut_off_and_everything_else_is_decided() {
    let rules = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(2);
    let config = config(&cluster, rules.path());
    let api = ApiProcessor::start(&config);
    api.wait_ready();
    let addr = api.addr.clone();
    let limit = config.processing.max_message_bytes;
    let slow = Duration::from_millis(20);

    // Slowloris: a header byte every 20 ms, never ending the head.
    let mut s = trickle(&addr, &head(""), vec![b'a'; 1000], 1, slow);
    assert!(matches!(answer(&mut s), None | Some(408)), "slow head");

    // A slow body: its head says 200 bytes, they come one every 20 ms.
    let mut s = trickle(
        &addr,
        &head("Content-Length: 200\r\n\r\n"),
        vec![b' '; 200],
        1,
        slow,
    );
    assert_eq!(answer(&mut s), Some(408), "slow body");

    // Huge bodies, with and without a length: 413 once over the limit.
    let big = vec![b' '; limit * 4];
    let length = format!("Content-Length: {}\r\n\r\n", 100 * limit);
    let mut s = trickle(
        &addr,
        &head(&length),
        big.clone(),
        64 * 1024,
        Duration::ZERO,
    );
    assert_eq!(answer(&mut s), Some(413), "huge body");
    let chunked: Vec<u8> = big
        .chunks(8192)
        .flat_map(|c| {
            [
                format!("{:x}\r\n", c.len()).into_bytes(),
                c.to_vec(),
                b"\r\n".to_vec(),
            ]
            .concat()
        })
        .collect();
    let mut s = trickle(
        &addr,
        &head("Transfer-Encoding: chunked\r\n\r\n"),
        chunked,
        64 * 1024,
        Duration::ZERO,
    );
    assert_eq!(answer(&mut s), Some(413), "huge chunked body");

    // A huge header, and too many headers: 431.
    let huge = format!("X-Pad: {}\r\n\r\n", "p".repeat(1 << 20));
    let mut s = trickle(
        &addr,
        &head(""),
        huge.into_bytes(),
        64 * 1024,
        Duration::ZERO,
    );
    assert_eq!(answer(&mut s), Some(431), "huge header");
    let many: String = (0..1000)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect::<String>()
        + "\r\n";
    let mut s = trickle(
        &addr,
        &head(""),
        many.into_bytes(),
        64 * 1024,
        Duration::ZERO,
    );
    assert_eq!(answer(&mut s), Some(431), "many headers");

    // Garbage instead of a request line: 400.
    let mut s = trickle(&addr, b"\x16\x03\x01 HELLO?\r\n\r\n", Vec::new(), 1, slow);
    assert_eq!(answer(&mut s), Some(400), "garbage");

    // More idle connections than allowed: each is closed after the read
    // timeout, and a call waiting behind them is then served.
    let mut idle: Vec<TcpStream> = (0..config.api.max_connections + 8)
        .map(|_| connect(&addr))
        .collect();
    let r = post(&addr, PATH, &[], &payment("after-idle")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    for s in &mut idle {
        assert_eq!(answer(s), None, "an idle connection is closed");
    }

    // Calls and Kafka events are still decided.
    let r = post(&addr, PATH, &[], &payment("after-all")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    cluster.produce(
        &config.kafka.input_topic,
        &[("acc-k".to_string(), payment("kafka-after-all"))],
    );
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, Duration::from_secs(60), |o| {
        o.decisions.contains_key("kafka-after-all") && o.decisions.contains_key("after-all")
    });
    let m = |o: &str| api.metrics.api_calls.with_label_values(&[o]).get();
    assert_eq!((m("slow_body"), m("oversized")), (1, 2));
    api.stop();
}
