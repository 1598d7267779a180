//! `/v1/users`: user administration with an API key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use latchkey_core::email::Email;
use latchkey_store::User;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::clock::rfc3339;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{AdminKey, JsonBody, Query};
use crate::service::accounts::{self, NewAccount};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{id}", get(get_user).delete(delete_user))
}

/// A user as administrators see it.
#[derive(Serialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: String,
    password: Option<SecretString>,
    phone: Option<String>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    email: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct UserList {
    users: Vec<UserView>,
    /// Pass as `after` to get the next page; absent on the last page.
    next_after: Option<String>,
}

const MAX_PAGE: u32 = 200;

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

async fn get_user(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    admin.require("users:read")?;
    let user = state.store.user_by_id(&id).await?.ok_or(ErrorCode::UserNotFound)?;
    Ok(Json(user.into()))
}

async fn delete_user(
    State(state): State<AppState>,
    admin: AdminKey,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin.require("users:write")?;
    if !state.store.delete_user(&id).await? {
        return Err(ErrorCode::UserNotFound.into());
    }
    tracing::info!(user_id = %id, api_key = %admin.0.id, "user deleted by an operator");
    Ok(StatusCode::NO_CONTENT)
}
