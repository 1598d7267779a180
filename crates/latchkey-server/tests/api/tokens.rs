//! Access tokens that must be refused: forged, tampered, expired, or meant for
//! another audience or issuer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey_server::keys::load_signing_keys;
use latchkey_server::tokens::{AccessClaims, AccessTokens};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, access};

on_both_backends!(
    forged_and_tampered_tokens_are_refused,
    expired_tokens_are_refused,
    tokens_for_another_audience_or_issuer_are_refused,
);

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

async fn assert_refused(app: &TestApp, token: &str, why: &str) {
    let reply = app.get_bearer("/v1/me", token).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{why}: {}", reply.body);
    assert_eq!(reply.code(), "invalid_token", "{why}");
}

async fn forged_and_tampered_tokens_are_refused(app: TestApp) {
    let alice = access(&app.user("alice@example.com").await);
    let bob = access(&app.user("bob@example.com").await);
    assert_eq!(app.get_bearer("/v1/me", &alice).await.status, StatusCode::OK);
    let parts: Vec<&str> = alice.split('.').collect();
    let header = decode_part(parts[0]);
    let claims = decode_part(parts[1]);

    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let unsigned = format!("{}.{}.", encode_part(&none_header), parts[1]);
    assert_refused(&app, &unsigned, "alg none").await;

    // HS256 keyed with the public key: the classic algorithm-confusion forgery.
    let jwks = app.send(app.client.get(app.url("/.well-known/jwks.json"))).await.body;
    let x = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = header["kid"].as_str().map(str::to_owned);
    let confused = jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(&x)).unwrap();
    assert_refused(&app, &confused, "HS256 with the public key").await;

    let bob_claims = decode_part(bob.split('.').nth(1).unwrap());
    let mut tampered = claims.clone();
    tampered["sub"] = bob_claims["sub"].clone();
    let swapped = format!("{}.{}.{}", parts[0], encode_part(&tampered), parts[2]);
    assert_refused(&app, &swapped, "payload changed after signing").await;

    let mut elevated = claims.clone();
    elevated["aal"] = json!("aal2");
    let elevated = format!("{}.{}.{}", parts[0], encode_part(&elevated), parts[2]);
    assert_refused(&app, &elevated, "aal raised after signing").await;

    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = json!("someone-elses-key");
    let rekeyed = format!("{}.{}.{}", encode_part(&unknown_kid), parts[1], parts[2]);
    assert_refused(&app, &rekeyed, "unknown key id").await;

    assert_refused(&app, "garbage", "not a JWT").await;
    assert_refused(&app, &format!("{alice}x"), "bad signature").await;
}

async fn expired_tokens_are_refused(app: TestApp) {
    let tokens = app.user("carol@example.com").await;
    app.clock.advance(14 * 60);
    assert_eq!(app.get_bearer("/v1/me", &access(&tokens)).await.status, StatusCode::OK);
    app.clock.advance(60);
    assert_refused(&app, &access(&tokens), "past exp").await;
}

async fn tokens_for_another_audience_or_issuer_are_refused(app: TestApp) {
    let tokens = app.user("dave@example.com").await;
    let claims: AccessClaims =
        serde_json::from_value(decode_part(access(&tokens).split('.').nth(1).unwrap())).unwrap();
    // Sign with the server's own key, so only the audience or issuer is wrong.
    let (signing, public) = load_signing_keys(app.state.store.as_ref(), &app.state.keys, 0).await.unwrap();
    let session = app.state.store.active_session(&claims.sid, app.clock_now()).await.unwrap().unwrap();
    let issuer = app.state.config.public_base().to_owned();
    let right = AccessTokens::new(&issuer, "latchkey", 900, &signing, &public).unwrap();
    let token = right.issue(&session, app.clock_now()).unwrap();
    assert_eq!(
        app.get_bearer("/v1/me", &token).await.status,
        StatusCode::OK,
        "control: a well-made token works"
    );
    let other_audience = AccessTokens::new(&issuer, "another-service", 900, &signing, &public).unwrap();
    assert_refused(&app, &other_audience.issue(&session, app.clock_now()).unwrap(), "wrong aud").await;
    let other_issuer = AccessTokens::new("https://evil.example", "latchkey", 900, &signing, &public).unwrap();
    assert_refused(&app, &other_issuer.issue(&session, app.clock_now()).unwrap(), "wrong iss").await;
}

impl TestApp {
    fn clock_now(&self) -> i64 {
        use latchkey_server::clock::Clock;
        self.clock.now()
    }
}
