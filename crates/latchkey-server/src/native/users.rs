//! `/v1/users`: user administration with an API key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use latchkey_core::email::Email;
use latchkey_store::User;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::rfc3339;
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::extract::{AdminKey, ClientMeta, JsonBody, Path, Query};
use crate::service::accounts::{self, NewAccount};
use crate::service::organizations;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, delete_user))
        .routes(routes!(get_organization, set_organization))
}

/// A user as administrators see it.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub phone: Option<String>,
    pub has_password: bool,
    pub created_at: String,
    pub updated_at: String,
    pub disabled_at: Option<String>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            phone: user.phone,
            has_password: user.password_hash.is_some(),
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
            disabled_at: user.disabled_at.map(rfc3339),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: String,
    /// Absent for users who sign in by magic link only.
    #[schema(value_type = Option<String>)]
    password: Option<SecretString>,
    /// E.164, like `+14155550123`.
    phone: Option<String>,
}

/// Creates a user (scope `users:write`).
#[utoipa::path(post, path = "/v1/users", tag = "users",
    request_body = CreateUser,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created.", body = UserView),
        (status = 403, description = "The key lacks `users:write`.", body = ErrorBody),
        (status = 409, description = "The email address is taken.", body = ErrorBody),
    ))]
async fn create_user(
    State(state): State<AppState>,
    admin: AdminKey,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    admin.require("users:write")?;
    let account = NewAccount { email: body.email, password: body.password, phone: body.phone };
    let user = accounts::create_user(&state, account).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Find the user with this address.
    email: Option<String>,
    /// The `next_after` of the previous page.
    after: Option<String>,
    /// 1 to 200; 50 when absent.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct UserList {
    users: Vec<UserView>,
    /// Pass as `after` to get the next page; absent on the last page.
    next_after: Option<String>,
}

const MAX_PAGE: u32 = 200;

/// Lists users, oldest first, a page at a time (scope `users:read`).
#[utoipa::path(get, path = "/v1/users", tag = "users",
    params(ListQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of users.", body = UserList),
        (status = 400, description = "An invalid query.", body = ErrorBody),
        (status = 403, description = "The key lacks `users:read`.", body = ErrorBody),
        (status = 422, description = "An invalid email address.", body = ErrorBody),
    ))]
async fn list_users(
    State(state): State<AppState>,
    admin: AdminKey,
    Query(query): Query<ListQuery>,
) -> Result<Json<UserList>, ApiError> {
    admin.require("users:read")?;
    if let Some(email) = query.email {
        let email = Email::parse(&email).map_err(|_| ApiError::field(ErrorCode::InvalidEmail, "email"))?;
        let users =
            state.store.user_by_email(&email.normalized).await?.into_iter().map(UserView::from).collect();
        return Ok(Json(UserList { users, next_after: None }));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidQuery)
            .with_message(format!("limit must be between 1 and {MAX_PAGE}.")));
    }
    let users = state.store.list_users(query.after.as_deref(), limit).await?;
    let next_after = (users.len() == limit as usize).then(|| users.last().map(|u| u.id.clone())).flatten();
    Ok(Json(UserList { users: users.into_iter().map(UserView::from).collect(), next_after }))
}

/// One user (scope `users:read`).
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "The user's id.")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The user.", body = UserView),
        (status = 403, description = "The key lacks `users:read`.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
    ))]
async fn get_user(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    admin.require("users:read")?;
    let user = accounts::by_id(&state, &id).await?;
    Ok(Json(user.into()))
}

/// Deletes a user with their factors, sessions and codes (scope `users:write`).
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "The user's id.")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "The key lacks `users:write`.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
    ))]
async fn delete_user(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require("users:write")?;
    accounts::delete(&state, &id, admin.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's organisation (the Flashback surface's `orgId`) and role in it.
#[derive(Serialize, ToSchema)]
struct Organization {
    /// `null` when the user belongs to none.
    org_id: Option<String>,
    /// `owner`, `administrator` or `member`.
    role: Option<String>,
    /// Whether the organisation requires a second factor of every member.
    mfa_enforced: bool,
}

/// Where a user belongs.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OrganizationChange {
    /// The organisation's id (1–100 letters, digits, `-`, `_`, `.`); created when first
    /// named. `null` takes the user out of their organisation.
    org_id: Option<String>,
    /// `owner`, `administrator` or `member` (default): owners and administrators may
    /// enforce MFA for the organisation and reset its members' factors.
    #[schema(example = "member")]
    role: Option<String>,
}

/// The user's organisation and role (scope `users:read`).
#[utoipa::path(get, path = "/v1/users/{id}/organization", tag = "users",
    params(("id" = String, Path, description = "The user's id.")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The membership (`org_id: null` for none).", body = Organization),
        (status = 403, description = "The key lacks `users:read`.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
    ))]
async fn get_organization(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<Organization>, ApiError> {
    admin.require("users:read")?;
    organization_of(&state, &id).await
}

async fn organization_of(state: &AppState, id: &str) -> Result<Json<Organization>, ApiError> {
    accounts::by_id(state, id).await?;
    let membership = organizations::membership(state, id).await?;
    Ok(Json(match membership {
        Some(m) => Organization {
            org_id: Some(m.org_id),
            role: Some(m.role.as_str().to_owned()),
            mfa_enforced: m.mfa_enforced,
        },
        None => Organization { org_id: None, role: None, mfa_enforced: false },
    }))
}

/// Puts the user in an organisation with a role, or takes them out (scope
/// `users:write`).
#[utoipa::path(put, path = "/v1/users/{id}/organization", tag = "users",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = OrganizationChange,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The membership now.", body = Organization),
        (status = 403, description = "The key lacks `users:write`.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
        (status = 422, description = "A bad `org_id` or `role`.", body = ErrorBody),
    ))]
async fn set_organization(
    State(state): State<AppState>,
    admin: AdminKey,
    meta: ClientMeta,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<OrganizationChange>,
) -> Result<Json<Organization>, ApiError> {
    admin.require("users:write")?;
    accounts::by_id(&state, &id).await?;
    let role = match body.role.as_deref() {
        None => latchkey_store::OrgRole::Member,
        Some(text) => latchkey_store::OrgRole::parse(text).ok_or_else(|| {
            ApiError::field(ErrorCode::InvalidField, "role")
                .with_message("`role` is `owner`, `administrator` or `member`.")
        })?,
    };
    let member = body.org_id.as_deref().map(|org_id| (org_id, role));
    organizations::set_membership(&state, &id, member, &admin.actor(), &meta).await?;
    organization_of(&state, &id).await
}
