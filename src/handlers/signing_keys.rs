//! `GET /v1/signing-keys` and `POST /v1/signing-keys/rotate` (org admins): the keys behind the JWKS,
//! and rotation on demand (the cron trigger rotates on schedule, see src/upkeep.rs).

use serde_json::{json, Value};

use super::record_change;
use crate::app::{App, Caller};
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::signing_keys::{self, SigningKeyRecord};
use crate::store::{Database, FlagStore};

pub(super) async fn list<D: Database, F: FlagStore>(
    app: &App<D, F>,
) -> Result<HttpResponse, ApiError> {
    // Loading the ring makes the first key if there is none, and refuses keys made under another
    // SIGNING_SECRET, exactly as the JWKS does.
    app.key_ring().await?;
    let keys: Vec<Value> = signing_keys::list(&app.db)
        .await?
        .iter()
        .map(SigningKeyRecord::to_json)
        .collect();
    Ok(HttpResponse::json(200, &json!({ "signing_keys": keys })))
}

/// Rotates now. The body, if any, is ignored (there is nothing to choose). Answers the key that is
/// current afterwards: this request's new key, or a concurrent rotation's.
pub(super) async fn rotate<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    request.expect_no_body()?;
    let seen = signing_keys::current(&app.db).await?;
    let rotation = signing_keys::rotate(app, seen.as_ref().map(|k| k.kid.as_str())).await?;
    record_change(
        app,
        request,
        &caller,
        "signing_key_rotate",
        ("signing_key", &rotation.current.kid),
        json!({ "retired": rotation.retired, "created": rotation.created }),
    )
    .await?;
    Ok(HttpResponse::json(
        200,
        &json!({ "signing_key": rotation.current.to_json() }),
    ))
}
