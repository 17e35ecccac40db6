//! Users, workspaces and memberships: the records behind "who is this?". One organisation per
//! deployment ([`crate::ORG_ID`]).

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::store::{BackendError, Database, Row};
use crate::time::rfc3339;
use crate::{stmt, ORG_ID};

/// Longest accepted email address (RFC 5321 path limit).
const MAX_EMAIL_BYTES: usize = 254;
/// Longest accepted username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest accepted display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The columns [`User::from_row`] reads, aliased `u.` (a SQL literal, for `concat!`).
macro_rules! user_columns {
    () => {
        "u.id, u.email, u.username, u.name, u.status, u.org_admin, u.must_change_password, \
         u.created_at"
    };
}

/// A SQL condition on a `users` row, true unless the row is the last active org admin of its
/// organisation. Expects the row's id as `?1` and the org id as `?2`. Put it in the `WHERE` of the
/// `UPDATE` or `DELETE` that demotes, disables or deletes, and check the changed-row count: two
/// admins removing each other at once then cannot leave the organisation with none.
macro_rules! last_admin_guard {
    () => {
        "(NOT (org_admin = 1 AND status = 'active') OR (SELECT COUNT(*) FROM users o \
         WHERE o.org_id = ?2 AND o.org_admin = 1 AND o.status = 'active' AND o.id != ?1) > 0)"
    };
}
pub(crate) use last_admin_guard;

/// A user record (without credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// Optional username.
    pub username: Option<String>,
    /// Display name.
    pub name: String,
    /// `active`, `pending` or `disabled`.
    pub status: String,
    /// Whether the user administers the whole organisation.
    pub org_admin: bool,
    /// Whether the user must change the password before doing anything else.
    pub must_change_password: bool,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

impl User {
    /// Reads a user from a row holding the columns of `user_columns!()`.
    pub(crate) fn from_row(row: &Row) -> Result<Self, BackendError> {
        Ok(User {
            id: row.text("id")?,
            email: row.text("email")?,
            username: row.opt_text("username")?,
            name: row.text("name")?,
            status: row.text("status")?,
            org_admin: row.flag("org_admin")?,
            must_change_password: row.flag("must_change_password")?,
            created_at: row.int("created_at")?,
        })
    }

    /// Whether the user may sign in.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The `user` object of the HTTP contract.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "email": self.email,
            "username": self.username,
            "name": self.name,
            "status": self.status,
            "org_admin": self.org_admin,
            "must_change_password": self.must_change_password,
            "created_at": rfc3339(self.created_at),
        })
    }
}

/// Trims and lower-cases an email address and checks its shape (one `@`, a dotted or `localhost`
/// domain, no spaces or control characters). Lower-casing the local part is a deliberate choice:
/// two accounts differing only in case are a phishing aid, not a feature.
pub fn normalize_email(raw: &str, field: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let bad = || ApiError::invalid(Some(field), "not a valid email address");
    if email.len() > MAX_EMAIL_BYTES || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || !(domain.contains('.') || domain == "localhost")
    {
        return Err(bad());
    }
    Ok(email)
}

/// Finds a user by normalised email.
pub async fn find_user_by_email<D: Database>(
    db: &D,
    email: &str,
) -> Result<Option<User>, BackendError> {
    db.query_one(stmt!(
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.org_id = ?1 AND u.email = ?2"
        ),
        ORG_ID,
        email
    ))
    .await?
    .map(|r| User::from_row(&r))
    .transpose()
}

/// Finds a user by id.
pub async fn find_user<D: Database>(db: &D, id: &str) -> Result<Option<User>, BackendError> {
    db.query_one(stmt!(
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.org_id = ?1 AND u.id = ?2"
        ),
        ORG_ID,
        id
    ))
    .await?
    .map(|r| User::from_row(&r))
    .transpose()
}

/// The stored PHC password record of a user, if the user has a password.
pub async fn find_password_record<D: Database>(
    db: &D,
    user_id: &str,
) -> Result<Option<String>, BackendError> {
    db.query_one(stmt!(
        "SELECT phc FROM password_credentials WHERE user_id = ?1",
        user_id
    ))
    .await?
    .map(|r| r.text("phc"))
    .transpose()
}

/// How a login names its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginName<'a> {
    /// A normalised email address.
    Email(&'a str),
    /// A normalised username.
    Username(&'a str),
}

/// The user a login names, with its password record if it has one, in ONE query: a login for a
/// known user then reads D1 exactly as often as one for an unknown user (enumeration timing).
pub async fn find_login_candidate<D: Database>(
    db: &D,
    name: LoginName<'_>,
) -> Result<Option<(User, Option<String>)>, BackendError> {
    macro_rules! by {
        ($column:literal) => {
            concat!(
                "SELECT ",
                user_columns!(),
                ", c.phc FROM users u LEFT JOIN password_credentials c ON c.user_id = u.id \
                 WHERE u.org_id = ?1 AND u.",
                $column,
                " = ?2"
            )
        };
    }
    let statement = match name {
        LoginName::Email(email) => stmt!(by!("email"), ORG_ID, email),
        LoginName::Username(username) => stmt!(by!("username"), ORG_ID, username),
    };
    db.query_one(statement)
        .await?
        .map(|row| Ok((User::from_row(&row)?, row.opt_text("phc")?)))
        .transpose()
}

/// Whether any user exists (bootstrap is only open while none does).
pub async fn has_any_user<D: Database>(db: &D) -> Result<bool, BackendError> {
    Ok(db
        .query_one(stmt!(
            "SELECT 1 AS one FROM users WHERE org_id = ?1 LIMIT 1",
            ORG_ID
        ))
        .await?
        .is_some())
}

/// A user's membership in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Workspace id.
    pub workspace_id: String,
    /// `viewer`, `editor` or `admin`.
    pub role: String,
}

/// The user's memberships in active workspaces.
pub async fn find_memberships<D: Database>(
    db: &D,
    user_id: &str,
) -> Result<Vec<Membership>, BackendError> {
    db.query(stmt!(
        "SELECT m.workspace_id, m.role FROM memberships m \
         JOIN workspaces w ON w.id = m.workspace_id AND w.status = 'active' \
         WHERE m.org_id = ?1 AND m.user_id = ?2 ORDER BY m.workspace_id",
        ORG_ID,
        user_id
    ))
    .await?
    .iter()
    .map(|r| {
        Ok(Membership {
            workspace_id: r.text("workspace_id")?,
            role: r.text("role")?,
        })
    })
    .collect()
}

/// The `workspace` object of the HTTP contract.
pub fn workspace_json(id: &str, name: &str, status: &str, created_at: i64) -> Value {
    json!({ "id": id, "name": name, "status": status, "created_at": rfc3339(created_at) })
}

/// Trims and lower-cases a username (as login does) and checks it: 1 to 64 characters of
/// `[a-z0-9._-]`. No `@`, so a username can never look like someone else's email address.
pub fn normalize_username(raw: &str, field: &str) -> Result<String, ApiError> {
    let username = raw.trim().to_lowercase();
    let ok = !username.is_empty()
        && username.chars().count() <= MAX_USERNAME_CHARS
        && username
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(username)
    } else {
        Err(ApiError::invalid(
            Some(field),
            "username must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-'",
        ))
    }
}

/// Trims a display name and checks its length (1 to 200 characters, no control characters).
pub fn normalize_name(raw: &str, field: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            Some(field),
            "name must be 1 to 200 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

/// Users in id order (ids are UUIDv7, so this is creation order): at most `limit` users whose id
/// sorts after `after`, only members of `workspace_id` when given. Every status is listed.
pub async fn list_users<D: Database>(
    db: &D,
    after: Option<&str>,
    workspace_id: Option<&str>,
    limit: u32,
) -> Result<Vec<User>, BackendError> {
    db.query(stmt!(
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.org_id = ?1 AND (?2 IS NULL OR u.id > ?2) \
             AND (?3 IS NULL OR EXISTS (SELECT 1 FROM memberships m \
                  WHERE m.org_id = ?1 AND m.workspace_id = ?3 AND m.user_id = u.id)) \
             ORDER BY u.id LIMIT ?4"
        ),
        ORG_ID,
        after,
        workspace_id,
        limit
    ))
    .await?
    .iter()
    .map(User::from_row)
    .collect()
}

/// The status of a workspace (`active` or `disabled`), or `None` if there is no such workspace.
pub async fn workspace_status<D: Database>(
    db: &D,
    workspace_id: &str,
) -> Result<Option<String>, BackendError> {
    db.query_one(stmt!(
        "SELECT status FROM workspaces WHERE org_id = ?1 AND id = ?2",
        ORG_ID,
        workspace_id
    ))
    .await?
    .map(|r| r.text("status"))
    .transpose()
}

/// Whether `workspace_id` exists and is active.
pub async fn is_workspace_active<D: Database>(
    db: &D,
    workspace_id: &str,
) -> Result<bool, BackendError> {
    Ok(workspace_status(db, workspace_id).await?.as_deref() == Some("active"))
}

/// Whether another user than `except_id` already has `email` (normalised).
pub async fn email_taken<D: Database>(
    db: &D,
    email: &str,
    except_id: Option<&str>,
) -> Result<bool, BackendError> {
    Ok(db
        .query_one(stmt!(
            "SELECT 1 AS one FROM users WHERE org_id = ?1 AND email = ?2 AND id IS NOT ?3",
            ORG_ID,
            email,
            except_id
        ))
        .await?
        .is_some())
}

/// Whether another user than `except_id` already has `username` (normalised).
pub async fn username_taken<D: Database>(
    db: &D,
    username: &str,
    except_id: Option<&str>,
) -> Result<bool, BackendError> {
    Ok(db
        .query_one(stmt!(
            "SELECT 1 AS one FROM users WHERE org_id = ?1 AND username = ?2 AND id IS NOT ?3",
            ORG_ID,
            username,
            except_id
        ))
        .await?
        .is_some())
}

/// Whether `user_id` is an active org admin with no other active org admin beside it: the one
/// account that may not be demoted, disabled or deleted. (A hint for a clear error; the change
/// itself must still be a conditional statement: `last_admin_guard!()`.)
pub async fn is_last_active_admin<D: Database>(
    db: &D,
    user_id: &str,
) -> Result<bool, BackendError> {
    Ok(db
        .query_one(stmt!(
            concat!(
                "SELECT 1 AS one FROM users WHERE org_id = ?2 AND id = ?1 AND NOT ",
                last_admin_guard!()
            ),
            user_id,
            ORG_ID
        ))
        .await?
        .is_some())
}
