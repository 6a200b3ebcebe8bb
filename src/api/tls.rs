//! TLS for the decision API (rustls): the server's certificate and key
//! (`[api] tls_cert`, `tls_key`) and, for mutual TLS, the CA that must sign
//! every client's certificate (`tls_client_ca`). The files are read and checked
//! when the API starts; a bad one stops the start with the file and what was
//! expected, never a panic.

use crate::config::ApiConfig;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// A TLS file that cannot serve: which key named it, the file, and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("api.{key} = {file}: cannot read it: {source}")]
    Read {
        /// The `[api]` key.
        key: &'static str,
        /// The path it gives.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but does not hold what it should.
    #[error("api.{key} = {file}: expected {expected}")]
    Invalid {
        /// The `[api]` key.
        key: &'static str,
        /// The path it gives.
        file: String,
        /// What it should hold, and what was wrong.
        expected: String,
    },
}

/// The acceptor `[api]` configures: `None` for plain HTTP (no `tls_cert`).
pub fn acceptor(api: &ApiConfig) -> Result<Option<TlsAcceptor>, TlsError> {
    if api.tls_cert.is_empty() {
        return Ok(None);
    }
    let provider = Arc::new(default_provider());
    let certs = certificates("tls_cert", &api.tls_cert)?;
    let key = private_key(&api.tls_key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(no_protocol(api))?;
    let builder = if api.tls_client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let file = &api.tls_client_ca;
        let roots = client_ca(file)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| invalid("tls_client_ca", file, format!("CA certificates ({e})")))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| match e {
        rustls::Error::InvalidCertificate(_) => invalid(
            "tls_cert",
            &api.tls_cert,
            format!("a valid certificate, first the server's ({e})"),
        ),
        e => invalid(
            "tls_key",
            &api.tls_key,
            format!("the private key of the certificate in api.tls_cert ({e})"),
        ),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// The client side of forwarding between instances when `[api]` serves TLS
/// (`None` without `tls_cert`): trusts an owner whose certificate `tls_client_ca`
/// signed (the group's CA, which also signs every instance's certificate) and
/// presents this instance's `tls_cert` and `tls_key` as its client certificate.
pub fn forward_client(api: &ApiConfig) -> Result<Option<ClientConfig>, TlsError> {
    if api.tls_cert.is_empty() {
        return Ok(None);
    }
    let roots = client_ca(&api.tls_client_ca)?;
    let certs = certificates("tls_cert", &api.tls_cert)?;
    let key = private_key(&api.tls_key)?;
    let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(no_protocol(api))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| {
            invalid(
                "tls_key",
                &api.tls_key,
                format!("the private key of the certificate in api.tls_cert ({e})"),
            )
        })?;
    Ok(Some(config))
}

/// The error for protocol versions the provider cannot serve (not with ring).
fn no_protocol(api: &ApiConfig) -> impl Fn(rustls::Error) -> TlsError + '_ {
    |e| {
        invalid(
            "tls_cert",
            &api.tls_cert,
            format!("a usable protocol ({e})"),
        )
    }
}

/// The CA certificates of `tls_client_ca` (`file`), as a root store.
fn client_ca(file: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("tls_client_ca", file)? {
        roots
            .add(cert)
            .map_err(|e| invalid("tls_client_ca", file, format!("CA certificates ({e})")))?;
    }
    Ok(roots)
}

fn read(key: &'static str, file: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        key,
        file: file.to_string(),
        source,
    })
}

fn invalid(key: &'static str, file: &str, expected: String) -> TlsError {
    TlsError::Invalid {
        key,
        file: file.to_string(),
        expected,
    }
}

/// The certificates of a PEM file: at least one, each well-formed.
fn certificates(key: &'static str, file: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, file)?;
    let expected = |why: String| {
        invalid(
            key,
            file,
            format!("PEM certificates (-----BEGIN CERTIFICATE-----); {why}"),
        )
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| expected(e.to_string()))?;
    if certs.is_empty() {
        return Err(expected("found none".into()));
    }
    Ok(certs)
}

fn private_key(file: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("tls_key", file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        invalid(
            "tls_key",
            file,
            format!("a PEM private key (PKCS#8, PKCS#1 or SEC1); {e}"),
        )
    })
}
