//! Identity: graphvcr's local CA and signing key (kept in `--ca-dir`), the tokens it
//! signs (offline access tokens for bots, callback tokens on replayed notifications),
//! the documents that let clients check them (OpenID configurations, JWKS), and the
//! policy for what of Graph's callback token a recording keeps. `files` owns the
//! directory, `keys` the RSA key, `documents` the JSON clients read, `callback` the
//! callback-token hooks, `face` the HTTP answers.

mod callback;
mod documents;
mod face;
mod files;
mod keys;

pub use callback::{keep_callback_claims, kept_claims, CallbackAuth, NotifyAuth, CALLBACK_ISSUER, KEPT_CLAIMS};
pub use face::{
    IdentityFace, CALLBACK_KEYS_PATH, CALLBACK_METADATA_HOST, CALLBACK_METADATA_PATH, LOCAL_KEYS_PATH,
    LOCAL_METADATA_PATH, LOGIN_HOST,
};
pub use files::{CA_CERT, CA_KEY, SIGNING_KEY};
pub use keys::{unverified_claims, Signer, RSA_BITS};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;
use crate::http::tls::{LocalCa, TlsError};

/// The CA's name, in its certificate and in every leaf's issuer.
pub const CA_NAME: &str = "graphvcr local CA";

/// Why the identity material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("--ca-dir: {path}: {detail}")]
    Io { path: String, detail: String },
    #[error("signing key: {0}")]
    Key(String),
    #[error("--ca-dir: {0}")]
    Tls(#[from] TlsError),
}

/// The CA and signing key of one `--ca-dir`.
pub struct Identity {
    ca: Arc<LocalCa>,
    ca_path: PathBuf,
    signer: Arc<Signer>,
}

/// The CA certificate's path in `dir`.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join(CA_CERT)
}

impl Identity {
    /// The material in `dir`, created (CA, CA key, signing key) on first use.
    pub fn load_or_create(dir: &Path, clock: &dyn Clock) -> Result<Identity, IdentityError> {
        let now = clock.unix_ms();
        let (m, created) = files::load_or_create(dir, || {
            let (ca, ca_key) = LocalCa::generate(CA_NAME, now)?;
            Ok(files::Material {
                ca_cert: ca.cert_pem().to_string(),
                ca_key,
                signing_key: keys::generate_pem()?,
            })
        })?;
        if created {
            tracing::info!("created graphvcr's CA and signing key in {}", dir.display());
        }
        Ok(Identity {
            ca: Arc::new(LocalCa::from_pem(CA_NAME, &m.ca_cert, &m.ca_key)?),
            ca_path: ca_cert_path(dir),
            signer: Arc::new(Signer::from_pem(&m.signing_key)?),
        })
    }

    pub fn ca(&self) -> &Arc<LocalCa> {
        &self.ca
    }

    /// Where the CA certificate clients should trust is.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    pub fn signer(&self) -> &Arc<Signer> {
        &self.signer
    }
}
