//! API key routes: create (the plaintext is shown once), list (never the secret), revoke. A key can
//! never do more than the credential that created it: its workspace scope, role ceiling and expiry
//! are bounded by the caller's.

use serde::Deserialize;
use serde_json::json;

use super::record_change;
use crate::api_keys::{self, NewKey};
use crate::app::{App, Caller, Principal};
use crate::authz::{self, Role};
use crate::crypto::new_id;
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::identity;
use crate::store::{Database, FlagStore};
use crate::time::parse_rfc3339;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

pub(super) async fn create<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let body: CreateBody = request.json_body()?;
    let now = app.clock.now();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            Some("name"),
            "name must be 1 to 100 characters",
        ));
    }
    let role = match body.role.as_deref() {
        None => None,
        Some(r) => Some(authz::parse_role(r)?),
    };
    let expires_at = match body.expires_at.as_deref() {
        None => None,
        Some(t) => {
            let at = parse_rfc3339(t).ok_or_else(|| {
                ApiError::invalid(
                    Some("expires_at"),
                    "expires_at must be an RFC 3339 timestamp",
                )
            })?;
            if at <= now {
                return Err(ApiError::invalid(
                    Some("expires_at"),
                    "expires_at must be in the future",
                ));
            }
            Some(at)
        }
    };

    // The new key's scope must sit inside the caller's own.
    if let Principal::ApiKey { key: parent, .. } = &caller.principal {
        if parent.workspace_id.is_some() && body.workspace != parent.workspace_id {
            return Err(ApiError::Forbidden);
        }
        if let Some(ceiling) = parent.role.as_deref().and_then(Role::parse) {
            if role.is_none_or(|r| r > ceiling) {
                return Err(ApiError::Forbidden);
            }
        }
        if let Some(parent_expiry) = parent.expires_at {
            if expires_at.is_none_or(|at| at > parent_expiry) {
                return Err(ApiError::Forbidden);
            }
        }
    }
    if let Some(workspace) = &body.workspace {
        let memberships = identity::find_memberships(&app.db, &caller.user().id).await?;
        let member = caller.role_in(workspace, &memberships).is_some();
        let exists_for_admin =
            caller.is_org_admin() && identity::is_workspace_active(&app.db, workspace).await?;
        if !member && !exists_for_admin {
            return Err(ApiError::invalid(
                Some("workspace"),
                "not a workspace you can give a key for",
            ));
        }
    }

    let id = new_id(app.clock.as_ref(), app.random.as_ref())?;
    let (record, plaintext) = api_keys::create(
        &app.db,
        app.random.as_ref(),
        id,
        &caller.user().id,
        NewKey {
            name,
            workspace_id: body.workspace,
            role: role.map(|r| r.as_str().to_owned()),
            expires_at,
        },
        now,
    )
    .await?;
    record_change(
        app,
        request,
        &caller,
        "api_key_create",
        ("api_key", &record.id),
        json!({ "workspace": record.workspace_id, "role": record.role }),
    )
    .await?;
    Ok(HttpResponse::json(
        201,
        &json!({ "api_key": record.to_json(), "key": plaintext }),
    ))
}

pub(super) async fn list<D: Database, F: FlagStore>(
    app: &App<D, F>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let keys: Vec<_> = api_keys::list_live(&app.db, &caller.user().id, app.clock.now())
        .await?
        .iter()
        .map(api_keys::ApiKey::to_json)
        .collect();
    Ok(HttpResponse::json(200, &json!({ "api_keys": keys })))
}

pub(super) async fn revoke<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    key_id: &str,
) -> Result<HttpResponse, ApiError> {
    // Your own keys; org admins may revoke anyone's. Other keys are indistinguishable from none.
    let key = api_keys::find_unrevoked(&app.db, key_id)
        .await?
        .filter(|k| k.user_id == caller.user().id || caller.is_org_admin())
        .ok_or(ApiError::NotFound)?;
    api_keys::revoke(&app.db, &app.flags, &app.config, &key.id, app.clock.now()).await?;
    record_change(
        app,
        request,
        &caller,
        "api_key_revoke",
        ("api_key", &key.id),
        json!({ "owner": key.user_id }),
    )
    .await?;
    Ok(HttpResponse::no_content())
}
