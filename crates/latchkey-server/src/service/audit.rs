//! Audit events: who did what to which factor, when, from where, and how it went.
//! Recording never fails a request; a failure to record is logged instead.

use latchkey_core::factor::FactorType;
use latchkey_store::AuditEvent;
use uuid::Uuid;

use crate::http::extract::ClientMeta;
use crate::service::webhooks;
use crate::state::AppState;

/// An event about to be recorded.
pub struct Event<'a> {
    pub event_type: &'static str,
    pub success: bool,
    pub user_id: Option<&'a str>,
    pub factor: Option<(&'a str, FactorType)>,
    /// Who acted when it was not the user (`api_key:<id>`).
    pub actor: Option<String>,
    /// Why an administrator acted, in their words.
    pub reason: Option<&'a str>,
    pub meta: &'a ClientMeta,
}

impl<'a> Event<'a> {
    pub fn new(event_type: &'static str, user_id: &'a str, meta: &'a ClientMeta) -> Self {
        Self::about(event_type, Some(user_id), meta)
    }

    /// An event about an account that may not exist (a login for an unknown address).
    pub fn about(event_type: &'static str, user_id: Option<&'a str>, meta: &'a ClientMeta) -> Self {
        Self { event_type, success: true, user_id, factor: None, actor: None, reason: None, meta }
    }

    pub fn failed(mut self) -> Self {
        self.success = false;
        self
    }

    pub fn factor(mut self, id: &'a str, factor_type: FactorType) -> Self {
        self.factor = Some((id, factor_type));
        self
    }

    pub fn actor(mut self, actor: Option<String>) -> Self {
        self.actor = actor;
        self
    }

    pub fn reason(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }
}

/// Records `event`: its row, then what follows every recorded event ([`recorded`]).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn record(state: &AppState, event: Event<'_>) {
    let surface = event.meta.surface;
    let record = row(state, event);
    if let Err(error) = state.store.record_audit_event(&record).await {
        tracing::error!(error = %error, event = %record.event_type, "could not record an audit event");
    }
    recorded(state, &record, surface).await;
}

/// The row `event` is stored as.
pub fn row(state: &AppState, event: Event<'_>) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7().to_string(),
        occurred_at: state.now(),
        user_id: event.user_id.map(str::to_owned),
        event_type: event.event_type.to_owned(),
        outcome: if event.success { "success" } else { "failure" }.to_owned(),
        factor_id: event.factor.map(|(id, _)| id.to_owned()),
        factor_type: event.factor.map(|(_, kind)| kind.as_str().to_owned()),
        actor: event.actor,
        ip: event.meta.ip.clone(),
        user_agent: event.meta.user_agent.clone(),
        reason: event.reason.map(str::to_owned),
    }
}

/// What follows a stored row, whoever stored it (this module, or the store inside the
/// transaction that made the decision): the metrics, the log line, the webhooks.
pub async fn recorded(state: &AppState, record: &AuditEvent, surface: &'static str) {
    let factor_type = record.factor_type.as_deref().and_then(FactorType::parse).map(FactorType::as_str);
    state.metrics.audit_event(&record.event_type, surface, factor_type);
    tracing::info!(
        event = %record.event_type,
        outcome = %record.outcome,
        user_id = record.user_id.as_deref().unwrap_or_default(),
        factor_id = record.factor_id.as_deref().unwrap_or_default(),
        "audit"
    );
    webhooks::publish(state, record).await;
}
