//! The native API, `/v1/...`: authentication, the account's lifecycle (password
//! reset, address changes, recovery), the signed-in user's factors and devices, the
//! administrators' API, the audit log, and operations (health, readiness, keys, the
//! OpenAPI documents and the `/docs` page).

mod account;
mod admin_factors;
mod audit;
pub mod auth;
mod devices;
pub mod factors;
mod introspect;
mod me;
pub mod metrics;
mod ops;
mod sessions;
mod users;
mod webhooks;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every native route, documented.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(ops::routes())
        .merge(auth::routes())
        .merge(account::routes())
        .merge(introspect::routes())
        .merge(me::routes())
        .merge(users::routes())
        .merge(factors::routes())
        .merge(devices::routes())
        .merge(sessions::routes())
        .merge(admin_factors::routes())
        .merge(audit::routes())
        .merge(metrics::routes())
        .merge(webhooks::routes())
}
