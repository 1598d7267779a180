//! Organisations: membership and role, MFA enforcement, and a user's preferred factor
//! type.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqlStore, parse_stored};
use crate::{Membership, OrgRole, OrganizationStore, StoreResult};
use latchkey_core::UnixTime;

#[async_trait]
impl OrganizationStore for SqlStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn membership(&self, user_id: &str) -> StoreResult<Option<Membership>> {
        let row = sqlx::query(
            "SELECT m.org_id, m.role, o.mfa_enforced FROM organization_members m
             JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Membership {
                org_id: row.try_get("org_id")?,
                role: parse_stored(row.try_get("role")?, OrgRole::parse)?,
                mfa_enforced: row.try_get::<i64, _>("mfa_enforced")? != 0,
            })
        })
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn set_membership(
        &self,
        user_id: &str,
        member: Option<(&str, OrgRole)>,
        now: UnixTime,
    ) -> StoreResult<()> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("DELETE FROM organization_members WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if let Some((org_id, role)) = member {
            sqlx::query(
                "INSERT INTO organizations (id, mfa_enforced, created_at, updated_at) VALUES ($1, 0, $2, $2)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(org_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO organization_members (user_id, org_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(user_id)
            .bind(org_id)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(org_id = %org_id))]
    async fn set_mfa_enforced(&self, org_id: &str, enforced: bool, now: UnixTime) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE organizations SET mfa_enforced = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(enforced))
            .bind(now)
            .bind(org_id)
            .execute(&self.writes)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn preferred_factor_type(&self, user_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT preferred_factor_type FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("preferred_factor_type")).transpose()?.flatten())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    async fn set_preferred_factor_type(&self, user_id: &str, factor_type: Option<&str>) -> StoreResult<()> {
        sqlx::query("UPDATE users SET preferred_factor_type = $1 WHERE id = $2")
            .bind(factor_type)
            .bind(user_id)
            .execute(&self.writes)
            .await?;
        Ok(())
    }
}
