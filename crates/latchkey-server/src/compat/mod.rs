//! Drop-in compatible surfaces for other products' MFA APIs. Each module translates
//! requests, responses and error bodies to and from the native services; none holds
//! MFA logic of its own.

pub mod lerian;
pub mod mudbase;
pub mod prisme;

use axum::response::IntoResponse;
use latchkey_core::recovery;
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

use crate::service::second_factor::Proof;

/// A code typed where either a TOTP code or a recovery code may appear: recovery
/// codes have their own unmistakable shape.
pub fn totp_or_recovery(code: &str) -> Proof<'_> {
    if recovery::normalize(code).is_some() { Proof::RecoveryCode(code) } else { Proof::AnyTotp { code } }
}

/// Gives a compatible surface its own 404 and 405 answers, in its own error format.
pub fn with_own_fallbacks<E>(
    routes: OpenApiRouter<AppState>,
    answer: fn(ApiError) -> E,
) -> OpenApiRouter<AppState>
where
    E: IntoResponse + 'static,
{
    let (router, document) = routes.split_for_parts();
    let router = router
        .fallback(move || async move { answer(ApiError::new(ErrorCode::NotFound)) })
        .method_not_allowed_fallback(
            move || async move { answer(ApiError::new(ErrorCode::MethodNotAllowed)) },
        );
    OpenApiRouter::with_openapi(document).merge(router.into())
}
