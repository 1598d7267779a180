//! Where the hosted pages send a browser after sign-in (`return_to`): one of
//! Latchkey's own pages, or an app URL `web.allowed_return_urls` allows. Anything else
//! is refused, so the sign-in page cannot be used to bounce people (and exchange
//! codes) to an attacker's site.

use url::Url;

/// A checked destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnTo {
    /// A path on Latchkey itself (`/account/security`).
    Here(String),
    /// An allowed app URL; the exchange code is added to its query.
    App(Url),
}

impl ReturnTo {
    /// The value to carry in forms and links.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Here(path) => path,
            Self::App(url) => url.as_str(),
        }
    }
}

/// One allowed entry: an origin, and the path under it (`/` for all of it).
#[derive(Debug, Clone)]
struct Entry {
    origin: url::Origin,
    path: String,
}

/// The allowed app URLs, parsed from `web.allowed_return_urls`.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    entries: Vec<Entry>,
}

impl Allowed {
    /// Parses the configured list; an entry that is not an `http(s)` URL without
    /// credentials, query or fragment is an error naming it.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let entries = entries
            .iter()
            .map(|text| {
                let refuse = || {
                    format!(
                        "web.allowed_return_urls: {text:?} must be an http(s) origin, optionally with a path, \
                         without credentials, query or fragment"
                    )
                };
                let url = Url::parse(text).map_err(|_| refuse())?;
                let plain = url.username().is_empty()
                    && url.password().is_none()
                    && url.query().is_none()
                    && url.fragment().is_none()
                    && url.host_str().is_some();
                if !matches!(url.scheme(), "http" | "https") || !plain {
                    return Err(refuse());
                }
                Ok(Entry { origin: url.origin(), path: url.path().to_owned() })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// The origins of the allowed URLs, for the pages' `form-action` directive (a
    /// form's redirect to the app must be allowed by it).
    pub fn origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = self.entries.iter().map(|e| e.origin.ascii_serialization()).collect();
        origins.dedup();
        origins
    }

    /// `requested` as a destination, or `None` when it is not allowed. A path on
    /// Latchkey must start with one `/` (`//host` is another site); an app URL must
    /// have an allowed origin and lie under the entry's path, compared after the URL
    /// is normalised (dot segments, percent-encoded dots and backslashes resolved).
    pub fn check(&self, requested: &str) -> Option<ReturnTo> {
        if requested.chars().any(char::is_control) {
            return None;
        }
        let requested = requested.trim();
        if requested.is_empty() {
            return None;
        }
        if let Some(rest) = requested.strip_prefix('/') {
            let local = !rest.starts_with(['/', '\\']) && !requested.contains('\\');
            if local {
                // Resolve dot segments against a stand-in origin: what stays is a path here.
                let base = Url::parse("http://latchkey.invalid/").ok()?;
                let url = base.join(requested).ok()?;
                if url.host_str() != Some("latchkey.invalid") {
                    return None;
                }
                let mut path = url.path().to_owned();
                if let Some(query) = url.query() {
                    path = format!("{path}?{query}");
                }
                return Some(ReturnTo::Here(path));
            }
            return None;
        }
        let url = Url::parse(requested).ok()?;
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let origin = url.origin();
        let allowed = self.entries.iter().any(|entry| {
            entry.origin == origin && {
                let prefix = entry.path.as_str();
                let path = url.path();
                prefix == "/"
                    || path == prefix
                    || path.starts_with(prefix)
                        && (prefix.ends_with('/') || path[prefix.len()..].starts_with('/'))
            }
        });
        allowed.then_some(ReturnTo::App(url))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn allowed() -> Allowed {
        Allowed::parse(&["https://app.example.com".into(), "https://shop.example.com/auth/callback".into()])
            .unwrap()
    }

    fn app(url: &str) -> Option<ReturnTo> {
        Some(ReturnTo::App(Url::parse(url).unwrap()))
    }

    #[test]
    fn allowed_origins_and_path_prefixes_pass() {
        let allowed = allowed();
        assert_eq!(allowed.check("https://app.example.com/"), app("https://app.example.com/"));
        assert_eq!(allowed.check("https://app.example.com/x/y?z=1"), app("https://app.example.com/x/y?z=1"));
        assert_eq!(
            allowed.check("https://shop.example.com/auth/callback"),
            app("https://shop.example.com/auth/callback")
        );
        assert_eq!(
            allowed.check("https://shop.example.com/auth/callback/next"),
            app("https://shop.example.com/auth/callback/next")
        );
        assert_eq!(allowed.check("HTTPS://APP.EXAMPLE.COM/x"), app("https://app.example.com/x"), "case");
    }

    #[test]
    fn everything_else_is_refused() {
        let allowed = allowed();
        for refused in [
            "https://evil.example.com/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "https://app.example.com.evil.com/",
            "https://app.example.com@evil.com/",
            "https://user:pw@app.example.com/",
            "https://shop.example.com/",
            "https://shop.example.com/auth/callbackevil",
            "https://shop.example.com/auth/callback/../../admin",
            "https://shop.example.com/auth/callback/%2e%2e/%2e%2e/admin",
            "https://shop.example.com/auth/callback\\..\\..\\admin",
            "javascript:alert(1)",
            "data:text/html,hi",
            "//evil.example.com/",
            "/\\evil.example.com/",
            "/\\/evil.example.com",
            "\\\\evil.example.com",
            "https://app.example.com/\n",
            "",
            "app.example.com",
        ] {
            assert_eq!(allowed.check(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn latchkey_paths_are_always_allowed_and_stay_here() {
        let allowed = Allowed::default();
        assert_eq!(allowed.check("/account/security"), Some(ReturnTo::Here("/account/security".into())));
        assert_eq!(allowed.check("/a/../account?x=1"), Some(ReturnTo::Here("/account?x=1".into())));
        assert_eq!(allowed.check("/"), Some(ReturnTo::Here("/".into())));
        assert_eq!(allowed.check("https://app.example.com/"), None, "nothing configured");
    }

    #[test]
    fn bad_entries_are_named() {
        for entry in
            ["ftp://x.example", "https://x.example/?q=1", "https://u@x.example", "x.example", "https://x/#f"]
        {
            let error = Allowed::parse(&[entry.to_owned()]).unwrap_err();
            assert!(error.contains(entry), "{error}");
        }
        assert_eq!(allowed().origins(), ["https://app.example.com", "https://shop.example.com"]);
    }
}
