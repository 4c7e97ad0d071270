//! Answers identity requests in replay: Azure AD's client-credentials endpoints on the
//! login host (through the proxy) and the callback-token metadata (Skype's URL through
//! the proxy, `/_graphvcr/.well-known/` on the Graph face). A request it cannot answer
//! gets an OAuth-shaped error saying why.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::documents::{self, TokenRequest};
use super::keys::Signer;
use crate::clock::Clock;
use crate::http::wire::{self, Resp};

/// Azure AD's public-cloud login host.
pub const LOGIN_HOST: &str = "login.microsoftonline.com";
/// Where Graph's callback-token metadata lives.
pub const CALLBACK_METADATA_HOST: &str = "api.aps.skype.com";
/// The metadata path on that host.
pub const CALLBACK_METADATA_PATH: &str = "/v1/.well-known/OpenIdConfiguration";
/// Its keys, as graphvcr's metadata names them.
pub const CALLBACK_KEYS_PATH: &str = "/v1/keys";
/// The callback-token metadata on the Graph face.
pub const LOCAL_METADATA_PATH: &str = "/_graphvcr/.well-known/openid-configuration";
/// Its keys on the Graph face.
pub const LOCAL_KEYS_PATH: &str = "/_graphvcr/.well-known/keys";

/// Replay's identity endpoints.
pub struct IdentityFace {
    signer: Arc<Signer>,
    clock: Arc<dyn Clock>,
}

fn oauth_error(status: u16, error: &str, description: &str) -> Resp {
    tracing::warn!("identity: {description}");
    wire::json_response(
        status,
        &json!({"error": error, "error_description": format!("graphvcr: {description}")}),
    )
}

fn origin(parts: &http::request::Parts) -> String {
    wire::request_origin(&parts.headers, &parts.uri).unwrap_or_default()
}

impl IdentityFace {
    pub fn new(signer: Arc<Signer>, clock: Arc<dyn Clock>) -> IdentityFace {
        IdentityFace { signer, clock }
    }

    /// A request to the login host.
    pub fn login(&self, parts: &http::request::Parts, body: &Bytes) -> Resp {
        let path = parts.uri.path();
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let host = parts.uri.host().unwrap_or(LOGIN_HOST).to_ascii_lowercase();
        let o = origin(parts);
        match (&parts.method, segs.as_slice()) {
            (&Method::GET, [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
                wire::json_response(200, &documents::tenant_configuration(&o, tenant))
            }
            (&Method::GET, ["common", "discovery", "instance"]) => {
                let q = wire::form_pairs(parts.uri.query().unwrap_or(""));
                let tenant = q
                    .iter()
                    .find(|(k, _)| k == "authorization_endpoint")
                    .and_then(|(_, v)| v.parse::<http::Uri>().ok())
                    .and_then(|u| u.path().split('/').find(|s| !s.is_empty()).map(str::to_string))
                    .unwrap_or_else(|| "common".to_string());
                wire::json_response(200, &documents::instance_discovery(&o, &host, &tenant))
            }
            (&Method::GET, [_, "discovery", "v2.0", "keys"] | [_, "discovery", "keys"]) => {
                wire::json_response(200, &self.signer.jwks())
            }
            (&Method::POST, [tenant, "oauth2", "v2.0", "token"]) => self.token(tenant, body),
            _ => oauth_error(
                404,
                "invalid_request",
                &format!(
                    "{} {path} is not an endpoint graphvcr answers offline (it answers the tenant's \
                     OpenID configuration, instance discovery, keys and POST /{{tenant}}/oauth2/v2.0/token)",
                    parts.method
                ),
            ),
        }
    }

    fn token(&self, tenant: &str, body: &Bytes) -> Resp {
        let form = wire::form_pairs(&String::from_utf8_lossy(body));
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match get("grant_type") {
            Some("client_credentials") => {}
            other => {
                return oauth_error(
                    400,
                    "unsupported_grant_type",
                    &format!(
                        "grant_type `{}`: graphvcr answers the client-credentials flow only",
                        other.unwrap_or("")
                    ),
                )
            }
        }
        let Some(client_id) = get("client_id").filter(|c| !c.is_empty()) else {
            return oauth_error(400, "invalid_request", "the token request has no client_id");
        };
        if get("client_secret").is_none() && get("client_assertion").is_none() {
            return oauth_error(
                401,
                "invalid_client",
                "the token request has neither client_secret nor client_assertion (any placeholder will do)",
            );
        }
        let Some(scope) = get("scope").filter(|s| !s.is_empty()) else {
            return oauth_error(
                400,
                "invalid_scope",
                "the token request has no scope (e.g. https://graph.microsoft.com/.default)",
            );
        };
        let req = TokenRequest {
            tenant,
            client_id,
            scope,
        };
        match documents::token_response(&self.signer, &req, self.clock.unix_ms() / 1000) {
            Ok(v) => {
                tracing::info!(tenant, client_id, "identity: issued an offline access token");
                wire::json_response(200, &v)
            }
            Err(e) => oauth_error(500, "server_error", &e.to_string()),
        }
    }

    /// A request to the callback-metadata host.
    pub fn callback_metadata(&self, parts: &http::request::Parts) -> Resp {
        let path = parts.uri.path();
        if path.eq_ignore_ascii_case(CALLBACK_METADATA_PATH) {
            let jwks = format!("https://{CALLBACK_METADATA_HOST}{CALLBACK_KEYS_PATH}");
            return wire::json_response(200, &documents::callback_configuration(&jwks));
        }
        if path == CALLBACK_KEYS_PATH {
            return wire::json_response(200, &self.signer.jwks());
        }
        oauth_error(
            404,
            "invalid_request",
            &format!("{path}: graphvcr serves {CALLBACK_METADATA_PATH} and {CALLBACK_KEYS_PATH} on this host"),
        )
    }

    /// The Graph face's own copy of the callback metadata, if `parts` asks for it.
    pub fn local_metadata(&self, parts: &http::request::Parts) -> Option<Resp> {
        match parts.uri.path() {
            LOCAL_METADATA_PATH => {
                let jwks = format!("{}{LOCAL_KEYS_PATH}", origin(parts));
                Some(wire::json_response(200, &documents::callback_configuration(&jwks)))
            }
            LOCAL_KEYS_PATH => Some(wire::json_response(200, &self.signer.jwks())),
            _ => None,
        }
    }
}
