//! Roles and authorisation decisions. `/v1/authorize` judges either a `token` in the body (another
//! Worker asking about its caller) or the caller's own credential. Any doubt denies.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::actor;
use crate::app::{App, Caller, Principal, RequestMeta};
use crate::audit::{self, AuditEvent, Outcome};
use crate::authz::{self, Role};
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::identity::{self, Membership};
use crate::store::{Database, FlagStore, Statement};
use crate::{stmt, ORG_ID};

/// How long a decision may be cached by the asker, at most (never past the subject token's expiry).
const DECISION_TTL: i64 = 30;
/// Most checks in one batch.
const MAX_BATCH: usize = 100;
/// Most capabilities per role.
const MAX_ROLE_CAPABILITIES: usize = 100;

pub(super) async fn list_roles<D: Database, F: FlagStore>(
    app: &App<D, F>,
) -> Result<HttpResponse, ApiError> {
    let mut roles = Vec::new();
    for role in Role::ALL {
        let capabilities = authz::role_capabilities(&app.db, role).await?;
        roles.push(json!({ "role": role.as_str(), "capabilities": capabilities }));
    }
    Ok(HttpResponse::json(200, &json!({ "roles": roles })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRoleBody {
    capabilities: Vec<String>,
}

pub(super) async fn put_role<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    role_name: &str,
) -> Result<HttpResponse, ApiError> {
    let role = Role::parse(role_name).ok_or(ApiError::NotFound)?;
    let body: PutRoleBody = request.json_body()?;
    let mut capabilities = body.capabilities;
    capabilities.sort();
    capabilities.dedup();
    if capabilities.len() > MAX_ROLE_CAPABILITIES {
        return Err(ApiError::invalid(
            Some("capabilities"),
            "at most 100 capabilities per role",
        ));
    }
    if let Some(bad) = capabilities.iter().find(|c| !authz::is_valid_capability(c)) {
        return Err(ApiError::invalid(
            Some("capabilities"),
            &format!(
                "`{}` is not a capability (resource:action, `*` wildcards)",
                bad.chars().take(140).collect::<String>()
            ),
        ));
    }
    // Replace the set atomically: one batch, one statement per row (D1 binds at most 100 values).
    let mut statements: Vec<Statement> = vec![stmt!(
        "DELETE FROM role_capabilities WHERE org_id = ?1 AND role = ?2",
        ORG_ID,
        role.as_str()
    )];
    statements.extend(capabilities.iter().map(|c| {
        stmt!(
            "INSERT INTO role_capabilities (org_id, role, capability) VALUES (?1, ?2, ?3)",
            ORG_ID,
            role.as_str(),
            c.clone()
        )
    }));
    statements.push(audit::statement(
        app,
        &RequestMeta::of(request),
        &AuditEvent {
            action: "role_update",
            outcome: Outcome::Success,
            actor: actor(&caller),
            target: Some(("role", role.as_str())),
            detail: Some(json!({ "capabilities": capabilities })),
        },
    )?);
    app.db.batch(statements).await?;
    Ok(HttpResponse::json(
        200,
        &json!({ "role": role.as_str(), "capabilities": capabilities }),
    ))
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Check {
    capability: String,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    resource: Option<String>,
}

// The fields are spelled out rather than flattening `Check`: serde cannot deny unknown fields
// through `flatten`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorizeBody {
    #[serde(default)]
    token: Option<String>,
    capability: String,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    resource: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[serde(default)]
    token: Option<String>,
    checks: Vec<Check>,
}

pub(super) async fn authorize<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Option<Caller>,
) -> Result<HttpResponse, ApiError> {
    let body: AuthorizeBody = request.json_body()?;
    let check = Check {
        capability: body.capability,
        workspace: body.workspace,
        resource: body.resource,
    };
    validate(&check, "capability")?;
    let decisions = decide_all(app, request, caller, body.token, &[check]).await?;
    Ok(HttpResponse::json(200, &decisions[0]))
}

pub(super) async fn authorize_batch<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Option<Caller>,
) -> Result<HttpResponse, ApiError> {
    let body: BatchBody = request.json_body()?;
    if body.checks.is_empty() || body.checks.len() > MAX_BATCH {
        return Err(ApiError::invalid(Some("checks"), "give 1 to 100 checks"));
    }
    for (i, check) in body.checks.iter().enumerate() {
        validate(check, &format!("checks[{i}].capability"))?;
    }
    let decisions = decide_all(app, request, caller, body.token, &body.checks).await?;
    Ok(HttpResponse::json(200, &json!({ "decisions": decisions })))
}

fn validate(check: &Check, field: &str) -> Result<(), ApiError> {
    if authz::is_valid_capability(&check.capability) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            Some(field),
            "capability must be resource:action",
        ))
    }
}

/// Judges every check for one subject. The subject is the body's token if given, else the caller.
async fn decide_all<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Option<Caller>,
    token: Option<String>,
    checks: &[Check],
) -> Result<Vec<Value>, ApiError> {
    let subject = match token {
        Some(token) => app.caller_for_token(&token).await?,
        None => Some(caller.ok_or(ApiError::AuthFailure)?),
    };
    let deny = json!({ "allow": false, "ttl": 0 });
    let Some(subject) = subject else {
        // An inactive token is not an error for the asker: it is a "no".
        return Ok(vec![deny; checks.len()]);
    };
    let now = app.clock.now();
    let ttl = match &subject.principal {
        Principal::Session { access, .. } => (access.expires_at() - now).clamp(0, DECISION_TTL),
        Principal::ApiKey { key, .. } => key
            .expires_at
            .map_or(DECISION_TTL, |e| (e - now).clamp(0, DECISION_TTL)),
    };
    let default_workspace = match &subject.principal {
        Principal::Session { access, .. } => access.claims().ws.clone(),
        Principal::ApiKey { key, .. } => key.workspace_id.clone(),
    };
    let memberships = identity::find_memberships(&app.db, &subject.user().id).await?;
    let org_admin = subject.is_org_admin();
    let mut role_cache: HashMap<Role, Vec<String>> = HashMap::new();
    let mut decisions = Vec::with_capacity(checks.len());
    for check in checks {
        let workspace = check
            .workspace
            .clone()
            .or_else(|| default_workspace.clone());
        let allow = match workspace.as_deref() {
            None => false,
            Some(ws) => {
                allows(
                    app,
                    &subject,
                    org_admin,
                    &memberships,
                    ws,
                    &check.capability,
                    &mut role_cache,
                )
                .await?
            }
        };
        if !allow {
            audit::record(
                app,
                &RequestMeta::of(request),
                AuditEvent {
                    action: "authorize",
                    outcome: Outcome::Denied,
                    actor: actor(&subject),
                    target: workspace.as_deref().map(|w| ("workspace", w)),
                    detail: Some(
                        json!({ "capability": check.capability, "resource": check.resource }),
                    ),
                },
            )
            .await?;
        }
        decisions.push(json!({ "allow": allow, "ttl": ttl }));
    }
    Ok(decisions)
}

async fn allows<D: Database, F: FlagStore>(
    app: &App<D, F>,
    subject: &Caller,
    org_admin: bool,
    memberships: &[Membership],
    workspace: &str,
    capability: &str,
    role_cache: &mut HashMap<Role, Vec<String>>,
) -> Result<bool, ApiError> {
    if org_admin {
        // Org admins hold every capability in every active workspace of the organisation.
        return Ok(identity::is_workspace_active(&app.db, workspace).await?);
    }
    // Memberships only count in active workspaces; an API key is capped by its ceiling and scope.
    let Some(role) = subject.role_in(workspace, memberships) else {
        return Ok(false);
    };
    let capabilities = match role_cache.entry(role) {
        Entry::Occupied(cached) => cached.into_mut(),
        Entry::Vacant(slot) => slot.insert(authz::role_capabilities(&app.db, role).await?),
    };
    Ok(capabilities
        .iter()
        .any(|granted| authz::grants(granted, capability)))
}
