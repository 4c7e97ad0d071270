//! graphvcr's signing key: RSA-2048, generated once (the `rsa` crate: ring cannot
//! generate RSA keys), kept as PKCS#8 PEM, and used through ring to sign JWTs RS256.
//! Also its public form as a JWK (`kid` = RFC 7638 thumbprint).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::IdentityError;

/// Bits of a generated key.
pub const RSA_BITS: usize = 2048;

/// Tokens remembered by signing input: RS256 (PKCS#1 v1.5) is deterministic, so a
/// remembered token is the one signing again would give — at a fraction of the cost
/// (an RSA-2048 signature is ~1 ms; a burst of notifications within one clock second
/// carries the same claims).
const REMEMBERED_TOKENS: usize = 256;

/// Signs tokens with graphvcr's RSA key.
pub struct Signer {
    key: RsaKeyPair,
    rng: ring::rand::SystemRandom,
    kid: String,
    n: String,
    e: String,
    signed: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// A new RSA key as PKCS#8 PEM.
pub fn generate_pem() -> Result<String, IdentityError> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
        .map_err(|e| IdentityError::Key(format!("RSA key generation failed: {e}")))?;
    let pem = key
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| IdentityError::Key(format!("cannot encode the RSA key: {e}")))?;
    Ok(pem.to_string())
}

impl Signer {
    /// The signer for a PKCS#8 PEM RSA key.
    pub fn from_pem(pem: &str) -> Result<Signer, IdentityError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| IdentityError::Key(format!("the signing key is not PKCS#8 PEM: {e}")))?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| IdentityError::Key(format!("the signing key is not a usable RSA key: {e}")))?;
        let public = ring::signature::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
        let strip = |b: &[u8]| {
            b.iter()
                .position(|&x| x != 0)
                .map_or_else(Vec::new, |i| b[i..].to_vec())
        };
        let n = B64.encode(strip(&public.n));
        let e = B64.encode(strip(&public.e));
        // RFC 7638: the thumbprint of the required members in lexicographic order
        let thumb = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = B64.encode(Sha256::digest(thumb.as_bytes()));
        Ok(Signer {
            key,
            rng: ring::rand::SystemRandom::new(),
            kid,
            n,
            e,
            signed: Default::default(),
        })
    }

    /// The key id tokens name in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A compact JWT of `claims`, signed RS256 (PKCS#1 v1.5 is deterministic: the same
    /// claims give the same token).
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, IdentityError> {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let payload = serde_json::to_vec(claims).map_err(|e| IdentityError::Key(e.to_string()))?;
        let input = format!("{}.{}", B64.encode(header.to_string().as_bytes()), B64.encode(&payload));
        if let Some(t) = self.remembered(|m| m.get(&input).cloned()) {
            return Ok(t);
        }
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .map_err(|_| IdentityError::Key("RSA signing failed".into()))?;
        let token = format!("{input}.{}", B64.encode(&sig));
        self.remembered(|m| {
            if m.len() >= REMEMBERED_TOKENS {
                m.clear();
            }
            m.insert(input, token.clone())
        });
        Ok(token)
    }

    fn remembered<T>(&self, f: impl FnOnce(&mut std::collections::HashMap<String, String>) -> Option<T>) -> Option<T> {
        // a poisoned cache is only a cache: sign afresh
        self.signed.lock().ok().and_then(|mut m| f(&mut m))
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e})
    }

    /// The JWKS document: `{"keys": [jwk]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk()] })
    }
}

/// The claims of a compact JWT, read without checking its signature (graphvcr only
/// keeps some of them; it never trusts them).
pub fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_the_jwk() {
        let t0 = std::time::Instant::now();
        let pem = generate_pem().unwrap();
        let took = t0.elapsed();
        eprintln!("RSA-{RSA_BITS} key generation took {took:?}");
        let s = Signer::from_pem(&pem).unwrap();
        let mut claims = Map::new();
        claims.insert("aud".into(), Value::from("app"));
        let token = s.sign(&claims).unwrap();
        assert_eq!(token, s.sign(&claims).unwrap(), "remembered");
        let fresh = Signer::from_pem(&pem).unwrap();
        assert_eq!(token, fresh.sign(&claims).unwrap(), "deterministic: a fresh signature");
        let (input, sig) = token.rsplit_once('.').unwrap();
        let jwk = s.jwk();
        let part = |k: &str| B64.decode(jwk[k].as_str().unwrap()).unwrap();
        let public = ring::signature::RsaPublicKeyComponents {
            n: part("n"),
            e: part("e"),
        };
        public
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &B64.decode(sig).unwrap(),
            )
            .unwrap();
        assert_eq!(unverified_claims(&token).unwrap(), claims);
    }
}
