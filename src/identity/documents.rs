//! The documents clients read to get and check graphvcr's tokens: Azure AD's tenant
//! OpenID configuration and instance discovery (what MSAL and azure-identity ask
//! before a client-credentials token request), the token response itself, and the
//! callback-token OpenID configuration a validating bot reads.

use serde_json::{json, Map, Value};

use super::callback::CALLBACK_ISSUER;
use super::keys::Signer;
use super::IdentityError;
use crate::ids::Seed;

/// Lifetime of an access token, seconds (Azure AD answers 3599).
pub const TOKEN_SECS: u64 = 3599;

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` on `origin`.
pub fn tenant_configuration(origin: &str, tenant: &str) -> Value {
    let at = |path: &str| format!("{origin}/{tenant}{path}");
    json!({
        "token_endpoint": at("/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": at("/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{origin}/{tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": at("/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": at("/oauth2/v2.0/devicecode"),
        "end_session_endpoint": at("/oauth2/v2.0/logout"),
        "tenant_region_scope": null,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com"
    })
}

/// `GET /common/discovery/instance?authorization_endpoint=...`: the tenant's OpenID
/// configuration address and the one cloud graphvcr stands in for.
pub fn instance_discovery(origin: &str, host: &str, tenant: &str) -> Value {
    json!({
        "tenant_discovery_endpoint": format!("{origin}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{
            "preferred_network": host,
            "preferred_cache": host,
            "aliases": [host]
        }]
    })
}

/// The OpenID configuration of callback tokens, whose keys are at `jwks_uri`.
pub fn callback_configuration(jwks_uri: &str) -> Value {
    json!({
        "issuer": CALLBACK_ISSUER,
        "authorization_endpoint": "https://invalid.botframework.com",
        "jwks_uri": jwks_uri,
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"]
    })
}

/// What a client-credentials token request asked for.
pub struct TokenRequest<'a> {
    pub tenant: &'a str,
    pub client_id: &'a str,
    /// `https://graph.microsoft.com/.default` -> audience `https://graph.microsoft.com`.
    pub scope: &'a str,
}

/// The token response: an app-only access token signed by graphvcr, its claims
/// derived from the request and `now_s` only (same request, same clock: same token).
pub fn token_response(signer: &Signer, req: &TokenRequest<'_>, now_s: u64) -> Result<Value, IdentityError> {
    let aud = req
        .scope
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches("/.default");
    let seed = Seed::derive([req.tenant.as_bytes(), req.client_id.as_bytes()]);
    let issuer = format!("https://sts.windows.net/{}/", req.tenant);
    let mut c = Map::new();
    for (k, v) in [
        ("aud", Value::from(aud)),
        ("iss", Value::from(issuer.as_str())),
        ("iat", Value::from(now_s)),
        ("nbf", Value::from(now_s)),
        ("exp", Value::from(now_s + TOKEN_SECS)),
        ("appid", Value::from(req.client_id)),
        ("appidacr", Value::from("1")),
        ("idp", Value::from(issuer.as_str())),
        ("idtyp", Value::from("app")),
        ("oid", Value::from(seed.guid("oid", b""))),
        ("sub", Value::from(seed.guid("oid", b""))),
        ("tid", Value::from(req.tenant)),
        ("uti", Value::from(seed.guid("uti", &now_s.to_be_bytes()))),
        ("ver", Value::from("1.0")),
    ] {
        c.insert(k.to_string(), v);
    }
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_SECS,
        "ext_expires_in": TOKEN_SECS,
        "access_token": signer.sign(&c)?
    }))
}
