//! Callback tokens. Record keeps only the non-secret claims of Graph's callback JWT
//! (issuer, audience, app and tenant ids) in a recorded header, never its signature
//! or the raw token. Replay signs each notification with graphvcr's key from those
//! claims (rewritten for the session like any header) and fresh times from the
//! injected clock — or sends a fixed value, or nothing. Like Graph, it reuses a token
//! while it is fresh: one signature per claims set per [`TOKEN_REUSE_SECS`], not one
//! per notification (an RS256 signature was a third of a notification's CPU).

use std::sync::{Arc, Mutex};

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{Map, Value};

use super::keys::{unverified_claims, Signer};
use crate::clock::Clock;
use crate::graph::CALLBACK_CLAIMS_HEADER;
use crate::hash::Map as HashMap;
use crate::notify::Authorizer;
use crate::sync::lock;

/// Graph's callback issuer, used when a recording kept no claims.
pub const CALLBACK_ISSUER: &str = "https://api.botframework.com";

/// The claims of Graph's callback token a recording keeps: none is a secret.
pub const KEPT_CLAIMS: &[&str] = &[
    "iss",
    "aud",
    "appid",
    "azp",
    "tid",
    "http://schemas.microsoft.com/identity/claims/tenantid",
];

/// Lifetime of a signed callback token, seconds.
pub const CALLBACK_TOKEN_SECS: u64 = 3600;

/// How long a signed token is sent again for the same claims, seconds (it has most
/// of its lifetime left by then).
pub const TOKEN_REUSE_SECS: u64 = 300;

/// Claims sets whose tokens are kept (more: the cache starts over).
const TOKENS_KEPT: usize = 1024;

/// The kept claims of a bearer JWT in `incoming`'s `Authorization`, as compact JSON.
pub fn kept_claims(incoming: &HeaderMap) -> Option<String> {
    let auth = incoming.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let all = unverified_claims(token.trim())?;
    let kept: Map<String, Value> = all
        .into_iter()
        .filter(|(k, v)| KEPT_CLAIMS.contains(&k.as_str()) && (v.is_string() || v.is_array()))
        .collect();
    (!kept.is_empty()).then(|| Value::Object(kept).to_string())
}

/// The record-side hook: adds the kept claims of Graph's token (from the request as
/// it arrived) to the headers a notification is recorded with.
pub fn keep_callback_claims(incoming: &HeaderMap, recorded: &mut HeaderMap) {
    if let Some(v) = kept_claims(incoming).and_then(|c| HeaderValue::from_str(&c).ok()) {
        recorded.insert(CALLBACK_CLAIMS_HEADER, v);
    }
}

/// What replayed notifications carry in `Authorization`.
pub enum NotifyAuth {
    /// A token signed by graphvcr from the recorded claims (the default).
    Sign(Arc<Signer>),
    /// `--notify-auth VALUE` (set by the notifier) or `--notify-auth none`.
    Fixed,
}

/// The replay-side hook: turns a notification's recorded claims into a fresh token.
pub struct CallbackAuth {
    mode: NotifyAuth,
    clock: Arc<dyn Clock>,
    /// Recorded claims -> (issued at, `Bearer ...` value) of the token last signed.
    tokens: Mutex<HashMap<Box<str>, (u64, HeaderValue)>>,
}

impl CallbackAuth {
    pub fn new(mode: NotifyAuth, clock: Arc<dyn Clock>) -> CallbackAuth {
        CallbackAuth {
            mode,
            clock,
            tokens: Mutex::new(HashMap::default()),
        }
    }

    /// The `Authorization` value for notifications with these recorded claims: the
    /// token signed last while it is fresh, else a new one.
    fn bearer(&self, signer: &Signer, recorded: Option<&str>) -> Option<HeaderValue> {
        let now = self.clock.unix_ms() / 1000;
        let key = recorded.unwrap_or("");
        if let Some((at, v)) = lock(&self.tokens).get(key) {
            if now >= *at && now - *at < TOKEN_REUSE_SECS {
                return Some(v.clone());
            }
        }
        let v = match signer.sign(&self.claims(recorded)) {
            Ok(t) => HeaderValue::from_str(&format!("Bearer {t}")).ok()?,
            Err(e) => {
                tracing::error!("notification sent without a token: {e}");
                return None;
            }
        };
        let mut tokens = lock(&self.tokens);
        if tokens.len() >= TOKENS_KEPT {
            tokens.clear();
        }
        tokens.insert(key.into(), (now, v.clone()));
        Some(v)
    }

    /// The claims of a replayed callback token: the recorded ones (or Graph's issuer
    /// alone) with `iat`/`nbf`/`exp` from the clock.
    pub fn claims(&self, recorded: Option<&str>) -> Map<String, Value> {
        let mut c = recorded
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .unwrap_or_default();
        c.entry("iss").or_insert_with(|| Value::from(CALLBACK_ISSUER));
        let now = self.clock.unix_ms() / 1000;
        c.insert("iat".into(), Value::from(now));
        c.insert("nbf".into(), Value::from(now));
        c.insert("exp".into(), Value::from(now + CALLBACK_TOKEN_SECS));
        c
    }
}

impl Authorizer for CallbackAuth {
    fn authorize(&self, headers: &mut HeaderMap) {
        let recorded = headers.remove(CALLBACK_CLAIMS_HEADER);
        let NotifyAuth::Sign(signer) = &self.mode else {
            return;
        };
        if let Some(v) = self.bearer(signer, recorded.as_ref().and_then(|v| v.to_str().ok())) {
            headers.insert(AUTHORIZATION, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine as _;

    #[test]
    fn a_token_is_sent_again_while_fresh_and_signed_anew_after() {
        let signer = Arc::new(Signer::from_pem(&super::super::keys::generate_pem().unwrap()).unwrap());
        let clock = Arc::new(FixedClock::new(5_000_000));
        let auth = CallbackAuth::new(NotifyAuth::Sign(signer), clock.clone());
        let token = |claims: &str| {
            let mut h = HeaderMap::new();
            h.insert(CALLBACK_CLAIMS_HEADER, HeaderValue::from_str(claims).unwrap());
            auth.authorize(&mut h);
            assert!(!h.contains_key(CALLBACK_CLAIMS_HEADER), "the kept claims never go out");
            h[AUTHORIZATION].to_str().unwrap().to_string()
        };
        let (a, b) = (r#"{"aud":"app-a"}"#, r#"{"aud":"app-b"}"#);
        let first = token(a);
        clock.advance((TOKEN_REUSE_SECS - 1) * 1000);
        assert_eq!(token(a), first, "fresh: the same token again");
        assert_ne!(token(b), first, "other claims, another token");
        clock.advance(1000);
        let renewed = token(a);
        assert_ne!(renewed, first, "signed anew once it is older than the reuse window");
        let claims = unverified_claims(renewed.trim_start_matches("Bearer ")).unwrap();
        assert_eq!(claims["iat"].as_u64(), Some(5_000 + TOKEN_REUSE_SECS));
        assert_eq!(claims["aud"], "app-a");
    }

    #[test]
    fn only_the_listed_claims_are_kept_and_none_mode_sends_no_token() {
        let payload = r#"{"iss":"https://api.botframework.com","aud":"app-id","tid":"t","nonce":"n","exp":9}"#;
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl", B64.encode(payload));
        let mut incoming = HeaderMap::new();
        incoming.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let mut recorded = HeaderMap::new();
        keep_callback_claims(&incoming, &mut recorded);
        let kept = recorded[CALLBACK_CLAIMS_HEADER].to_str().unwrap().to_string();
        assert_eq!(
            kept,
            r#"{"iss":"https://api.botframework.com","aud":"app-id","tid":"t"}"#
        );
        let none = CallbackAuth::new(NotifyAuth::Fixed, Arc::new(FixedClock::new(1_000_000)));
        none.authorize(&mut recorded);
        assert!(recorded.is_empty(), "claims removed, no token added");
        let c = none.claims(Some(&kept));
        assert_eq!(
            (c["iat"].as_u64(), c["exp"].as_u64()),
            (Some(1000), Some(1000 + CALLBACK_TOKEN_SECS))
        );
    }
}
