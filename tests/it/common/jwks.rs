//! Checking a JWT the way a validating client does: RS256 against the key of its
//! `kid` in a JWKS document.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde_json::Value;

/// The token's claims when its signature verifies against `jwks`; panics otherwise.
pub fn verify(token: &str, jwks: &Value) -> Value {
    let (input, sig) = token.rsplit_once('.').expect("a compact JWT");
    let header: Value = serde_json::from_slice(&B64.decode(input.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("no key {} in {jwks}", header["kid"]));
    let part = |k: &str| B64.decode(key[k].as_str().expect("jwk member")).expect("base64url");
    ring::signature::RsaPublicKeyComponents {
        n: part("n"),
        e: part("e"),
    }
    .verify(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        input.as_bytes(),
        &B64.decode(sig).expect("signature"),
    )
    .expect("the signature verifies against the JWKS");
    let payload = input.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}
