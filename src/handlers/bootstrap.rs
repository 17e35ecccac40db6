//! Bootstrap: the first org admin, a default workspace and an admin API key, created once with the
//! `BOOTSTRAP_TOKEN` secret while no user exists.

use serde::Deserialize;
use serde_json::json;

use crate::api_keys;
use crate::app::{App, RequestMeta};
use crate::audit::{self, Actor, AuditEvent, Outcome};
use crate::crypto::{new_id, random_array};
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::identity::{self, normalize_email};
use crate::passwords::{self, SALT_BYTES};
use crate::store::{Database, FlagStore};
use crate::{stmt, ORG_ID};

pub(super) async fn status<D: Database, F: FlagStore>(
    app: &App<D, F>,
) -> Result<HttpResponse, ApiError> {
    let available =
        app.config.bootstrap_token.is_some() && !identity::has_any_user(&app.db).await?;
    Ok(HttpResponse::json(
        200,
        &json!({ "bootstrap_available": available }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapBody {
    // Judged before this struct is read (see `bootstrap`); declared so unknown-field checking
    // accepts it.
    #[serde(default, rename = "token")]
    _token: Option<serde_json::Value>,
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
}

pub(super) async fn bootstrap<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let meta = RequestMeta::of(request);
    // The token is judged before the rest of the body: without the right one, every refusal,
    // malformed body included, is the same 401.
    let token = request
        .json_body::<serde_json::Value>()
        .ok()
        .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_owned));
    // Any refusal - no token configured, wrong token, already bootstrapped - is the same 401.
    let token_ok = app
        .config
        .bootstrap_token
        .as_ref()
        .zip(token.as_deref())
        .is_some_and(|(expected, given)| expected.matches(given.as_bytes()));
    if !token_ok || identity::has_any_user(&app.db).await? {
        audit::record(
            app,
            &meta,
            AuditEvent {
                action: "bootstrap",
                outcome: Outcome::Failure,
                actor: Actor::Anonymous,
                target: None,
                detail: None,
            },
        )
        .await?;
        return Err(ApiError::AuthFailure);
    }
    let body: BootstrapBody = request.json_body()?;
    let email = normalize_email(&body.email, "email")?;
    passwords::check_policy(&body.password, "password")?;
    let name = body
        .name
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect::<String>();

    let now = app.clock.now();
    let clock = app.clock.as_ref();
    let random = app.random.as_ref();
    let user_id = new_id(clock, random)?;
    let workspace_id = new_id(clock, random)?;
    let key_id = new_id(clock, random)?;
    let salt: [u8; SALT_BYTES] = random_array(random)?;
    let phc = passwords::hash(&body.password, &salt, app.config.pbkdf2_iterations)?;
    let key = api_keys::generate(random)?;

    // One atomic batch. The first INSERT only happens while no user exists; every later statement
    // depends on that row, so a concurrent second bootstrap changes nothing at all.
    let changes = app
        .db
        .batch(vec![
            stmt!(
                "INSERT INTO users (id, org_id, email, name, status, org_admin, must_change_password, \
                 created_at, updated_at) \
                 SELECT ?1, ?2, ?3, ?4, 'active', 1, 0, ?5, ?5 \
                 WHERE NOT EXISTS (SELECT 1 FROM users WHERE org_id = ?2)",
                user_id.clone(),
                ORG_ID,
                email.clone(),
                name.clone(),
                now
            ),
            stmt!(
                "INSERT INTO password_credentials (user_id, org_id, phc, updated_at) \
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1)",
                user_id.clone(),
                ORG_ID,
                phc,
                now
            ),
            stmt!(
                "INSERT INTO workspaces (id, org_id, name, status, created_at, updated_at) \
                 SELECT ?1, ?2, 'Default', 'active', ?3, ?3 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?4)",
                workspace_id.clone(),
                ORG_ID,
                now,
                user_id.clone()
            ),
            stmt!(
                "INSERT INTO memberships (org_id, workspace_id, user_id, role, created_at) \
                 SELECT ?1, ?2, ?3, 'admin', ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?3)",
                ORG_ID,
                workspace_id.clone(),
                user_id.clone(),
                now
            ),
            stmt!(
                "INSERT INTO api_keys (id, org_id, user_id, workspace_id, name, prefix, key_hash, \
                 role, created_at) \
                 SELECT ?1, ?2, ?3, NULL, 'bootstrap', ?4, ?5, NULL, ?6 \
                 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?3)",
                key_id.clone(),
                ORG_ID,
                user_id.clone(),
                key.prefix.clone(),
                key.hash.clone(),
                now
            ),
            audit::statement_if_user_exists(
                app,
                &meta,
                &AuditEvent {
                    action: "bootstrap",
                    outcome: Outcome::Success,
                    actor: Actor::Anonymous,
                    target: Some(("user", &user_id)),
                    detail: Some(json!({ "workspace_id": workspace_id, "api_key_id": key_id })),
                },
                &user_id,
            )?,
        ])
        .await?;
    if changes.first() != Some(&1) {
        // Lost the race to a concurrent bootstrap: nothing of ours was written.
        return Err(ApiError::AuthFailure);
    }

    let user = identity::find_user(&app.db, &user_id)
        .await?
        .ok_or_else(|| ApiError::Unavailable {
            detail: "bootstrap user missing after insert".into(),
        })?;
    let api_key = api_keys::ApiKey {
        id: key_id,
        user_id: user.id.clone(),
        name: "bootstrap".into(),
        prefix: key.prefix.clone(),
        workspace_id: None,
        role: None,
        expires_at: None,
        created_at: now,
        last_used_at: None,
    };
    Ok(HttpResponse::json(
        201,
        &json!({
            "user": user.to_json(),
            "workspace": identity::workspace_json(&workspace_id, "Default", "active", now),
            "api_key": api_key.to_json(),
            "key": key.plaintext,
        }),
    ))
}
