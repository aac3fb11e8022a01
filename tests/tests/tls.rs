//! The functions' HTTPS client (`keygate::sdk`) verifies certificates: an
//! endpoint whose certificate chains to a CA outside the trusted roots is
//! refused before any request is sent, and is reached once its CA is trusted
//! (through the platform-store opt-out, `KEYGATE_TLS_ROOTS=platform`).
//!
//! One test in its own process: it points the platform store at its CA
//! (`SSL_CERT_FILE`), which the SDK reads once per process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::{Credentials, Region};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use keygate::sdk::TlsRoots;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A DynamoDB stand-in on 127.0.0.1 over TLS with a certificate from a
/// fresh CA; answers every request with an empty table list and counts them.
/// Returns its port, the CA's PEM and the request counter.
async fn tls_endpoint() -> (u16, String, Arc<AtomicUsize>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "keygate test CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                // A refused handshake ends here: nothing was served.
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req: Request<_>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        Response::builder()
                            .header("content-type", "application/x-amz-json-1.0")
                            .body(Full::new(Bytes::from_static(br#"{"TableNames":[]}"#)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca_pem, served)
}

async fn list_tables(port: u16, roots: TlsRoots) -> Result<Vec<String>, String> {
    let sdk = keygate::sdk::loader(roots)
        .endpoint_url(format!("https://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&sdk)
        .list_tables()
        .send()
        .await
        .map(|out| out.table_names.unwrap_or_default())
        .map_err(|e| format!("{:?}", aws_sdk_dynamodb::Error::from(e)))
}

#[tokio::test]
async fn only_endpoints_chaining_to_a_trusted_root_are_reached() {
    let (port, ca_pem, served) = tls_endpoint().await;

    // The default roots (Amazon's): the test CA is unknown.
    let refused = list_tables(port, TlsRoots::Amazon).await.unwrap_err();
    assert!(
        refused.to_lowercase().contains("certificate") || refused.contains("UnknownIssuer"),
        "refused for another reason: {refused}"
    );
    assert_eq!(served.load(Ordering::SeqCst), 0, "a request went through");

    // The platform store, pointed at the test CA only.
    let dir = std::env::temp_dir().join(format!("keygate-tls-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
    std::env::set_var("SSL_CERT_FILE", dir.join("ca.pem"));
    std::env::set_var("SSL_CERT_DIR", dir.join("certs"));
    let listed = list_tables(port, TlsRoots::Platform).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(listed, Ok(vec![]));
    assert!(served.load(Ordering::SeqCst) >= 1);
}
