//! A throwaway CA (rcgen) and a server certificate for 127.0.0.1/localhost signed by it.

use std::path::PathBuf;
use std::sync::Arc;

/// A CA and a server certificate for 127.0.0.1/localhost signed by it.
pub struct TestPki {
    pub ca_pem: PathBuf,
    pub server: Arc<rustls::ServerConfig>,
    _dir: tempfile::TempDir,
}

pub fn pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "graphvcr test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, "graph.test");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).expect("write ca");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TestPki {
        ca_pem,
        server: Arc::new(server),
        _dir: dir,
    }
}
