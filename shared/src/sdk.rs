//! How every function (and the tools) configure the AWS SDK.
//!
//! One HTTPS stack for all clients: hyper 1 with rustls on `ring`. The SDK's
//! defaults would link `aws-lc-rs` (and, with its `rustls` feature, a second,
//! legacy hyper 0.14 / rustls 0.21 stack besides); one stack on `ring` keeps
//! the Lambda zips and cold starts small. Every crate turns the SDK's default
//! client off, so a config built elsewhere than here has no HTTP client and
//! fails loudly at its first request instead of silently linking another.
//!
//! Roots of trust: the functions only ever talk to AWS endpoints, whose
//! certificates chain to the Amazon Trust Services roots (Amazon Root CA 1-4,
//! and Starfield Services G2, which cross-signs them). Those five are taken
//! from Mozilla's list compiled in (`webpki-root-certs`); no other CA can
//! vouch for a DynamoDB or Secrets Manager endpoint. Reading the platform
//! store instead walks `/etc/ssl/certs` file by file and decodes every root:
//! about 5 ms of every cold start on this machine. [`TlsRoots::Platform`]
//! (`KEYGATE_TLS_ROOTS=platform`, read with the deployment's settings)
//! trusts the platform store instead, for an endpoint behind another CA.

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use base64::engine::{general_purpose::STANDARD, Engine};

/// Which certificate authorities the functions' HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// The Amazon Trust Services roots, compiled in.
    #[default]
    Amazon,
    /// The platform's certificate store (read once per process).
    Platform,
}

/// The config loader with the workspace's HTTP client; callers add
/// timeouts or retries and `load()` it.
pub fn loader(roots: TlsRoots) -> ConfigLoader {
    let roots = match roots {
        TlsRoots::Amazon => amazon_roots(),
        TlsRoots::Platform => TrustStore::default(),
    };
    // Building a context from a trust store cannot fail today; if it ever
    // did, the platform's roots are the safe fallback, not no TLS.
    let context = TlsContext::builder()
        .with_trust_store(roots)
        .build()
        .unwrap_or_default();
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(client)
}

/// The SDK configuration from the environment, with [`loader`]'s client.
pub async fn load(roots: TlsRoots) -> aws_config::SdkConfig {
    loader(roots).load().await
}

/// Subjects (common names) of the roots AWS endpoints chain to.
const AMAZON_ROOTS: [&str; 5] = [
    "Amazon Root CA 1",
    "Amazon Root CA 2",
    "Amazon Root CA 3",
    "Amazon Root CA 4",
    "Starfield Services Root Certificate Authority - G2",
];

/// Whether a certificate's DER names one of [`AMAZON_ROOTS`] (a root's
/// subject is its issuer too; no other root names them).
fn is_amazon_root(der: &[u8]) -> bool {
    AMAZON_ROOTS
        .iter()
        .any(|cn| memchr::memmem::find(der, cn.as_bytes()).is_some())
}

/// The Amazon roots, as the PEM the SDK's trust store takes.
fn amazon_roots() -> TrustStore {
    let mut store = TrustStore::empty();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        if is_amazon_root(cert) {
            store.add_pem_certificate(pem(cert));
        }
    }
    store
}

fn pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII: every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn every_bundled_root_reads_back_from_its_pem() {
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
        assert!(roots.len() > 100, "{} roots", roots.len());
        for root in roots {
            let text = pem(root);
            assert!(text.lines().all(|l| l.len() <= 64), "{text}");
            let back: Vec<CertificateDer> = CertificateDer::pem_slice_iter(text.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(back, vec![root.clone()]);
        }
    }

    #[test]
    fn exactly_the_five_amazon_trust_services_roots_are_trusted() {
        // What DynamoDB's and Secrets Manager's certificates chain to; a
        // root dropped from the list would fail here, not in production.
        let chosen: Vec<_> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter(|c| is_amazon_root(c))
            .collect();
        assert_eq!(chosen.len(), AMAZON_ROOTS.len());
        for cn in AMAZON_ROOTS {
            assert_eq!(
                chosen
                    .iter()
                    .filter(|c| is_amazon_root_named(c, cn))
                    .count(),
                1,
                "{cn}"
            );
        }
    }

    fn is_amazon_root_named(der: &[u8], cn: &str) -> bool {
        der.windows(cn.len()).any(|w| w == cn.as_bytes())
    }
}
