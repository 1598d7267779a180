//! The OpenAPI 3.1 documents, one per surface. Each surface's router is an
//! [`OpenApiRouter`] whose routes come from `utoipa_axum::routes!`, which takes a
//! route's path and methods from its handler's `#[utoipa::path]`; so the router
//! cannot hold a route its document lacks. [`complete`] then adds what every
//! operation shares: the error answers the layers and extractors give, in the
//! surface's own error format, and the security schemes.

use std::sync::Arc;

use axum::http::StatusCode;
use utoipa::PartialSchema;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The surfaces Latchkey serves, each with its own document and error format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Native,
    Prisme,
    Mudbase,
    Lerian,
    Flashback,
}

impl Surface {
    pub const ALL: [Surface; 5] = [Self::Native, Self::Prisme, Self::Mudbase, Self::Lerian, Self::Flashback];

    /// The name in `/openapi/{name}.json` (the native document is `/openapi.json`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Prisme => "prisme",
            Self::Mudbase => "mudbase",
            Self::Lerian => "lerian",
            Self::Flashback => "flashback",
        }
    }

    pub fn document_path(self) -> &'static str {
        match self {
            Self::Native => "/openapi.json",
            Self::Prisme => "/openapi/prisme.json",
            Self::Mudbase => "/openapi/mudbase.json",
            Self::Lerian => "/openapi/lerian.json",
            Self::Flashback => "/openapi/flashback.json",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Native => "Latchkey",
            Self::Prisme => "Latchkey: Prisme.ai-compatible MFA API",
            Self::Mudbase => "Latchkey: Mudbase-compatible 2FA API",
            Self::Lerian => "Latchkey: Lerian Identity-compatible MFA API",
            Self::Flashback => "Latchkey: Flashback-compatible MFA API",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Native => {
                "Latchkey's own API: accounts, login with a second factor, factors, recovery codes, \
                 remembered devices, administration with API keys, and operations. Errors are \
                 `{\"error\": {\"code\", \"message\", \"details\"?}}`; each error answer lists the codes that come with its status."
            }
            Self::Prisme => {
                "The MFA endpoints of Prisme.ai under `/v2`. Errors are `{\"error\": \"<Class>\", \"message\", \"details\"?}`."
            }
            Self::Mudbase => {
                "The 2FA endpoints of Mudbase under `/api`. Errors are \
                 `{\"error\", \"code\", \"details\", \"timestamp\", \"path\", \"requestId\"}`."
            }
            Self::Lerian => {
                "The MFA and login endpoints of Lerian Identity under `/v1`. Errors are `{\"code\", \"title\", \"message\"}`."
            }
            Self::Flashback => {
                "The login and MFA endpoints of Flashback: `/user/login`, `/user/refresh` and `/mfa/...`. \
                 Answers are `{\"success\": true, \"data\"?, \"message\"?}`; errors `{\"success\": false, \"error\"}`."
            }
        }
    }

    /// The tags of this surface's operations, in reading order.
    fn tags(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Native => &[
                ("auth", "Sign-up, login with a second factor, tokens, sign-in links."),
                ("me", "The signed-in user and their remembered devices (Bearer token)."),
                ("factors", "The signed-in user's second factors and recovery codes (Bearer token)."),
                ("users", "User and factor administration, and sidecar code checks (API key)."),
                ("audit", "The audit log (API key with `audit:read`)."),
                ("webhooks", "Signed event deliveries to your endpoints (API key with `admin`)."),
                ("pages", "The page a magic link opens."),
                ("operations", "Health, keys and these documents."),
            ],
            Self::Prisme => &[("prisme", "Login, MFA and the user's MFA method, as Prisme.ai serves them.")],
            Self::Mudbase => &[("mudbase", "Login, refresh and 2FA, as Mudbase serves them.")],
            Self::Lerian => &[("lerian", "MFA setup and login, as Lerian Identity serves them.")],
            Self::Flashback => {
                &[("flashback", "Login, MFA and organisation enforcement, as Flashback serves them.")]
            }
        }
    }

    /// The component schema every error answer of this surface refers to.
    fn error_schema(self) -> &'static str {
        match self {
            Self::Native => "ErrorBody",
            Self::Prisme => "PrismeError",
            Self::Mudbase => "MudbaseError",
            Self::Lerian => "LerianError",
            Self::Flashback => "FlashbackError",
        }
    }

    /// The statuses every operation with a JSON request body can answer.
    fn body_statuses(self) -> &'static [u16] {
        match self {
            Self::Native => &[400, 413, 415, 422],
            Self::Prisme | Self::Mudbase | Self::Lerian | Self::Flashback => &[400, 413],
        }
    }

    /// The security schemes this surface's operations may name.
    fn security_schemes(self) -> Vec<(&'static str, SecurityScheme)> {
        let bearer = || {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from login."))
                    .build(),
            )
        };
        let api_key = || {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key created with `latchkey apikey create`; its scopes decide what it may do.",
            )))
        };
        match self {
            Self::Native | Self::Lerian => vec![("bearer", bearer()), ("api_key", api_key())],
            Self::Prisme | Self::Mudbase | Self::Flashback => vec![("bearer", bearer())],
        }
    }
}

/// The documents as served: JSON text, built once when the router is built.
#[derive(Debug, Clone)]
pub struct Documents(Arc<Vec<(Surface, String)>>);

impl Documents {
    pub fn new(documents: Vec<(Surface, OpenApi)>) -> Self {
        let texts = documents
            .into_iter()
            .map(|(surface, document)| {
                // Serialising a document of plain strings and maps cannot fail.
                let text = serde_json::to_string(&document).unwrap_or_default();
                (surface, text)
            })
            .collect();
        Self(Arc::new(texts))
    }

    pub fn get(&self, surface: Surface) -> &str {
        self.0.iter().find(|(s, _)| *s == surface).map_or("{}", |(_, text)| text.as_str())
    }
}

/// A surface's router with the document header filled in.
pub fn router(surface: Surface) -> OpenApiRouter<AppState> {
    let mut document = OpenApi::default();
    document.info.title = surface.title().to_owned();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document.info.description = Some(surface.description().to_owned());
    document.info.license = Some(utoipa::openapi::License::new("Apache-2.0"));
    document.tags = Some(
        surface
            .tags()
            .iter()
            .map(|(name, description)| {
                let mut tag = utoipa::openapi::Tag::new(*name);
                tag.description = Some((*description).to_owned());
                tag
            })
            .collect(),
    );
    OpenApiRouter::with_openapi(document)
}

/// The schema of a string field that takes one of `values`, for fields the handler
/// reads as text to answer unknown values with its own error code.
pub fn one_of(values: &[&str]) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

/// Adds what every operation of `surface` shares to its document: the error answers
/// of the body and authentication extractors, 500 (which a panic also becomes), 503 (a
/// database outage, a full server), the
/// 408 of the request timeout, the `Retry-After` header of every 429, and the
/// security schemes. `catalogue` is the surface's error codes with their statuses
/// (empty for a surface without codes): each error answer lists those of its status.
/// The surfaces hand it in, so this module depends on none of them.
pub fn complete(surface: Surface, catalogue: &[(u16, &'static str)], mut document: OpenApi) -> OpenApi {
    let components = document.components.get_or_insert_with(Default::default);
    for (name, scheme) in surface.security_schemes() {
        components.add_security_scheme(name, scheme);
    }
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            // Any route may meet a database outage or a full server (503, with
            // `Retry-After`), besides a fault (500).
            let mut statuses = vec![500, 503];
            if let Some(RefOr::T(body)) = &operation.request_body
                && body.content.contains_key("application/json")
            {
                statuses.extend_from_slice(surface.body_statuses());
            }
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                statuses.push(401);
            }
            for status in statuses {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(error_response(surface, status)));
            }
            // Every 429 comes from `ApiError::retry_after` or `ApiError::rate_limited`,
            // which always say how long to wait.
            for waiting in ["429", "503"] {
                if let Some(RefOr::T(answer)) = operation.responses.responses.get_mut(waiting) {
                    answer.headers.entry("Retry-After".to_owned()).or_insert_with(retry_after);
                }
            }
            operation.responses.responses.entry("408".to_owned()).or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new().description("The request took longer than 30 seconds.").build(),
                )
            });
            describe_errors(catalogue, operation);
        }
    }
    document
}

fn retry_after() -> RefOr<Header> {
    RefOr::T(HeaderBuilder::new().schema(Some(i64::schema())).description(Some("Seconds to wait.")).build())
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head]
        .into_iter()
        .filter_map(Option::as_mut)
}

fn error_response(surface: Surface, status: u16) -> Response {
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    ResponseBuilder::new()
        .description(reason)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name(surface.error_schema()))).build(),
        )
        .build()
}

/// How an error answer's description introduces its codes.
const CODES_WITH_STATUS: &str = "Codes with this status:";

/// Error answers list the codes of the surface's catalogue that have their status: a
/// given operation answers some of them.
fn describe_errors(catalogue: &[(u16, &'static str)], operation: &mut Operation) {
    for (status, response) in operation.responses.responses.iter_mut() {
        let (Ok(status), RefOr::T(response)) = (status.parse::<u16>(), response) else { continue };
        if status < 400 || status == 408 {
            continue;
        }
        let codes: Vec<String> = catalogue
            .iter()
            .filter(|(with, _)| *with == status)
            .map(|(_, code)| format!("`{code}`"))
            .collect();
        if !codes.is_empty() && !response.description.contains(CODES_WITH_STATUS) {
            let sentence = response.description.trim_end_matches('.');
            response.description = format!("{sentence}. {CODES_WITH_STATUS} {}.", codes.join(", "));
        }
    }
}
