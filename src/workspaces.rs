//! Workspaces (= teams) and memberships: creating, renaming and disabling workspaces, and the
//! `viewer | editor | admin` role of each member. A disabled workspace keeps its rows, but its
//! memberships stop counting ([`crate::identity::find_memberships`] only sees active workspaces), so
//! its members lose every right in it at once.

use serde_json::{json, Value};

use crate::authz::Role;
use crate::error::ApiError;
use crate::identity;
use crate::store::{BackendError, Database, Row};
use crate::{stmt, ORG_ID};

/// Longest workspace name, in characters (after trimming).
pub const MAX_NAME_CHARS: usize = 100;

/// A workspace record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

impl Workspace {
    fn from_row(row: &Row) -> Result<Self, BackendError> {
        Ok(Workspace {
            id: row.text("id")?,
            name: row.text("name")?,
            status: row.text("status")?,
            created_at: row.int("created_at")?,
        })
    }

    /// Whether its memberships count.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The `workspace` object of the HTTP contract.
    pub fn to_json(&self) -> Value {
        identity::workspace_json(&self.id, &self.name, &self.status, self.created_at)
    }
}

/// A user's role in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Workspace id.
    pub workspace_id: String,
    /// User id.
    pub user_id: String,
    /// `viewer`, `editor` or `admin`.
    pub role: String,
}

impl Member {
    fn from_row(row: &Row) -> Result<Self, BackendError> {
        Ok(Member {
            workspace_id: row.text("workspace_id")?,
            user_id: row.text("user_id")?,
            role: row.text("role")?,
        })
    }

    /// The `membership` object of the HTTP contract.
    pub fn to_json(&self) -> Value {
        json!({ "workspace_id": self.workspace_id, "user_id": self.user_id, "role": self.role })
    }
}

/// Trims a workspace name and checks it: 1 to [`MAX_NAME_CHARS`] characters, no control characters
/// (they have no place in a display name and only serve to forge lines in logs and UIs).
pub fn normalize_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            Some("name"),
            "name must be 1 to 100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            Some("name"),
            "name must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// Creates an active workspace.
pub async fn create<D: Database>(
    db: &D,
    id: &str,
    name: &str,
    now: i64,
) -> Result<Workspace, BackendError> {
    db.execute(stmt!(
        "INSERT INTO workspaces (id, org_id, name, status, created_at, updated_at) \
         VALUES (?1, ?2, ?3, 'active', ?4, ?4)",
        id,
        ORG_ID,
        name,
        now
    ))
    .await?;
    Ok(Workspace {
        id: id.to_owned(),
        name: name.to_owned(),
        status: "active".to_owned(),
        created_at: now,
    })
}

/// Finds a workspace of the organisation, active or not.
pub async fn find<D: Database>(db: &D, id: &str) -> Result<Option<Workspace>, BackendError> {
    db.query_one(stmt!(
        "SELECT id, name, status, created_at FROM workspaces WHERE org_id = ?1 AND id = ?2",
        ORG_ID,
        id
    ))
    .await?
    .map(|r| Workspace::from_row(&r))
    .transpose()
}

/// Every workspace of the organisation, active or not, by id.
pub async fn list_all<D: Database>(db: &D) -> Result<Vec<Workspace>, BackendError> {
    db.query(stmt!(
        "SELECT id, name, status, created_at FROM workspaces WHERE org_id = ?1 ORDER BY id",
        ORG_ID
    ))
    .await?
    .iter()
    .map(Workspace::from_row)
    .collect()
}

/// The active workspaces in which `user_id` has a membership, by id.
pub async fn list_for_user<D: Database>(
    db: &D,
    user_id: &str,
) -> Result<Vec<Workspace>, BackendError> {
    db.query(stmt!(
        "SELECT w.id, w.name, w.status, w.created_at FROM workspaces w \
         JOIN memberships m ON m.workspace_id = w.id AND m.org_id = ?1 AND m.user_id = ?2 \
         WHERE w.org_id = ?1 AND w.status = 'active' ORDER BY w.id",
        ORG_ID,
        user_id
    ))
    .await?
    .iter()
    .map(Workspace::from_row)
    .collect()
}

/// Renames a workspace; `None` if there is no such workspace.
pub async fn rename<D: Database>(
    db: &D,
    id: &str,
    name: &str,
    now: i64,
) -> Result<Option<Workspace>, BackendError> {
    db.query_one(stmt!(
        "UPDATE workspaces SET name = ?1, updated_at = ?2 WHERE org_id = ?3 AND id = ?4 \
         RETURNING id, name, status, created_at",
        name,
        now,
        ORG_ID,
        id
    ))
    .await?
    .map(|r| Workspace::from_row(&r))
    .transpose()
}

/// Disables a workspace. Returns whether this call changed it (`false` when it was already
/// disabled or does not exist).
pub async fn disable<D: Database>(db: &D, id: &str, now: i64) -> Result<bool, BackendError> {
    let changed = db
        .execute(stmt!(
            "UPDATE workspaces SET status = 'disabled', updated_at = ?1 \
             WHERE org_id = ?2 AND id = ?3 AND status = 'active'",
            now,
            ORG_ID,
            id
        ))
        .await?;
    Ok(changed > 0)
}

/// The members of a workspace, by user id.
pub async fn list_members<D: Database>(
    db: &D,
    workspace_id: &str,
) -> Result<Vec<Member>, BackendError> {
    db.query(stmt!(
        "SELECT workspace_id, user_id, role FROM memberships \
         WHERE org_id = ?1 AND workspace_id = ?2 ORDER BY user_id",
        ORG_ID,
        workspace_id
    ))
    .await?
    .iter()
    .map(Member::from_row)
    .collect()
}

/// One membership, whatever the workspace's status.
pub async fn find_member<D: Database>(
    db: &D,
    workspace_id: &str,
    user_id: &str,
) -> Result<Option<Member>, BackendError> {
    db.query_one(stmt!(
        "SELECT workspace_id, user_id, role FROM memberships \
         WHERE org_id = ?1 AND workspace_id = ?2 AND user_id = ?3",
        ORG_ID,
        workspace_id,
        user_id
    ))
    .await?
    .map(|r| Member::from_row(&r))
    .transpose()
}

/// Why a membership could not be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMemberError {
    /// No such workspace in the organisation.
    WorkspaceNotFound,
    /// The workspace is disabled: it takes no new or changed memberships.
    WorkspaceDisabled,
    /// No such user in the organisation.
    UserNotFound,
    /// Storage failed.
    Backend(BackendError),
}

impl From<BackendError> for PutMemberError {
    fn from(err: BackendError) -> Self {
        PutMemberError::Backend(err)
    }
}

/// Creates or changes the membership of `user_id` in `workspace_id`. One conditional UPSERT: it
/// writes only while the workspace is active and the user exists, so a concurrent disable or user
/// deletion cannot slip a membership in; when it writes nothing, a second look says why.
pub async fn put_member<D: Database>(
    db: &D,
    workspace_id: &str,
    user_id: &str,
    role: Role,
    now: i64,
) -> Result<Member, PutMemberError> {
    let changed = db
        .execute(stmt!(
            "INSERT INTO memberships (org_id, workspace_id, user_id, role, created_at) \
             SELECT ?1, ?2, ?3, ?4, ?5 \
             WHERE EXISTS (SELECT 1 FROM workspaces WHERE org_id = ?1 AND id = ?2 AND status = 'active') \
             AND EXISTS (SELECT 1 FROM users WHERE org_id = ?1 AND id = ?3) \
             ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role \
             WHERE memberships.org_id = ?1",
            ORG_ID,
            workspace_id,
            user_id,
            role.as_str(),
            now
        ))
        .await?;
    if changed == 0 {
        return Err(match find(db, workspace_id).await? {
            None => PutMemberError::WorkspaceNotFound,
            Some(w) if !w.is_active() => PutMemberError::WorkspaceDisabled,
            Some(_) => PutMemberError::UserNotFound,
        });
    }
    Ok(Member {
        workspace_id: workspace_id.to_owned(),
        user_id: user_id.to_owned(),
        role: role.as_str().to_owned(),
    })
}

/// Removes a membership; returns the one removed, if there was one.
pub async fn remove_member<D: Database>(
    db: &D,
    workspace_id: &str,
    user_id: &str,
) -> Result<Option<Member>, BackendError> {
    db.query_one(stmt!(
        "DELETE FROM memberships WHERE org_id = ?1 AND workspace_id = ?2 AND user_id = ?3 \
         RETURNING workspace_id, user_id, role",
        ORG_ID,
        workspace_id,
        user_id
    ))
    .await?
    .map(|r| Member::from_row(&r))
    .transpose()
}
