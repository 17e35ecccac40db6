//! User administration: create, list, read, update, delete, disable and enable users, reset a
//! password, and list or end a user's sessions. Org admins only, except that a user may read their
//! own record and change their own name (the route table enforces who may call; the fields a
//! self-service caller may touch are enforced here).
//!
//! D1 has no transactions: every rule that depends on other rows (unique email and username, "the
//! last active org admin stays") is part of the one conditional statement that makes the change,
//! and the changed-row count says whether it happened. The reads before it only pick a clear error.

use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::{actor, record_change};
use crate::app::{App, Caller, RequestMeta};
use crate::audit::{self, AuditEvent, Outcome};
use crate::authz;
use crate::crypto::{b64url, new_id, random_array};
use crate::error::ApiError;
use crate::flags;
use crate::http::{HttpRequest, HttpResponse};
use crate::identity::{
    self, last_admin_guard, normalize_email, normalize_name, normalize_username, User,
};
use crate::passwords::{self, SALT_BYTES};
use crate::sessions::{self, RevokeReason};
use crate::store::{Database, FlagStore};
use crate::{stmt, ORG_ID};

/// Page size of `GET /v1/users` when `limit` is not given.
const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size of `GET /v1/users`.
const MAX_PAGE_SIZE: u32 = 200;
/// Random bytes of a temporary password (24 base64url characters, 144 bits).
const TEMPORARY_PASSWORD_BYTES: usize = 18;
/// Longest accepted query-parameter value (ids are 36 characters).
const MAX_QUERY_VALUE_CHARS: usize = 64;

const LAST_ADMIN: &str = "the last active org admin cannot be demoted, disabled or deleted";

fn conflict(message: &str) -> ApiError {
    ApiError::Conflict {
        message: message.to_owned(),
    }
}

/// The user `id`, or `404`.
async fn existing<D: Database, F: FlagStore>(app: &App<D, F>, id: &str) -> Result<User, ApiError> {
    identity::find_user(&app.db, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// `200 {"user"}` with the user as stored now (after a change).
async fn reread<D: Database, F: FlagStore>(
    app: &App<D, F>,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let user = existing(app, id).await?;
    Ok(HttpResponse::json(200, &json!({ "user": user.to_json() })))
}

fn user_response(status: u16, user: &User) -> HttpResponse {
    HttpResponse::json(status, &json!({ "user": user.to_json() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    email: String,
    name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    org_admin: Option<bool>,
    #[serde(default)]
    username: Option<String>,
}

pub(super) async fn create<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let body: CreateBody = request.json_body()?;
    let email = normalize_email(&body.email, "email")?;
    let name = normalize_name(&body.name, "name")?;
    let username = body
        .username
        .as_deref()
        .map(|u| normalize_username(u, "username"))
        .transpose()?;
    if let Some(password) = &body.password {
        passwords::check_policy(password, "password")?;
    }
    let role = match (&body.workspace, body.role.as_deref()) {
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                Some("role"),
                "role is the role in `workspace`; give a workspace too",
            ))
        }
        (None, None) => None,
        (Some(_), None) => Some("viewer"),
        (Some(_), Some(role)) => Some(authz::parse_role(role)?.as_str()),
    };
    if let Some(workspace) = &body.workspace {
        if identity::workspace_status(&app.db, workspace)
            .await?
            .as_deref()
            != Some("active")
        {
            return Err(ApiError::invalid(
                Some("workspace"),
                "no active workspace with this id",
            ));
        }
    }
    if identity::email_taken(&app.db, &email, None).await? {
        return Err(conflict("a user with this email already exists"));
    }
    if let Some(username) = &username {
        if identity::username_taken(&app.db, username, None).await? {
            return Err(conflict("a user with this username already exists"));
        }
    }
    let org_admin = body.org_admin.unwrap_or(false);

    let now = app.clock.now();
    let random = app.random.as_ref();
    let user_id = new_id(app.clock.as_ref(), random)?;
    let phc = match &body.password {
        Some(password) => {
            let salt: [u8; SALT_BYTES] = random_array(random)?;
            Some(passwords::hash(
                password,
                &salt,
                app.config.pbkdf2_iterations,
            )?)
        }
        None => None,
    };
    let meta = RequestMeta::of(request);

    // One atomic batch. The user is inserted only if the email and username are still free and the
    // workspace is still active; every later statement depends on that row existing.
    let mut statements = vec![stmt!(
        "INSERT INTO users (id, org_id, email, username, name, status, org_admin, \
         must_change_password, created_by, created_at, updated_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, 'active', ?6, 0, ?7, ?8, ?8 \
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE org_id = ?2 \
                           AND (email = ?3 OR (?4 IS NOT NULL AND username = ?4))) \
           AND (?9 IS NULL OR EXISTS (SELECT 1 FROM workspaces \
                                      WHERE org_id = ?2 AND id = ?9 AND status = 'active'))",
        user_id.clone(),
        ORG_ID,
        email.clone(),
        username.clone(),
        name,
        org_admin,
        caller.user().id.clone(),
        now,
        body.workspace.clone()
    )];
    if let Some(phc) = phc {
        statements.push(stmt!(
            "INSERT INTO password_credentials (user_id, org_id, phc, updated_at) \
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1)",
            user_id.clone(),
            ORG_ID,
            phc,
            now
        ));
    }
    if let (Some(workspace), Some(role)) = (&body.workspace, role) {
        statements.push(stmt!(
            "INSERT INTO memberships (org_id, workspace_id, user_id, role, created_at) \
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?3)",
            ORG_ID,
            workspace.clone(),
            user_id.clone(),
            role,
            now
        ));
    }
    statements.push(audit::statement_if_user_exists(
        app,
        &meta,
        &AuditEvent {
            action: "user_create",
            outcome: Outcome::Success,
            actor: actor(&caller),
            target: Some(("user", &user_id)),
            detail: Some(json!({
                "email": email,
                "username": username,
                "org_admin": org_admin,
                "password_set": body.password.is_some(),
                "workspace": body.workspace,
                "role": role,
            })),
        },
        &user_id,
    )?);
    let changes = app.db.batch(statements).await?;
    if changes.first() != Some(&1) {
        // Lost a race since the checks above: say which rule stopped it. Nothing was written.
        if identity::email_taken(&app.db, &email, None).await? {
            return Err(conflict("a user with this email already exists"));
        }
        if let Some(username) = &username {
            if identity::username_taken(&app.db, username, None).await? {
                return Err(conflict("a user with this username already exists"));
            }
        }
        return Err(ApiError::invalid(
            Some("workspace"),
            "no active workspace with this id",
        ));
    }
    let user = identity::find_user(&app.db, &user_id)
        .await?
        .ok_or_else(|| ApiError::Unavailable {
            detail: "created user missing after insert".into(),
        })?;
    Ok(user_response(201, &user))
}

/// The query of `GET /v1/users`.
#[derive(Debug, PartialEq, Eq)]
struct ListQuery {
    limit: u32,
    cursor: Option<String>,
    workspace: Option<String>,
}

/// Parses `limit`, `cursor` and `workspace`. Their values are ids and numbers, so anything but
/// `[A-Za-z0-9-]` (including percent-escapes) is refused rather than decoded; so are unknown and
/// repeated parameters.
fn parse_list_query(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut limit = None;
    let mut cursor = None;
    let mut workspace = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (slot, field) = match name {
            "limit" => (&mut limit, "limit"),
            "cursor" => (&mut cursor, "cursor"),
            "workspace" => (&mut workspace, "workspace"),
            _ => {
                return Err(ApiError::invalid(
                    None,
                    "unknown query parameter; this route takes limit, cursor and workspace",
                ))
            }
        };
        let well_formed = !value.is_empty()
            && value.len() <= MAX_QUERY_VALUE_CHARS
            && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !well_formed {
            return Err(ApiError::invalid(
                Some(field),
                "must be an id or number: 1 to 64 characters of A-Z, a-z, 0-9 and '-'",
            ));
        }
        if slot.replace(value.to_owned()).is_some() {
            return Err(ApiError::invalid(Some(field), "given more than once"));
        }
    }
    let limit = match limit {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| ApiError::invalid(Some("limit"), "limit must be 1 to 200"))?,
    };
    Ok(ListQuery {
        limit,
        cursor,
        workspace,
    })
}

pub(super) async fn list<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let query = parse_list_query(request.query.as_deref())?;
    // One more than the page: whether it comes back says whether there is a next page.
    let mut users = identity::list_users(
        &app.db,
        query.cursor.as_deref(),
        query.workspace.as_deref(),
        query.limit + 1,
    )
    .await?;
    let more = users.len() > query.limit as usize;
    users.truncate(query.limit as usize);
    let next_cursor = if more {
        users.last().map(|u| u.id.clone())
    } else {
        None
    };
    let users: Vec<_> = users.iter().map(User::to_json).collect();
    Ok(HttpResponse::json(
        200,
        &json!({ "users": users, "next_cursor": next_cursor }),
    ))
}

pub(super) async fn get<D: Database, F: FlagStore>(
    app: &App<D, F>,
    _caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let user = existing(app, id).await?;
    Ok(user_response(200, &user))
}

/// `Some(value)` for a field that is present, even as `null` (`Some(None)`): with `#[serde(default)]`
/// an absent field stays `None`, so "absent", "null" and "a value" are told apart.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(de: D) -> Result<Option<T>, D::Error> {
    T::deserialize(de).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    /// `null` removes the username.
    #[serde(default, deserialize_with = "present")]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    org_admin: Option<Option<bool>>,
}

fn not_null<T>(value: Option<Option<T>>, field: &str) -> Result<Option<T>, ApiError> {
    match value {
        Some(None) => Err(ApiError::invalid(Some(field), "must not be null")),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

pub(super) async fn update<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let body: UpdateBody = request.json_body()?;
    // Self-service covers the display name only. Anything else from a caller without org-admin
    // powers is refused whole, whatever its value: mass assignment fails loudly, changing nothing.
    if !caller.is_org_admin() {
        let only_name = body.email.is_none() && body.username.is_none() && body.org_admin.is_none();
        if caller.user().id != id || !only_name {
            return Err(ApiError::Forbidden);
        }
    }
    let name = not_null(body.name, "name")?
        .map(|n| normalize_name(&n, "name"))
        .transpose()?;
    let email = not_null(body.email, "email")?
        .map(|e| normalize_email(&e, "email"))
        .transpose()?;
    let username = body
        .username
        .map(|u| u.map(|u| normalize_username(&u, "username")).transpose())
        .transpose()?;
    let org_admin = not_null(body.org_admin, "org_admin")?;

    let before = existing(app, id).await?;
    let mut fields = Vec::new();
    if name.as_ref().is_some_and(|n| *n != before.name) {
        fields.push("name");
    }
    if email.as_ref().is_some_and(|e| *e != before.email) {
        fields.push("email");
    }
    if username.as_ref().is_some_and(|u| *u != before.username) {
        fields.push("username");
    }
    if org_admin.is_some_and(|a| a != before.org_admin) {
        fields.push("org_admin");
    }
    if fields.is_empty() {
        return Ok(user_response(200, &before));
    }

    let changed = app
        .db
        .execute(stmt!(
            concat!(
                "UPDATE users SET \
                   name = CASE WHEN ?3 THEN ?4 ELSE name END, \
                   email = CASE WHEN ?5 THEN ?6 ELSE email END, \
                   username = CASE WHEN ?7 THEN ?8 ELSE username END, \
                   org_admin = CASE WHEN ?9 THEN ?10 ELSE org_admin END, \
                   updated_at = ?11 \
                 WHERE id = ?1 AND org_id = ?2 \
                   AND NOT EXISTS (SELECT 1 FROM users d WHERE d.org_id = ?2 AND d.id != ?1 \
                       AND ((?5 AND d.email = ?6) OR (?7 AND ?8 IS NOT NULL AND d.username = ?8))) \
                   AND (NOT ?9 OR ?10 OR ",
                last_admin_guard!(),
                ")"
            ),
            id,
            ORG_ID,
            name.is_some(),
            name.clone(),
            email.is_some(),
            email.clone(),
            username.is_some(),
            username.clone().flatten(),
            org_admin.is_some(),
            org_admin.unwrap_or(false),
            app.clock.now()
        ))
        .await?;
    if changed == 0 {
        existing(app, id).await?;
        if let Some(email) = &email {
            if identity::email_taken(&app.db, email, Some(id)).await? {
                return Err(conflict("a user with this email already exists"));
            }
        }
        if let Some(Some(username)) = &username {
            if identity::username_taken(&app.db, username, Some(id)).await? {
                return Err(conflict("a user with this username already exists"));
            }
        }
        return Err(conflict(LAST_ADMIN));
    }
    record_change(
        app,
        request,
        &caller,
        "user_update",
        ("user", id),
        json!({
            "fields": fields,
            "org_admin": org_admin,
        }),
    )
    .await?;
    reread(app, id).await
}

pub(super) async fn delete<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let user = existing(app, id).await?;
    // Refuse before any side effect; the DELETE below re-checks atomically.
    if identity::is_last_active_admin(&app.db, id).await? {
        return Err(conflict(LAST_ADMIN));
    }
    // The tokens die before the record goes: if KV fails we answer 503 with the user intact,
    // never "deleted" with access tokens that still verify. (The cascade removes the session rows,
    // API keys and memberships; API keys are checked in D1 on every use.)
    let now = app.clock.now();
    let revoked = sessions::revoke_all_for_user(app, id, RevokeReason::AdminRevoked, None).await?;
    flags::revoke_user_tokens(&app.flags, &app.config, id, now).await?;
    let changed = app
        .db
        .execute(stmt!(
            concat!(
                "DELETE FROM users WHERE id = ?1 AND org_id = ?2 AND ",
                last_admin_guard!()
            ),
            id,
            ORG_ID
        ))
        .await?;
    if changed == 0 {
        // Deleted meanwhile by someone else, or the other admins went away since the check.
        existing(app, id).await?;
        return Err(conflict(LAST_ADMIN));
    }
    record_change(
        app,
        request,
        &caller,
        "user_delete",
        ("user", id),
        json!({
            "email": user.email,
            "sessions_revoked": revoked.len(),
        }),
    )
    .await?;
    Ok(HttpResponse::no_content())
}

pub(super) async fn disable<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    request.expect_no_body()?;
    existing(app, id).await?;
    let now = app.clock.now();
    let changed = app
        .db
        .execute(stmt!(
            concat!(
                "UPDATE users SET status = 'disabled', updated_at = ?3 \
                 WHERE id = ?1 AND org_id = ?2 AND ",
                last_admin_guard!()
            ),
            id,
            ORG_ID,
            now
        ))
        .await?;
    if changed == 0 {
        existing(app, id).await?;
        return Err(conflict(LAST_ADMIN));
    }
    // D1 now refuses the user (password login, refresh, API keys, every edgeauth route); the
    // session and user flags make access tokens fail at /v1/verify too. Repeating the call
    // rewrites them, so a KV failure here is healed by a retry.
    let revoked = sessions::revoke_all_for_user(app, id, RevokeReason::UserDisabled, None).await?;
    flags::revoke_user_tokens(&app.flags, &app.config, id, now).await?;
    record_change(
        app,
        request,
        &caller,
        "user_disable",
        ("user", id),
        json!({ "sessions_revoked": revoked.len() }),
    )
    .await?;
    reread(app, id).await
}

pub(super) async fn enable<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    request.expect_no_body()?;
    let user = existing(app, id).await?;
    match user.status.as_str() {
        "active" => return Ok(user_response(200, &user)),
        // A pending account has not proven its email address; enabling must not skip that.
        "pending" => {
            return Err(conflict(
                "the user has not confirmed their email address yet",
            ))
        }
        _ => {}
    }
    // First the user flag's cut-off moves to the second before this one, so that the tokens the
    // user gets from now on pass it (see `flags::reinstate_user_tokens`). Before the D1 update: if
    // KV fails, the answer is 503 and the user is still disabled; if D1 then fails, the user is
    // still disabled and no token can be issued to them, so the earlier cut-off lets nothing in.
    let now = app.clock.now();
    flags::reinstate_user_tokens(&app.flags, &app.config, id, now).await?;
    let changed = app
        .db
        .execute(stmt!(
            "UPDATE users SET status = 'active', updated_at = ?3 \
             WHERE id = ?1 AND org_id = ?2 AND status = 'disabled'",
            id,
            ORG_ID,
            now
        ))
        .await?;
    if changed == 1 {
        record_change(
            app,
            request,
            &caller,
            "user_enable",
            ("user", id),
            serde_json::Value::Null,
        )
        .await?;
    }
    reread(app, id).await
}

pub(super) async fn reset_password<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    request.expect_no_body()?;
    let user = existing(app, id).await?;
    let random = app.random.as_ref();
    let temporary =
        zeroize::Zeroizing::new(b64url(&random_array::<TEMPORARY_PASSWORD_BYTES>(random)?));
    let salt: [u8; SALT_BYTES] = random_array(random)?;
    let phc = passwords::hash(&temporary, &salt, app.config.pbkdf2_iterations)?;
    let now = app.clock.now();
    let changes = app
        .db
        .batch(vec![
            // Conditional on the user, so a concurrent delete makes this a 404, not an FK error.
            stmt!(
                "INSERT INTO password_credentials (user_id, org_id, phc, updated_at) \
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1) \
                 ON CONFLICT (user_id) DO UPDATE SET phc = excluded.phc, updated_at = excluded.updated_at",
                id,
                ORG_ID,
                phc,
                now
            ),
            stmt!(
                "UPDATE users SET must_change_password = 1, updated_at = ?1 \
                 WHERE id = ?2 AND org_id = ?3",
                now,
                id,
                ORG_ID
            ),
        ])
        .await?;
    if changes.get(1) != Some(&1) {
        return Err(ApiError::NotFound);
    }
    // The temporary password must work at once, whatever a guesser did to the old one.
    crate::rate_limits::clear_lockout(
        app,
        &crate::rate_limits::lockout_keys_of(&user.email, user.username.as_deref()),
    )
    .await?;
    // Whoever held the old password loses every session now.
    let revoked = sessions::revoke_all_for_user(app, id, RevokeReason::AdminRevoked, None).await?;
    record_change(
        app,
        request,
        &caller,
        "user_reset_password",
        ("user", id),
        json!({ "sessions_revoked": revoked.len() }),
    )
    .await?;
    let mut response =
        HttpResponse::json(200, &json!({ "temporary_password": temporary.as_str() }));
    response.set_header("cache-control", "no-store");
    Ok(response)
}

pub(super) async fn list_sessions<D: Database, F: FlagStore>(
    app: &App<D, F>,
    _caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    existing(app, id).await?;
    let sessions: Vec<_> = sessions::list_live(app, id)
        .await?
        .iter()
        .map(|s| s.to_json(None))
        .collect();
    Ok(HttpResponse::json(200, &json!({ "sessions": sessions })))
}

pub(super) async fn revoke_sessions<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    existing(app, id).await?;
    let revoked = sessions::revoke_all_for_user(app, id, RevokeReason::AdminRevoked, None).await?;
    record_change(
        app,
        request,
        &caller,
        "user_sessions_revoke",
        ("user", id),
        json!({ "sessions_revoked": revoked.len() }),
    )
    .await?;
    Ok(HttpResponse::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_takes_limit_cursor_and_workspace_and_nothing_else() {
        assert_eq!(
            parse_list_query(None).unwrap(),
            ListQuery {
                limit: DEFAULT_PAGE_SIZE,
                cursor: None,
                workspace: None
            }
        );
        assert_eq!(
            parse_list_query(Some("limit=2&cursor=0190-ab&workspace=w1")).unwrap(),
            ListQuery {
                limit: 2,
                cursor: Some("0190-ab".into()),
                workspace: Some("w1".into())
            }
        );
        let field = |q: &str| match parse_list_query(Some(q)) {
            Err(ApiError::InvalidRequest { field, .. }) => field,
            other => panic!("{q}: {other:?}"),
        };
        for q in [
            "limit=0",
            "limit=201",
            "limit=-1",
            "limit=x",
            "limit=",
            "limit=1&limit=2",
        ] {
            assert_eq!(field(q).as_deref(), Some("limit"), "{q}");
        }
        for q in ["cursor=a%27", "cursor=a'b", "cursor=", "cursor=a+b"] {
            assert_eq!(field(q).as_deref(), Some("cursor"), "{q}");
        }
        assert_eq!(field("workspace=%20").as_deref(), Some("workspace"));
        assert_eq!(field("status=active"), None);
    }
}
