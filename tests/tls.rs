//! TLS to the broker, with a certificate this test makes: tansu behind socat,
//! which terminates TLS (tansu 0.6.0 cannot serve TLS itself: its `--cert` and
//! `--key` flags conflict, and `--cert` alone leaves the listener in plaintext).
//! tansu advertises the TLS address, so every connection goes through it. With
//! the right CA, decisions flow exactly once across a restart (every client,
//! restore and checkpoint readers included, speaks TLS: the advertised address
//! has no plaintext to fall back to). With the wrong CA, the start fails naming
//! the handshake failure and `/readyz` stays 503.
//!
//! Needs tansu (`$FRAUDSTREAM_TANSU`, else `.tools/tansu`: `scripts/tansu.sh
//! install`) and socat (`scripts/tls.sh install`); `.ci/run` installs both. Skips
//! loudly without them.

mod common;

use common::*;
use fraudstream::config::Config;
use fraudstream::pipeline::topics::TopicsError;
use fraudstream::pipeline::PipelineError;
use fraudstream::source::time::now_ms;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tansu() -> Option<PathBuf> {
    let path = std::env::var_os("FRAUDSTREAM_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/tansu"));
    let socat = Command::new("socat").arg("-V").output().is_ok();
    if path.exists() && socat {
        return Some(path);
    }
    skip_notice(&format!(
        "*** SKIPPED: TLS test needs tansu at {} (scripts/tansu.sh install, or set \
         FRAUDSTREAM_TANSU) and socat (scripts/tls.sh install); socat found: {socat} ***",
        path.display()
    ));
    None
}

/// A CA, and a certificate for 127.0.0.1 and localhost that it signed, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new(ca_name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: a leaf whose issuer equals its subject looks self-signed.
        ca.distinguished_name = name(ca_name);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut leaf = CertificateParams::new(names).unwrap();
        leaf.distinguished_name = name("fraudstream test broker");
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// tansu on a loopback port, reachable (and advertised) only through socat's
/// TLS listener; both killed on drop.
struct TlsBroker {
    tansu: Child,
    tls: Child,
    /// The TLS address: the only one clients learn.
    addr: String,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl TlsBroker {
    fn start(bin: &Path, pki: &Pki) -> TlsBroker {
        let (plain, tls) = (free_port(), free_port());
        let listen = format!("tcp://127.0.0.1:{plain}");
        let advertised = format!("tcp://127.0.0.1:{tls}");
        let tansu = Command::new(bin)
            .args(["broker", "--listener-url", &listen])
            .args(["--advertised-listener-url", &advertised])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(&format!("127.0.0.1:{plain}"));
        let tls_child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{tls},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
                pki.path("server.pem"),
                pki.path("server.key")
            ))
            .arg(format!("TCP:127.0.0.1:{plain}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{tls}");
        wait_listening(&addr);
        TlsBroker {
            tansu,
            tls: tls_child,
            addr,
        }
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        for child in [&mut self.tls, &mut self.tansu] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A config for the TLS broker that trusts `ca`.
fn tls_config(addr: &str, ca: &str) -> Config {
    let mut c = Config::default();
    c.kafka.brokers = addr.to_string();
    c.kafka
        .client
        .insert("security.protocol".into(), "SSL".into());
    c.kafka.client.insert("ssl.ca.location".into(), ca.into());
    c.metrics.addr = String::new();
    c.processing.commit_interval_ms = 100;
    c
}

fn create_user_topics(config: &Config, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        fraudstream::config::client_config(config).create().unwrap();
    let k = &config.kafka;
    let names = [
        &k.input_topic,
        &k.labels_topic,
        &k.output_topic,
        &k.dlq_topic,
    ];
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for r in rt
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// Event id -> decisions committed on the output topic, read over TLS to its end.
fn decisions(config: &Config, partitions: i32) -> std::collections::HashMap<String, usize> {
    use rdkafka::message::Message;
    let c: BaseConsumer = fraudstream::config::client_config(config)
        .set("group.id", "tls-reader")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&config.kafka.output_topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let (mut open, mut seen) = (partitions, std::collections::HashMap::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while open > 0 {
        assert!(Instant::now() < deadline, "decisions not readable over TLS");
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
                *seen
                    .entry(v["event_id"].as_str().unwrap().to_string())
                    .or_insert(0) += 1;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
            _ => {}
        }
    }
    seen
}

fn produce(config: &Config, from: i64, n: i64) {
    let p: BaseProducer = fraudstream::config::client_config(config).create().unwrap();
    let now = now_ms();
    for i in from..from + n {
        let (key, payload) = event(
            &format!("e{i}"),
            &format!("a{}", i % 13),
            now - 9000 + i,
            4.0,
        );
        let rec = BaseRecord::to(&config.kafka.input_topic)
            .key(&key)
            .payload(&payload);
        p.send(rec).map_err(|(e, _)| e).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn decisions_flow_exactly_once_over_tls_and_the_wrong_ca_fails_the_start() {
    let Some(bin) = tansu() else { return };
    let pki = Pki::new("fraudstream test CA");
    let broker = TlsBroker::start(&bin, &pki);
    let config = tls_config(&broker.addr, &pki.path("ca.pem"));
    create_user_topics(&config, 2);
    produce(&config, 0, 400);
    let wait = || {
        let deadline = Instant::now() + Duration::from_secs(120);
        move |what: &str| assert!(Instant::now() < deadline, "timed out: {what}")
    };
    let first = Running::start(&config);
    let timeout = wait();
    while decisions(&config, 2).len() < 100 {
        timeout("first decisions over TLS");
    }
    let s1 = first.stop();
    // The restart reads the checkpoints and restores the state over TLS too.
    let second = Running::start(&config);
    produce(&config, 400, 100);
    let timeout = wait();
    while decisions(&config, 2).len() < 500 {
        timeout("every decision over TLS");
    }
    let s2 = second.stop();
    let seen = decisions(&config, 2);
    assert!(seen.values().all(|&k| k == 1), "a decision repeated");
    assert_eq!(s1.decided + s2.decided, 500);

    // The broker has no plaintext listener: a client without TLS gets nowhere.
    let mut plain = config.clone();
    plain.kafka.client.clear();
    plain.processing.kafka_timeout_ms = 2000;
    let err = fraudstream::pipeline::topics::survey(
        &plain,
        fraudstream::pipeline::topics::Create::Nothing,
    )
    .unwrap_err();
    assert!(matches!(err, TopicsError::Unreachable { .. }), "{err}");

    // Another CA: the handshake fails, the start says so, and it never gets ready.
    let other = Pki::new("some other CA");
    let mut wrong = tls_config(&broker.addr, &other.path("ca.pem"));
    wrong.processing.kafka_timeout_ms = 3000;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = Running::start(&wrong);
    let addr = running.serve_http(&rt);
    assert_eq!(
        fraudstream::ops::http::get(&addr, "/readyz").unwrap().0,
        503
    );
    let health = running.health.clone();
    let err = running.join().unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, PipelineError::Topics(TopicsError::Unreachable { .. })),
        "{msg}"
    );
    assert!(msg.contains("security.protocol=SSL"), "{msg}");
    assert!(
        msg.contains("SSL handshake failed") && msg.contains("certificate verify failed"),
        "{msg}"
    );
    assert!(!health.is_ready());
    assert_eq!(
        fraudstream::ops::http::get(&addr, "/readyz").unwrap().0,
        503
    );
}
