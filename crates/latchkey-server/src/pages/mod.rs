//! Pages a person opens in a browser, rendered by the server (askama templates in
//! `templates/pages/`), with CSRF cookies and a strict Content-Security-Policy: for now
//! the page a magic link opens.

mod magic_link;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every page's routes, documented in the native document.
pub fn routes() -> OpenApiRouter<AppState> {
    magic_link::routes()
}
