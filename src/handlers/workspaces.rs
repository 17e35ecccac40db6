//! Workspace routes: create, list, read, rename and disable workspaces (org admins), and their
//! members (org admins, or an `admin` of that workspace). The route table has already checked the
//! requirement; these handlers check existence, input and state, write, and audit every change.

use serde::Deserialize;
use serde_json::json;

use super::record_change;
use crate::app::{App, Caller};
use crate::authz;
use crate::crypto::new_id;
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::identity;
use crate::store::{Database, FlagStore};
use crate::workspaces::{self, PutMemberError, Workspace};

fn workspace_response(status: u16, workspace: &Workspace) -> HttpResponse {
    HttpResponse::json(status, &json!({ "workspace": workspace.to_json() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

pub(super) async fn create<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let body: NameBody = request.json_body()?;
    let name = workspaces::normalize_name(&body.name)?;
    let id = new_id(app.clock.as_ref(), app.random.as_ref())?;
    let workspace = workspaces::create(&app.db, &id, &name, app.clock.now()).await?;
    record_change(
        app,
        request,
        &caller,
        "workspace_create",
        ("workspace", &workspace.id),
        json!({ "name": workspace.name }),
    )
    .await?;
    Ok(workspace_response(201, &workspace))
}

/// Org admins see every workspace, disabled ones included; anyone else sees the active workspaces it
/// is a member of, and an API key scoped to a workspace only that one.
pub(super) async fn list<D: Database, F: FlagStore>(
    app: &App<D, F>,
    _request: &HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let visible = if caller.is_org_admin() {
        workspaces::list_all(&app.db).await?
    } else {
        let user_id = &caller.user().id;
        let memberships = identity::find_memberships(&app.db, user_id).await?;
        let mut own = workspaces::list_for_user(&app.db, user_id).await?;
        own.retain(|w| caller.role_in(&w.id, &memberships).is_some());
        own
    };
    let list: Vec<_> = visible.iter().map(Workspace::to_json).collect();
    Ok(HttpResponse::json(200, &json!({ "workspaces": list })))
}

pub(super) async fn get<D: Database, F: FlagStore>(
    app: &App<D, F>,
    _caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let workspace = workspaces::find(&app.db, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(workspace_response(200, &workspace))
}

pub(super) async fn update<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let body: NameBody = request.json_body()?;
    let name = workspaces::normalize_name(&body.name)?;
    let before = workspaces::find(&app.db, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let workspace = workspaces::rename(&app.db, id, &name, app.clock.now())
        .await?
        .ok_or(ApiError::NotFound)?;
    record_change(
        app,
        request,
        &caller,
        "workspace_update",
        ("workspace", &workspace.id),
        json!({ "name": workspace.name, "previous_name": before.name }),
    )
    .await?;
    Ok(workspace_response(200, &workspace))
}

/// Disabling is idempotent: an already disabled workspace answers `200` again, and only the call
/// that changed it is audited.
pub(super) async fn disable<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    // The route takes no body; anything sent must still be an (empty) JSON object.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    let _: Empty = request.json_body()?;
    let changed = workspaces::disable(&app.db, id, app.clock.now()).await?;
    let workspace = workspaces::find(&app.db, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if changed {
        record_change(
            app,
            request,
            &caller,
            "workspace_disable",
            ("workspace", &workspace.id),
            json!({ "name": workspace.name }),
        )
        .await?;
    }
    Ok(workspace_response(200, &workspace))
}

pub(super) async fn list_members<D: Database, F: FlagStore>(
    app: &App<D, F>,
    _request: &HttpRequest,
    _caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    // Only org admins can reach an unknown or disabled workspace here: for anyone else the
    // requirement needs a counting membership in it.
    workspaces::find(&app.db, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let members: Vec<_> = workspaces::list_members(&app.db, id)
        .await?
        .iter()
        .map(workspaces::Member::to_json)
        .collect();
    Ok(HttpResponse::json(200, &json!({ "members": members })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

pub(super) async fn put_member<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
    user_id: &str,
) -> Result<HttpResponse, ApiError> {
    let body: RoleBody = request.json_body()?;
    let role = authz::parse_role(&body.role)?;
    let previous = workspaces::find_member(&app.db, id, user_id).await?;
    let member = match workspaces::put_member(&app.db, id, user_id, role, app.clock.now()).await {
        Ok(member) => member,
        Err(PutMemberError::WorkspaceNotFound | PutMemberError::UserNotFound) => {
            return Err(ApiError::NotFound)
        }
        Err(PutMemberError::WorkspaceDisabled) => {
            return Err(ApiError::Conflict {
                message: "workspace is disabled".to_owned(),
            })
        }
        Err(PutMemberError::Backend(err)) => return Err(err.into()),
    };
    record_change(
        app,
        request,
        &caller,
        "member_put",
        ("user", user_id),
        json!({
            "workspace_id": member.workspace_id,
            "role": member.role,
            "previous_role": previous.map(|m| m.role),
        }),
    )
    .await?;
    Ok(HttpResponse::json(
        200,
        &json!({ "membership": member.to_json() }),
    ))
}

pub(super) async fn remove_member<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
    user_id: &str,
) -> Result<HttpResponse, ApiError> {
    let removed = workspaces::remove_member(&app.db, id, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    record_change(
        app,
        request,
        &caller,
        "member_remove",
        ("user", user_id),
        json!({ "workspace_id": removed.workspace_id, "role": removed.role }),
    )
    .await?;
    Ok(HttpResponse::no_content())
}
