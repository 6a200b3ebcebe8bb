//! The decision API over TLS (`[api] tls_cert`, `tls_key`, `tls_client_ca`),
//! with certificates made here: with a client CA only clients whose
//! certificate it signed are served; plain HTTP to the TLS port harms nothing;
//! the bearer token still applies; bad files are refused at start, by name.

mod common;

use common::api::{ApiProcessor, Response};
use common::{read_until, Cluster, Output};
use fraudstream::config::Config;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A CA, and certificates it signs, as PEM.
struct Ca {
    cert: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, as PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap().pem();
        Ca {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    fn sign(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        self.sign_for(name, vec![usage])
    }

    /// An instance's certificate: served to clients, and presented to the
    /// instances it forwards calls to.
    fn sign_for_both(&self, name: &str) -> Leaf {
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        self.sign_for(name, vec![ServerAuth, ClientAuth])
    }

    fn sign_for(&self, name: &str, usages: Vec<ExtendedKeyUsagePurpose>) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &self.issuer).unwrap().pem();
        Leaf {
            cert,
            key: key.serialize_pem(),
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The files of a server signed by `server_ca`, requiring clients of `client_ca`.
fn tls_files(dir: &Path, server_ca: &Ca, client_ca: &Ca) -> (String, String, String) {
    let server = server_ca.sign("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    (
        write(dir, "server.pem", &server.cert),
        write(dir, "server.key", &server.key),
        write(dir, "clients-ca.pem", &client_ca.cert),
    )
}

/// POSTs `body` over TLS, trusting `server_ca`, presenting `client` if given.
fn tls_post(
    addr: &str,
    server_ca: &Ca,
    client: Option<&Leaf>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.cert.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    common::api::exchange(&mut s, "localhost", "/v1/decisions", headers, body)
}

fn payment(id: &str) -> Vec<u8> {
    let ts = fraudstream::source::time::now_ms() - 1000;
    format!(
        r#"{{"event_id":"{id}","ts":{ts},"account_id":"acc-tls","terminal_id":"t-1","amount":25.5,"currency":"EUR"}}"#
    )
    .into_bytes()
}

fn api_config(cluster: &Cluster, dir: &Path, tls: (String, String, String)) -> Config {
    let mut c = cluster.config.clone();
    c.api.addr = "127.0.0.1:0".into();
    c.api.bearer_token = "s3cret".into();
    (c.api.tls_cert, c.api.tls_key, c.api.tls_client_ca) = tls;
    c.api.timeout_ms = 30_000;
    c.rules.dir = dir.join("rules").display().to_string();
    std::fs::create_dir_all(&c.rules.dir).unwrap();
    c.processing.commit_interval_ms = 20;
    c
}

#[test]
fn with_a_client_ca_only_clients_it_signed_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca, other_ca) =
        (Ca::new("servers"), Ca::new("clients"), Ca::new("other"));
    let cluster = Cluster::start(2);
    let config = api_config(
        &cluster,
        dir.path(),
        tls_files(dir.path(), &server_ca, &client_ca),
    );
    let api = ApiProcessor::start(&config);
    api.wait_ready();
    let good = client_ca.sign("payments-gateway", ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = other_ca.sign("payments-gateway", ExtendedKeyUsagePurpose::ClientAuth);
    let auth = [("Authorization", "Bearer s3cret")];

    let r = tls_post(&api.addr, &server_ca, Some(&good), &auth, &payment("tls-1")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["event_id"], "tls-1");
    // The token still applies over mutual TLS.
    let r = tls_post(&api.addr, &server_ca, Some(&good), &[], &payment("tls-2")).unwrap();
    assert_eq!(r.status, 401, "{}", r.body);

    // No certificate, or one another CA signed: no HTTP at all.
    for client in [None, Some(&stranger)] {
        let r = tls_post(&api.addr, &server_ca, client, &auth, &payment("tls-3"));
        assert!(r.is_err(), "served: {r:?}");
    }
    // Plain HTTP to the TLS port: refused, nothing else is disturbed.
    let plain = common::api::post(&api.addr, "/v1/decisions", &auth, &payment("tls-4"));
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|r| r.status != 200),
        "{plain:?}"
    );
    // The server counts a failed handshake after the client has given up on it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while api.metrics.http_tls_errors.get() < 3 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(api.metrics.http_tls_errors.get() >= 3);

    let r = tls_post(&api.addr, &server_ca, Some(&good), &auth, &payment("tls-5")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let mut reader = cluster.reader();
    let mut out = Output::default();
    read_until(&mut reader, &mut out, Duration::from_secs(60), |o| {
        o.decisions.contains_key("tls-5")
    });
    assert!(!out.decisions.contains_key("tls-3") && !out.decisions.contains_key("tls-4"));
    api.stop();
}

/// Each bad file stops the start with its key, its path and what was expected.
#[test]
fn bad_tls_files_are_refused_at_start_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("servers");
    let (cert, key, client_ca) = tls_files(d, &ca, &ca);
    let other_key = write(
        d,
        "other.key",
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let garbage = write(
        d,
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    let empty = write(d, "empty.pem", "");
    let junk_der = write(
        d,
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    );
    let missing = d.join("missing.pem").display().to_string();
    let cases: [(&str, &str, &str, &str, &str); 7] = [
        (&missing, &key, "", "api.tls_cert", "cannot read it"),
        (
            &empty,
            &key,
            "",
            "api.tls_cert",
            "expected PEM certificates",
        ),
        (
            &garbage,
            &key,
            "",
            "api.tls_cert",
            "expected PEM certificates",
        ),
        (
            &cert,
            &empty,
            "",
            "api.tls_key",
            "expected a PEM private key",
        ),
        (
            &cert,
            &other_key,
            "",
            "api.tls_key",
            "expected the private key of the certificate",
        ),
        (
            &cert,
            &key,
            &empty,
            "api.tls_client_ca",
            "expected PEM certificates",
        ),
        (
            &cert,
            &key,
            &junk_der,
            "api.tls_client_ca",
            "expected CA certificates",
        ),
    ];
    for (cert, key, client_ca, bad_key, expected) in cases {
        let mut api = Config::default().api;
        (api.tls_cert, api.tls_key, api.tls_client_ca) =
            (cert.into(), key.into(), client_ca.into());
        let err = fraudstream::api::tls::acceptor(&api)
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_else(|| panic!("accepted {bad_key}"));
        let file = match bad_key {
            "api.tls_cert" => cert,
            "api.tls_key" => key,
            _ => client_ca,
        };
        assert!(
            err.starts_with(&format!("{bad_key} = {file}: ")) && err.contains(expected),
            "{err}"
        );
    }
    let mut api = Config::default().api;
    (api.tls_cert, api.tls_key, api.tls_client_ca) = (cert, key, client_ca);
    assert!(fraudstream::api::tls::acceptor(&api).unwrap().is_some());
}

/// Two instances of a group with mutual TLS, each certificate signed by the
/// group's CA (also `tls_client_ca`) for server and client use: a call sent to
/// either is decided by its account's owner, forwarded over TLS where needed.
#[test]
fn calls_are_forwarded_between_instances_over_mutual_tls() {
    use fraudstream::api::forward::DECIDED_BY;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("group");
    let cluster = Cluster::start_with(4, |c| {
        // So the mock cluster has the owners topic (it cannot create topics).
        c.api.addr = "127.0.0.1:0".into();
        c.api.advertised_url = "http://127.0.0.1:1".into();
    });
    let instance = |id: &str| {
        let leaf = ca.sign_for_both("localhost");
        let d = dir.path().join(id);
        std::fs::create_dir_all(&d).unwrap();
        let tls = (
            write(&d, "instance.pem", &leaf.cert),
            write(&d, "instance.key", &leaf.key),
            write(&d, "group-ca.pem", &ca.cert),
        );
        let c = api_config(&cluster, dir.path(), tls);
        common::api::as_instance(c, id, "https://localhost")
    };
    let (a, b) = (
        ApiProcessor::start(&instance("a")),
        ApiProcessor::start(&instance("b")),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while a.metrics.assigned_partitions.get() + b.metrics.assigned_partitions.get() != 4
        || a.metrics.assigned_partitions.get() == 0
        || b.metrics.assigned_partitions.get() == 0
    {
        assert!(std::time::Instant::now() < deadline, "never both assigned");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.wait_ready();
    b.wait_ready();
    let gateway = ca.sign("payments-gateway", ExtendedKeyUsagePurpose::ClientAuth);
    let auth = [("Authorization", "Bearer s3cret")];
    let mut deciders = std::collections::HashSet::new();
    for acc in 0..8 {
        let body = String::from_utf8(payment(&format!("m{acc}")))
            .unwrap()
            .replace("acc-tls", &format!("acc-{acc}"));
        // 503 while the owners table catches up; then the owner's decision.
        let r = loop {
            assert!(std::time::Instant::now() < deadline, "never answered");
            let r = tls_post(&a.addr, &ca, Some(&gateway), &auth, body.as_bytes()).unwrap();
            if r.status != 503 {
                break r;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(r.status, 200, "{}", r.body);
        deciders.insert(r.header(DECIDED_BY).expect("says who decided"));
    }
    assert!(deciders.contains("b"), "none forwarded: {deciders:?}");
    let forwarded = |outcome: &str| a.metrics.api_forwarded.with_label_values(&[outcome]).get();
    assert!(forwarded("decided") > 0, "forwarded over TLS");
    assert_eq!(forwarded("unreachable"), 0);
    a.stop();
    b.stop();
}
