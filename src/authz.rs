//! Authorisation: roles, capability strings (`resource:action`, `*` wildcards) and what a caller may
//! do. Roles map to capabilities through the `role_capabilities` table (editable by org admins), so
//! applications bring their own vocabulary. Every decision fails closed.

use std::fmt;

use crate::error::ApiError;
use crate::store::{BackendError, Database};
use crate::{stmt, ORG_ID};

/// A workspace role, ordered by power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and writes.
    Editor,
    /// Everything in the workspace, including its members.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    /// Parses `viewer`, `editor` or `admin`; anything else is `None` (and so denies).
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// This role, capped by an optional ceiling (an API key's role).
    pub fn capped(self, ceiling: Option<Role>) -> Role {
        ceiling.map_or(self, |c| self.min(c))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a role given in a request body (`field` `role`): `400` for anything but the three roles.
pub fn parse_role(raw: &str) -> Result<Role, ApiError> {
    Role::parse(raw).ok_or_else(|| {
        ApiError::invalid(
            Some("role"),
            "role must be \"viewer\", \"editor\" or \"admin\"",
        )
    })
}

/// Longest capability string we accept.
pub const MAX_CAPABILITY_LEN: usize = 128;

/// Whether `capability` is well formed: `*`, or `resource:action` where each side is `*` or made
/// of `[a-z0-9_.-]`.
pub fn is_valid_capability(capability: &str) -> bool {
    if capability == "*" {
        return true;
    }
    if capability.len() > MAX_CAPABILITY_LEN {
        return false;
    }
    let part_ok = |p: &str| {
        p == "*"
            || (!p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)))
    };
    matches!(capability.split_once(':'), Some((r, a)) if part_ok(r) && part_ok(a) && !a.contains(':'))
}

/// Whether a granted capability covers a wanted one. `*` covers everything; `docs:*` covers every
/// action on `docs`; `*:read` covers `read` on every resource. A wildcard in the *wanted* string is
/// literal: asking for `docs:*` is only granted by `*`, `docs:*` or `*:*`.
pub fn grants(granted: &str, wanted: &str) -> bool {
    if granted == "*" {
        return true;
    }
    let (Some((g_res, g_act)), Some((w_res, w_act))) =
        (granted.split_once(':'), wanted.split_once(':'))
    else {
        return false;
    };
    (g_res == "*" || g_res == w_res) && (g_act == "*" || g_act == w_act)
}

/// The capabilities of `role`.
pub async fn role_capabilities<D: Database>(
    db: &D,
    role: Role,
) -> Result<Vec<String>, BackendError> {
    db.query(stmt!(
        "SELECT capability FROM role_capabilities WHERE org_id = ?1 AND role = ?2 ORDER BY capability",
        ORG_ID,
        role.as_str()
    ))
    .await?
    .iter()
    .map(|r| r.text("capability"))
    .collect()
}

/// Whether `role` has `capability`.
pub async fn role_grants<D: Database>(
    db: &D,
    role: Role,
    capability: &str,
) -> Result<bool, BackendError> {
    Ok(role_capabilities(db, role)
        .await?
        .iter()
        .any(|granted| grants(granted, capability)))
}
