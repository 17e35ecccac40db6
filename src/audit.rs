//! The audit log: who did what to whom, when, from where, and the outcome. Details are small JSON
//! objects that never hold a password, token or key.

use serde_json::Value;

use crate::app::{App, RequestMeta};
use crate::crypto::new_id;
use crate::store::{BackendError, Database, FlagStore, SqlValue, Statement};
use crate::ORG_ID;

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// A signed-in user (by session).
    User(&'a str),
    /// An API key (by key id).
    ApiKey(&'a str),
    /// Nobody authenticated (failed logins, bootstrap).
    Anonymous,
    /// edgeauth itself (scheduled upkeep, reuse detection).
    System,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused or failed.
    Failure,
    /// An authorisation decision said no.
    Denied,
}

/// One event.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// What happened, e.g. `login`, `refresh_reuse`, `logout`.
    pub action: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// Who did it.
    pub actor: Actor<'a>,
    /// To whom or what: (kind, id).
    pub target: Option<(&'a str, &'a str)>,
    /// Extra facts, free of secrets.
    pub detail: Option<Value>,
}

/// The INSERT for `event`, to run alone or inside a batch with the change it records.
pub fn statement<D: Database, F: FlagStore>(
    app: &App<D, F>,
    meta: &RequestMeta,
    event: &AuditEvent<'_>,
) -> Result<Statement, BackendError> {
    Ok(Statement {
        sql: "INSERT INTO audit_events (id, org_id, occurred_at, actor_kind, actor_id, action, \
              target_kind, target_id, outcome, ip, user_agent, detail) \
              VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params: values(app, meta, event)?,
    })
}

/// Like [`statement`], but inserts only if user `user_id` exists at that point of the batch: for
/// batches whose first statement creates the user conditionally.
pub fn statement_if_user_exists<D: Database, F: FlagStore>(
    app: &App<D, F>,
    meta: &RequestMeta,
    event: &AuditEvent<'_>,
    user_id: &str,
) -> Result<Statement, BackendError> {
    let mut params = values(app, meta, event)?;
    params.push(SqlValue::from(user_id));
    Ok(Statement {
        sql: "INSERT INTO audit_events (id, org_id, occurred_at, actor_kind, actor_id, action, \
              target_kind, target_id, outcome, ip, user_agent, detail) \
              SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 \
              WHERE EXISTS (SELECT 1 FROM users WHERE id = ?13)",
        params,
    })
}

fn values<D: Database, F: FlagStore>(
    app: &App<D, F>,
    meta: &RequestMeta,
    event: &AuditEvent<'_>,
) -> Result<Vec<SqlValue>, BackendError> {
    let (actor_kind, actor_id) = match event.actor {
        Actor::User(id) => ("user", Some(id)),
        Actor::ApiKey(id) => ("api_key", Some(id)),
        Actor::Anonymous => ("anonymous", None),
        Actor::System => ("system", None),
    };
    let outcome = match event.outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Denied => "denied",
    };
    Ok(vec![
        new_id(app.clock.as_ref(), app.random.as_ref())?.into(),
        ORG_ID.into(),
        app.clock.now().into(),
        actor_kind.into(),
        actor_id.into(),
        event.action.into(),
        event.target.map(|t| t.0).into(),
        event.target.map(|t| t.1).into(),
        outcome.into(),
        meta.ip.clone().into(),
        meta.user_agent.clone().into(),
        event.detail.as_ref().map(Value::to_string).into(),
    ])
}

/// Records `event` on its own.
pub async fn record<D: Database, F: FlagStore>(
    app: &App<D, F>,
    meta: &RequestMeta,
    event: AuditEvent<'_>,
) -> Result<(), BackendError> {
    app.db.execute(statement(app, meta, &event)?).await?;
    Ok(())
}
