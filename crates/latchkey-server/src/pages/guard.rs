//! What keeps the hosted pages safe (DESIGN rule 14): the cookies they set, the
//! signed session cookie, the CSRF token every form carries, and the same-origin
//! check every POST passes.
//!
//! - The session cookie holds a session id and its keyed signature (HMAC under the
//!   server's hashing key), so it cannot be forged; the session itself lives in the
//!   store, so signing out anywhere (or an administrator's revocation) ends it.
//! - The CSRF token is the keyed hash of a random cookie (a signed double submit): a
//!   site that cannot read the cookie cannot make the token, and one that can plant a
//!   cookie (a sibling subdomain) still cannot sign it.
//! - On https every cookie is `__Host-` prefixed (`Secure`, `Path=/`, no `Domain`);
//!   on plain http (`public_url` of a local trial) the names lose the prefix and the
//!   cookies lose `Secure`, which browsers would otherwise drop.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::crypto::{HashKey, HashPurpose, constant_time_eq};
use latchkey_store::Session;
use serde::Deserialize;

use super::i18n::Lang;
use crate::http::error::ApiError;
use crate::http::extract::{ClientMeta, cookie};
use crate::random;
use crate::state::AppState;

/// The cookies the pages use, by their unprefixed names.
pub const SESSION: &str = "latchkey_session";
pub const CSRF: &str = "latchkey_csrf";
/// The MFA token of a sign-in waiting for its second factor.
pub const LOGIN: &str = "latchkey_login";
pub const LANG: &str = "latchkey_lang";
/// A remembered device's token (`mfa.remember_device_days`).
pub const DEVICE: &str = "latchkey_device";

/// A cookie's name as set and read: `__Host-` prefixed when served over https.
pub fn cookie_name(secure: bool, name: &str) -> String {
    if secure { format!("__Host-{name}") } else { name.to_owned() }
}

/// One `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` on https;
/// `max_age` 0 deletes it.
pub fn set_cookie(secure: bool, name: &str, value: &str, max_age: i64) -> String {
    let secure_attribute = if secure { "; Secure" } else { "" };
    let name = cookie_name(secure, name);
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure_attribute}")
}

/// Whether a POST comes from a page of this service: `Sec-Fetch-Site` (when the
/// browser sends it) must be `same-origin`, and `Origin` (when sent) must be ours; an
/// opaque `Origin: null` passes only beside `Sec-Fetch-Site: same-origin` (a browser
/// hiding the origin of its own page's post). Browsers that send neither are held by
/// the CSRF token alone.
pub fn same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
    let fetch_site = headers.get("sec-fetch-site").map(|v| v.to_str().unwrap_or_default());
    if fetch_site.is_some_and(|site| site != "same-origin") {
        return false;
    }
    match headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or_default()) {
        Some("null") => fetch_site.is_some(),
        Some(origin) => origin.eq_ignore_ascii_case(public_origin),
        None => true,
    }
}

/// The CSRF token forms carry for the CSRF cookie `cookie_value`.
pub fn csrf_token(key: &HashKey, cookie_value: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.hash(HashPurpose::Csrf, cookie_value.as_bytes()))
}

/// Whether `presented` is the token of the CSRF cookie `cookie_value`.
pub fn csrf_matches(key: &HashKey, cookie_value: Option<&str>, presented: &str) -> bool {
    cookie_value.is_some_and(|value| {
        !value.is_empty() && constant_time_eq(csrf_token(key, value).as_bytes(), presented.as_bytes())
    })
}

/// The session cookie's value for `session_id`: the id and its signature.
pub fn session_cookie_value(key: &HashKey, session_id: &str) -> String {
    let signature = key.hash(HashPurpose::WebSession, session_id.as_bytes());
    format!("{session_id}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The session id a session cookie names, when its signature holds.
pub fn session_id_of(key: &HashKey, value: &str) -> Option<String> {
    let (id, _) = value.split_once('.')?;
    let expected = session_cookie_value(key, id);
    constant_time_eq(expected.as_bytes(), value.as_bytes()).then(|| id.to_owned())
}

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// What a page handler knows of the browser: its language, address, cookies and
/// whether the request came from one of our pages.
pub struct Browser {
    pub lang: Lang,
    pub meta: ClientMeta,
    pub secure: bool,
    headers: HeaderMap,
    /// A CSRF cookie made for this response, when the browser had none.
    new_csrf: Option<String>,
    /// `?lang=` asked for, remembered in a cookie.
    chosen_lang: Option<Lang>,
    same_origin: bool,
}

impl FromRequestParts<AppState> for Browser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Ok(meta) = ClientMeta::from_request_parts(parts, state).await;
        let secure = state.config.public_url.starts_with("https://");
        let headers = parts.headers.clone();
        let chosen_lang = Query::<LangQuery>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|Query(q)| q.lang)
            .and_then(|tag| Lang::from_tag(&tag));
        let lang = chosen_lang
            .or_else(|| cookie(&headers, &cookie_name(secure, LANG)).and_then(Lang::from_tag))
            .unwrap_or_else(|| Lang::from_accept_language(headers.get(header::ACCEPT_LANGUAGE)));
        let public_origin = public_origin(&state.config.public_url);
        let same_origin = same_origin(&headers, &public_origin);
        let has_csrf = cookie(&headers, &cookie_name(secure, CSRF)).is_some_and(|v| !v.is_empty());
        let new_csrf = (!has_csrf).then(|| URL_SAFE_NO_PAD.encode(random::bytes::<32>()));
        Ok(Self { lang, meta, secure, headers, new_csrf, chosen_lang, same_origin })
    }
}

/// `scheme://host[:port]` of a URL (its origin as browsers send it).
pub fn public_origin(public_url: &str) -> String {
    url::Url::parse(public_url).map(|url| url.origin().ascii_serialization()).unwrap_or_default()
}

impl Browser {
    /// The value of one of the pages' cookies.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        cookie(&self.headers, &cookie_name(self.secure, name)).filter(|v| !v.is_empty())
    }

    fn csrf_cookie(&self) -> Option<&str> {
        self.new_csrf.as_deref().or_else(|| self.cookie(CSRF))
    }

    /// The token this browser's forms carry.
    pub fn csrf(&self, state: &AppState) -> String {
        self.csrf_cookie().map(|value| csrf_token(&state.keys.hashing, value)).unwrap_or_default()
    }

    /// Whether a POST may act: it came from our page (same origin) and carries the
    /// token of the CSRF cookie the browser sent (a cookie made just now does not count).
    pub fn may_post(&self, state: &AppState, presented: &str) -> bool {
        let sent = self.cookie(CSRF);
        self.same_origin && csrf_matches(&state.keys.hashing, sent, presented)
    }

    /// The live session the session cookie names, past its second factor; using it
    /// keeps it open (its idle deadline moves).
    pub async fn session(&self, state: &AppState) -> Result<Option<Session>, ApiError> {
        let Some(id) = self.cookie(SESSION).and_then(|value| session_id_of(&state.keys.hashing, value))
        else {
            return Ok(None);
        };
        let now = state.now();
        let Some(session) = state.store.active_session(&id, now).await?.filter(|s| !s.mfa_pending) else {
            return Ok(None);
        };
        state.store.touch_session(&session.id, now, state.config.sessions.idle_timeout_secs).await?;
        Ok(Some(session))
    }

    /// Adds the cookies this visit set up (the CSRF cookie, the chosen language) to
    /// `response`.
    pub fn finish(&self, mut response: Response) -> Response {
        let mut cookies = Vec::new();
        if let Some(value) = &self.new_csrf {
            cookies.push(set_cookie(self.secure, CSRF, value, 86_400));
        }
        if let Some(lang) = self.chosen_lang {
            cookies.push(set_cookie(self.secure, LANG, lang.tag(), 365 * 86_400));
        }
        for value in cookies {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

/// Adds `Set-Cookie: value` to `response`.
pub fn add_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_same_origin_posts_pass() {
        let ours = "https://id.example.com";
        assert!(same_origin(&headers(&[]), ours), "an old browser: the token decides");
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin"), ("origin", "https://id.example.com")]),
            ours
        ));
        assert!(same_origin(&headers(&[("origin", "https://ID.example.com")]), ours));
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin"), ("origin", "null")]), ours));
        for refused in [
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("sec-fetch-site", "none"), ("origin", "https://id.example.com")]),
            headers(&[("origin", "https://evil.example.com")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "https://id.example.com.evil.com")]),
            headers(&[("sec-fetch-site", "cross-site"), ("origin", "null")]),
            headers(&[("sec-fetch-site", "same-origin"), ("origin", "http://id.example.com")]),
        ] {
            assert!(!same_origin(&refused, ours), "{refused:?}");
        }
    }

    #[test]
    fn cookie_names_carry_the_host_prefix_on_https_only() {
        assert_eq!(cookie_name(true, SESSION), "__Host-latchkey_session");
        assert_eq!(cookie_name(false, SESSION), "latchkey_session");
        let cookie = set_cookie(true, CSRF, "v", 60);
        assert_eq!(cookie, "__Host-latchkey_csrf=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure");
        assert!(!set_cookie(false, CSRF, "v", 60).contains("Secure"));
    }

    fn key(byte: u8) -> HashKey {
        latchkey_core::crypto::MasterKey::from_bytes([byte; 32]).derive().hashing
    }

    #[test]
    fn csrf_tokens_are_signed_by_the_server() {
        let (ours, theirs) = (key(1), key(2));
        let token = csrf_token(&ours, "cookie-value");
        assert!(csrf_matches(&ours, Some("cookie-value"), &token));
        assert!(!csrf_matches(&ours, Some("other-cookie"), &token), "another browser's cookie");
        assert!(!csrf_matches(&ours, None, &token), "no cookie");
        assert!(!csrf_matches(&ours, Some(""), &csrf_token(&ours, "")), "an empty cookie");
        assert!(!csrf_matches(&ours, Some("cookie-value"), ""), "no token");
        assert!(
            !csrf_matches(&ours, Some("cookie-value"), "cookie-value"),
            "the cookie itself is not the token"
        );
        assert!(!csrf_matches(&ours, Some("cookie-value"), &csrf_token(&theirs, "cookie-value")));
    }

    #[test]
    fn session_cookies_cannot_be_forged() {
        let (ours, theirs) = (key(1), key(2));
        let value = session_cookie_value(&ours, "0199-session");
        assert_eq!(session_id_of(&ours, &value).as_deref(), Some("0199-session"));
        assert_eq!(session_id_of(&theirs, &value), None);
        let (_, signature) = value.split_once('.').unwrap();
        assert_eq!(session_id_of(&ours, &format!("0199-other.{signature}")), None);
        assert_eq!(session_id_of(&ours, "0199-session"), None);
    }

    #[test]
    fn public_origins_drop_the_path() {
        assert_eq!(public_origin("https://id.example.com/base/"), "https://id.example.com");
        assert_eq!(public_origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
