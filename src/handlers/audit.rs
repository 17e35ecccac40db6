//! `GET /v1/audit`: the audit log for org admins, newest first, paged by event id (UUIDv7, so id
//! order is time order), filtered by actor and action.

use serde_json::{json, Value};

use crate::app::App;
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::store::{Database, FlagStore, Row};
use crate::time::rfc3339;
use crate::{stmt, ORG_ID};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// A filter value we accept: ids, action names, cursors.
fn plain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

fn filter(request: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    match request.query_param(name) {
        None => Ok(None),
        Some(v) if plain(&v) => Ok(Some(v)),
        Some(_) => Err(ApiError::invalid(
            Some(name),
            &format!("{name} is not a valid value"),
        )),
    }
}

pub(super) async fn list<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let limit = match request.query_param("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::invalid(Some("limit"), "limit must be 1 to 200"))?,
    };
    let cursor = filter(request, "cursor")?;
    let actor = filter(request, "actor")?;
    let action = filter(request, "action")?;
    // One statement; absent filters are NULL and match everything. One more row than asked tells
    // whether there is a next page.
    let rows = app
        .db
        .query(stmt!(
            "SELECT id, occurred_at, actor_kind, actor_id, action, target_kind, target_id, outcome, \
                    ip, user_agent, detail FROM audit_events \
             WHERE org_id = ?1 AND (?2 IS NULL OR id < ?2) AND (?3 IS NULL OR actor_id = ?3) \
               AND (?4 IS NULL OR action = ?4) \
             ORDER BY id DESC LIMIT ?5",
            ORG_ID,
            cursor,
            actor,
            action,
            limit + 1
        ))
        .await?;
    let has_more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > limit;
    let events = rows
        .iter()
        .take(usize::try_from(limit).unwrap_or(0))
        .map(event_json)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if has_more {
        events
            .last()
            .map(|e| e["id"].clone())
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    Ok(HttpResponse::json(
        200,
        &json!({ "events": events, "next_cursor": next_cursor }),
    ))
}

fn event_json(row: &Row) -> Result<Value, ApiError> {
    let detail = row
        .opt_text("detail")?
        .and_then(|d| serde_json::from_str::<Value>(&d).ok())
        .unwrap_or(Value::Null);
    Ok(json!({
        "id": row.text("id")?,
        "occurred_at": rfc3339(row.int("occurred_at")?),
        "actor": { "kind": row.text("actor_kind")?, "id": row.opt_text("actor_id")? },
        "action": row.text("action")?,
        "target": { "kind": row.opt_text("target_kind")?, "id": row.opt_text("target_id")? },
        "outcome": row.text("outcome")?,
        "ip": row.opt_text("ip")?,
        "user_agent": row.opt_text("user_agent")?,
        "detail": detail,
    }))
}
