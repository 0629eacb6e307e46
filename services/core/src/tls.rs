//! What every TLS client here shares: one crypto provider, CA bundles read from PEM files,
//! and certificate failures told in one line.
//!
//! All three clients (sqlx, redis, reqwest for Elasticsearch) are built on rustls with the
//! `ring` provider; no crate here enables `aws-lc-rs`, so only one provider is compiled in.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Once;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::{Error, Result};

/// Makes `ring` the process-wide rustls provider. sqlx and reqwest pick theirs explicitly, but
/// the redis crate builds its config from the process default, which rustls refuses to guess
/// if a dependency ever compiles in a second provider: installing it here keeps that a
/// non-event. Idempotent; the binary calls it at start, the Redis helper before connecting.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only when another provider was installed first, which then is used as is.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Reads a PEM bundle of CA certificates for `setting`; a missing file, an unreadable one or
/// one without a single parsable `CERTIFICATE` block is a configuration error naming both.
pub fn read_ca_bundle(setting: &str, path: &Path) -> Result<Vec<u8>> {
    let pem = std::fs::read(path).map_err(|err| {
        Error::Config(format!("{setting}: cannot read {}: {err}", path.display()))
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| {
            Error::Config(format!(
                "{setting}: {} is not a PEM CA bundle: {err}",
                path.display()
            ))
        })?;
    if certificates.is_empty() {
        return Err(Error::Config(format!(
            "{setting}: {} is not a PEM CA bundle (no CERTIFICATE block)",
            path.display()
        )));
    }
    Ok(pem)
}

/// How rustls words a rejected server certificate (`rustls::Error::InvalidCertificate`).
const INVALID_PEER_CERTIFICATE: &str = "invalid peer certificate: ";

/// The rustls verdict on the peer's certificate (unknown issuer, expired, wrong name…) when
/// that is what made `err` fail, found anywhere in its chain of causes. Client libraries wrap
/// it in I/O errors whose `source()` skips the wrapped error, so those are unwrapped by hand;
/// the redis crate keeps it behind an `Arc` no downcast can see through, so an error whose
/// text carries rustls' wording counts too.
pub fn certificate_problem(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = next {
        let text = current.to_string();
        if let Some(at) = text.find(INVALID_PEER_CERTIFICATE) {
            let problem = &text[at..];
            return Some(problem.lines().next().unwrap_or(problem).to_owned());
        }
        if let Some(rustls) = current.downcast_ref::<rustls::Error>() {
            return match rustls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType => Some(rustls.to_string()),
                _ => None,
            };
        }
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => current.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_names_the_setting_and_the_path() {
        let err = read_ca_bundle("CHAT_REDIS_CA_FILE", Path::new("/nonexistent/ca.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("CHAT_REDIS_CA_FILE: cannot read /nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_certificates_is_not_a_ca_bundle() {
        let dir = std::env::temp_dir().join(format!("chat-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("not-pem.txt");
        std::fs::write(&file, "just some text\n").unwrap();
        let err = read_ca_bundle("CHAT_DATABASE_CA_FILE", &file)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("CHAT_DATABASE_CA_FILE: "), "{err}");
        assert!(err.contains("not a PEM CA bundle"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn certificate_problems_are_found_behind_io_errors() {
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls);
        let problem = certificate_problem(&io).expect("found");
        assert!(problem.contains("UnknownIssuer"), "{problem}");
        let other = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(certificate_problem(&other), None);
    }
}
