//! TLS to PostgreSQL with rustls (the stack wasmtime-wasi-http already brings),
//! through tokio-postgres-rustls, which also gives the server's certificate hash
//! for SCRAM channel binding (so a man in the middle cannot relay a password login
//! even where the certificate itself is not checked).
//!
//! What is checked follows libpq's `sslmode` (see `SslMode`): `prefer` and
//! `require` encrypt without checking the certificate, unless `sslrootcert` names a
//! file, which makes them check the chain as libpq does with a root certificate
//! file; `verify-ca` checks the chain; `verify-full` checks the chain and that the
//! certificate names the host connected to (the URL's host, not `hostaddr`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::database_url::{RootCerts, SslMode, TlsSettings};

/// The connector every pooled connection uses. With `sslmode=disable` it is never
/// asked to connect (tokio-postgres does not start TLS), so it does not matter
/// what it would check.
pub fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect> {
    // The provider is named rather than taken from the process default: the
    // default is only set when exactly one provider is compiled in.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions for PostgreSQL")?;
    let algorithms = provider.signature_verification_algorithms;
    let roots = match &settings.roots {
        RootCerts::Unset if settings.mode == SslMode::VerifyFull => Some(public_roots()),
        RootCerts::Unset => None,
        RootCerts::System => Some(public_roots()),
        RootCerts::File(path) => Some(roots_from_file(path)?),
    };
    let config = match (settings.mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => {
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (_, roots) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NameUnchecked {
                roots: roots.map(Arc::new),
                algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The Mozilla roots built in (webpki-roots), for `sslrootcert=system`.
fn public_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn roots_from_file(path: &Path) -> Result<RootCertStore> {
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading sslrootcert {shown}"))?
    {
        let cert = cert.with_context(|| format!("reading sslrootcert {shown}"))?;
        roots.add(cert).with_context(|| {
            format!("sslrootcert {shown} holds a certificate that does not parse")
        })?;
    }
    if roots.is_empty() {
        bail!("sslrootcert {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    Ok(roots)
}

/// Every mode but `verify-full`: the certificate's name is not checked.
/// - With `roots` (`verify-ca`, and `prefer`/`require` with an `sslrootcert`
///   file), the certificate must chain to one of them.
/// - Without (`prefer` and `require` without `sslrootcert`, as in libpq), any
///   certificate is taken: encrypted, but not authenticated.
///
/// Either way the handshake's signatures are checked against the certificate, so
/// the channel binding that tokio-postgres-rustls derives from it holds.
#[derive(Debug)]
struct NameUnchecked {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NameUnchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
