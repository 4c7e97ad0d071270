//! Offline identity and signed notifications: a client-credentials token through the
//! proxy verifies against graphvcr's JWKS; in record, identity traffic is forwarded
//! and never stored; replayed notifications carry tokens that verify against the keys
//! the served OpenID configurations name, with the recorded claims.

use std::time::Duration;

use serde_json::Value;

use crate::common::tls_client::{request, Answer};
use crate::common::*;
use crate::notifications::record_invite_flow;

const LOGIN: &str = "login.microsoftonline.com";
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const SECRET: &str = "client-secret-9d2c41";
const CLIENT: &str = "c11e47aa-5b6c-4d7e-8f90-a1b2c3d4e5f6";

fn token_form(grant: &str) -> String {
    format!(
        "grant_type={grant}&client_id={CLIENT}&client_secret={SECRET}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
    )
}

/// A client-credentials token request (with `grant`) to `path` on the login host.
async fn token_request(via: Via, path: &str, grant: &str) -> Answer {
    let ca = graphvcr::identity::ca_cert_path(&test_ca_dir());
    request(&ca, via, LOGIN, true, "POST", path, &[FORM], token_form(grant)).await
}

async fn get(via: Via, url: &str) -> Value {
    let ca = graphvcr::identity::ca_cert_path(&test_ca_dir());
    let u: http::Uri = url.parse().unwrap();
    let r = request(
        &ca,
        via,
        u.host().unwrap(),
        true,
        "GET",
        u.path_and_query().unwrap().as_str(),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_token_through_the_proxy_verifies_against_graphvcrs_jwks() {
    init();
    let st = store();
    let rp = start_replay_with(bundled_config("invite-one-participant", None), &st.store, true).await;
    let via = Via::Proxy(rp.proxy.unwrap());
    let config = get(
        via,
        &format!("https://{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration"),
    )
    .await;
    let token_url: http::Uri = config["token_endpoint"].as_str().unwrap().parse().unwrap();
    assert_eq!(token_url.host(), Some(LOGIN));
    let discovery = get(
        via,
        &format!("https://{LOGIN}/common/discovery/instance?api-version=1.1&authorization_endpoint=https%3A%2F%2F{LOGIN}%2F{TENANT}%2Foauth2%2Fv2.0%2Fauthorize"),
    )
    .await;
    assert!(
        discovery["tenant_discovery_endpoint"]
            .as_str()
            .unwrap()
            .contains(TENANT),
        "{discovery}"
    );
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let r = token_request(via, token_url.path(), "client_credentials").await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["token_type"], "Bearer");
        tokens.push(r.json()["access_token"].as_str().unwrap().to_string());
    }
    assert_eq!(tokens[0], tokens[1], "same request, same clock: the same token");
    let jwks = get(via, config["jwks_uri"].as_str().unwrap()).await;
    let claims = jwks::verify(&tokens[0], &jwks);
    assert_eq!(claims["aud"], "https://graph.microsoft.com");
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["appid"], CLIENT);
    assert!(claims["exp"].as_u64().unwrap() > NOW_MS / 1000);
    // another flow: a clear OAuth error
    let r = token_request(via, token_url.path(), "password").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "unsupported_grant_type");
    rp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_record_identity_requests_are_forwarded_and_never_stored() {
    init();
    let graph = FakeGraph::start().await;
    let st = store();
    let mut cfg = record_config("identity-record", &graph);
    cfg.proxy.upstreams = vec![(
        LOGIN.to_string(),
        graphvcr::config::UpstreamUrl::parse(&graph.url()).unwrap(),
    )];
    let rec = start_record_with(cfg, &st.store, false, true).await;
    let path = format!("/{TENANT}/oauth2/v2.0/token");
    let via = Via::Proxy(rec.proxy.unwrap());
    let r = token_request(via, &path, "client_credentials").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["access_token"],
        UPSTREAM_TOKEN,
        "the real (fake) Azure AD answered"
    );
    let out = rec.stop().await;
    assert_eq!(out.events, 0, "identity traffic is not recorded");
    st.store.flush().unwrap();
    for (p, bytes) in all_bytes(st.dir.path()) {
        for needle in [SECRET, UPSTREAM_TOKEN] {
            assert!(!contains(&bytes, needle.as_bytes()), "{needle} in {}", p.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_notifications_carry_tokens_that_verify_against_the_served_metadata() {
    init();
    let graph = FakeGraph::start().await;
    let bot = FakeBot::start().await;
    let st = store();
    record_invite_flow(&graph, &bot, &st).await;
    let c = st.store.load("flow").unwrap().unwrap();
    // stored on arrival, a notification may precede its exchange: find one by kind
    let note = c
        .events
        .iter()
        .find(|e| e.kind == graphvcr::cassette::Kind::Notification);
    let kept = note
        .expect("a notification recorded")
        .request
        .headers
        .iter()
        .find(|(n, _)| n == "x-graphvcr-callback-claims");
    let kept: Value = serde_json::from_str(&kept.expect("claims kept").1).unwrap();
    assert_eq!(
        kept,
        serde_json::json!({"iss": "https://api.botframework.com", "aud": BOT_APP_ID, "tid": TENANT})
    );

    let bot2 = FakeBot::start().await;
    let mut cfg = replay_config("flow", Some(&bot2));
    cfg.pacing = fast();
    let rp = start_replay_with(cfg, &st.store, true).await;
    assert_eq!(invite(&rp.url(), "v1.0", 2).await.status, 200);
    let got = bot2.wait_for(2, Duration::from_secs(10)).await;
    // the Graph face's metadata, and Skype's URL through the proxy, name the same keys
    let config = body_json(
        &send(
            "GET",
            &format!("{}/_graphvcr/.well-known/openid-configuration", rp.url()),
            &[],
            Vec::new(),
        )
        .await,
    );
    let jwks = body_json(&send("GET", config["jwks_uri"].as_str().unwrap(), &[], Vec::new()).await);
    let via = Via::Proxy(rp.proxy.unwrap());
    let skype = get(via, "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration").await;
    assert_eq!(skype["issuer"], "https://api.botframework.com");
    assert_eq!(get(via, skype["jwks_uri"].as_str().unwrap()).await, jwks);
    for n in &got {
        let auth = n.headers["authorization"].to_str().unwrap();
        let claims = jwks::verify(auth.strip_prefix("Bearer ").expect("a bearer token"), &jwks);
        assert_eq!(claims["iss"], kept["iss"]);
        assert_eq!(claims["aud"], kept["aud"]);
        assert_eq!(claims["tid"], TENANT);
        assert!(
            claims["exp"].as_u64().unwrap() > NOW_MS / 1000,
            "exp after the injected clock's now"
        );
        assert!(!n.headers.contains_key("x-graphvcr-callback-claims"));
    }
    rp.stop().await.unwrap();
}
