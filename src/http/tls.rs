//! Server-side TLS: a certificate authority that issues leaf certificates (rcgen,
//! ECDSA P-256), an SNI resolver that hands out one leaf per allowed name (issued on
//! first use, then cached) and refuses unknown names, rustls server configs with ALPN
//! `h2` + `http/1.1`, and the one-byte check that tells a TLS client from a plain one.
//! Knows nothing about Graph.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::clock::{self, Clock};
use crate::sync::lock;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {detail}")]
    Read {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("certificate authority: {0}")]
    Ca(String),
    #[error("cannot issue a certificate for `{name}`: {detail}")]
    Issue { name: String, detail: String },
    #[error("TLS set-up failed: {0}")]
    Config(String),
}

/// The ALPN protocols every TLS listener offers, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The first byte of every TLS connection (a handshake record).
pub const TLS_HANDSHAKE: u8 = 0x16;

/// A certificate authority able to sign leaves: its certificate (as clients trust
/// it) and its key.
pub struct LocalCa {
    /// Issuer for rcgen: the same name and key as the trusted certificate.
    issuer: rcgen::Certificate,
    key: KeyPair,
    cert_pem: String,
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

fn ca_params(common_name: &str) -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| TlsError::Ca(e.to_string()))?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "graphvcr");
    p.distinguished_name = dn;
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(p)
}

/// Valid from the day before `now_ms` until `days` after it.
fn validity(p: &mut CertificateParams, now_ms: u64, days: i64) {
    let at = |offset: i64| {
        let (y, m, d) = clock::civil_date(now_ms, offset);
        rcgen::date_time_ymd(i32::try_from(y).unwrap_or(2000), m as u8, d as u8)
    };
    p.not_before = at(-1);
    p.not_after = at(days);
}

impl LocalCa {
    /// A new CA named `common_name`, valid for ten years from `now_ms`. Returns the CA
    /// and its key as PKCS#8 PEM (for the caller to keep).
    pub fn generate(common_name: &str, now_ms: u64) -> Result<(LocalCa, String), TlsError> {
        let key = KeyPair::generate().map_err(|e| TlsError::Ca(e.to_string()))?;
        let mut p = ca_params(common_name)?;
        validity(&mut p, now_ms, 3650);
        let cert = p.self_signed(&key).map_err(|e| TlsError::Ca(e.to_string()))?;
        let key_pem = key.serialize_pem();
        let ca = LocalCa {
            cert_pem: cert.pem(),
            issuer: cert,
            key,
        };
        Ok((ca, key_pem))
    }

    /// The CA `generate` made, from its certificate and key PEM. The issuer is rebuilt
    /// from the same name and key, so leaves chain to the certificate clients trust.
    pub fn from_pem(common_name: &str, cert_pem: &str, key_pem: &str) -> Result<LocalCa, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Ca(format!("bad CA key: {e}")))?;
        let issuer = ca_params(common_name)?
            .self_signed(&key)
            .map_err(|e| TlsError::Ca(e.to_string()))?;
        Ok(LocalCa {
            issuer,
            key,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A leaf for `name` (a DNS name or an IP address), valid for a year from `now_ms`.
    pub fn issue(&self, names: &[String], now_ms: u64) -> Result<CertifiedKey, TlsError> {
        let shown = names.join(", ");
        let err = |e: rcgen::Error| TlsError::Issue {
            name: shown.clone(),
            detail: e.to_string(),
        };
        let key = KeyPair::generate().map_err(err)?;
        let mut p = CertificateParams::new(names.to_vec()).map_err(err)?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, names.first().map_or("graphvcr", String::as_str));
        validity(&mut p, now_ms, 365);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.issuer, &self.key).map_err(err)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| TlsError::Issue {
            name: shown.clone(),
            detail: e.to_string(),
        })?;
        Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
    }
}

/// Serves a leaf per allowed SNI name, issued from the CA on first use and cached; a
/// client sending no SNI (it dialled an IP address) gets the leaf for `default_names`.
/// Any other name is refused (the handshake fails, and the refusal is logged).
pub struct LeafResolver {
    ca: Arc<LocalCa>,
    allowed: HashSet<String>,
    default_names: Vec<String>,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl fmt::Debug for LeafResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeafResolver")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl LeafResolver {
    /// `allowed`: the names a client may ask for by SNI (case-insensitive).
    pub fn new(ca: Arc<LocalCa>, allowed: &[String], default_names: &[String], clock: Arc<dyn Clock>) -> Self {
        LeafResolver {
            ca,
            allowed: allowed.iter().map(|n| n.to_ascii_lowercase()).collect(),
            default_names: default_names.to_vec(),
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The leaf for `name` (`None`: the no-SNI default), issuing it if needed.
    pub fn leaf(&self, name: Option<&str>) -> Result<Arc<CertifiedKey>, TlsError> {
        let key = name.map_or_else(String::new, str::to_ascii_lowercase);
        if let Some(k) = lock(&self.cache).get(&key) {
            return Ok(k.clone());
        }
        let names = match name {
            Some(_) => vec![key.clone()],
            None => self.default_names.clone(),
        };
        let issued = Arc::new(self.ca.issue(&names, self.clock.unix_ms())?);
        tracing::debug!(names = %names.join(", "), "issued a leaf certificate");
        Ok(lock(&self.cache).entry(key).or_insert(issued).clone())
    }

    /// Whether a client may ask for `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.allowed.contains(&name.to_ascii_lowercase())
    }
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name();
        if let Some(n) = name {
            if !self.allows(n) {
                tracing::warn!(
                    "TLS: refused a handshake for `{n}`: graphvcr has no certificate for that name \
                     (add it with --tls-name or --intercept)"
                );
                return None;
            }
        }
        match self.leaf(name) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::error!("TLS: {e}");
                None
            }
        }
    }
}

fn with_alpn(mut c: rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    c.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

fn builder() -> Result<rustls::ConfigBuilder<rustls::ServerConfig, rustls::WantsVerifier>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// A server config whose certificates come from `resolver`.
pub fn resolver_config(resolver: Arc<LeafResolver>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(with_alpn(builder()?.with_no_client_auth().with_cert_resolver(resolver)))
}

/// A server config from a PEM certificate chain and its PEM private key.
pub fn file_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |what: &'static str, path: &Path, detail: String| TlsError::Read {
        what,
        path: path.display().to_string(),
        detail,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read("certificate", cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(read("certificate", cert, "no certificate in it".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| read("private key", key, e.to_string()))?;
    let c = builder()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Config(format!("{} and {}: {e}", cert.display(), key.display())))?;
    Ok(with_alpn(c))
}

/// What a client that sent plain HTTP to a TLS port is told before the connection
/// closes: a plain-HTTP `400` saying so.
pub fn plain_on_tls_reply() -> Vec<u8> {
    let body = "graphvcr: this port speaks TLS: use an https:// URL here, not http://\n";
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    #[test]
    fn leaves_are_cached_per_name_and_unknown_names_refused() {
        let (ca, key) = LocalCa::generate("graphvcr test CA", 1_795_773_600_000).unwrap();
        let again = LocalCa::from_pem("graphvcr test CA", ca.cert_pem(), &key).unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let r = LeafResolver::new(
            Arc::new(again),
            &["graph.microsoft.com".to_string()],
            &names,
            Arc::new(FixedClock::new(1_795_773_600_000)),
        );
        let t0 = std::time::Instant::now();
        let a = r.leaf(Some("graph.microsoft.com")).unwrap();
        let issued = t0.elapsed();
        let t1 = std::time::Instant::now();
        let b = r.leaf(Some("GRAPH.microsoft.com")).unwrap();
        eprintln!("leaf issued in {issued:?}, served from cache in {:?}", t1.elapsed());
        assert!(Arc::ptr_eq(&a, &b));
        assert!(r.allows("graph.microsoft.com") && !r.allows("example.com"));
        assert!(r.leaf(None).is_ok());
    }
}
