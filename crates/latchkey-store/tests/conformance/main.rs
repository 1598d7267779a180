//! The store conformance suite: every behaviour the service relies on, run against
//! SQLite and PostgreSQL alike.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey_store::testing::TestDatabase;
use latchkey_store::{Backend, SqlStore};

/// Runs each named test once on SQLite and once on PostgreSQL, as `name::sqlite` and
/// `name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                crate::run(latchkey_store::Backend::Sqlite, super::$name).await
            }
            #[tokio::test]
            async fn postgres() {
                crate::run(latchkey_store::Backend::Postgres, super::$name).await
            }
        }
    )*};
}

async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = TestDatabase::create(backend).await;
    let store = db.store().await;
    test(store).await;
}

mod account_tokens;
mod accounts;
mod attempts;
mod audit;
mod challenges;
mod delivery;
mod devices;
mod factors;
mod organizations;
mod webauthn;
mod webhooks;
