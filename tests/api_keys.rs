//! API keys: creation shows the plaintext once, listing never does, revocation and expiry take
//! effect at once, and the audit log can be paged and filtered.

mod common;

use common::*;
use edgeauth::http::{HttpRequest, Method};
use serde_json::json;

#[test]
fn a_key_is_shown_once_listed_without_its_secret_and_revoked_everywhere() {
    let (app, clock) = app(&[]);
    let admin_key = text(&bootstrap(&app), "key");
    let access = text(&login_token_mode(&app), "access_token");
    let created = send(
        &app,
        with_bearer(
            post(
                "/v1/api-keys",
                json!({ "name": "deploy bot", "role": "editor" }),
            ),
            &access,
        ),
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.header_value("cache-control"), Some("no-store"));
    let body = created.json_value();
    let key = text(&body, "key");
    let key_id = body["api_key"]["id"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("ea_") && key.len() >= 3 + 22,
        "at least 128 random bits: {key}"
    );
    assert_eq!(body["api_key"]["role"], "editor");
    assert_eq!(body["api_key"]["prefix"].as_str().unwrap(), &key[..11]);

    // Using it records last use, at most once per 5 minutes (not a write per request).
    assert!(is_active(&app, &key));
    let used = app.db.rows(
        "SELECT last_used_at FROM api_keys WHERE id = ?1",
        &[key_id.as_str().into()],
    );
    assert_eq!(used[0].opt_int("last_used_at").unwrap(), Some(T0));
    clock.advance(60);
    assert!(is_active(&app, &key));
    let used = app.db.rows(
        "SELECT last_used_at FROM api_keys WHERE id = ?1",
        &[key_id.as_str().into()],
    );
    assert_eq!(
        used[0].opt_int("last_used_at").unwrap(),
        Some(T0),
        "throttled"
    );

    let list = send(
        &app,
        with_bearer(HttpRequest::new(Method::Get, "/v1/api-keys"), &access),
    );
    assert_eq!(list.status, 200);
    let listed = list.json_value()["api_keys"].as_array().unwrap().clone();
    assert!(listed.iter().any(|k| k["id"] == key_id.as_str()));
    assert!(
        !String::from_utf8_lossy(&list.body).contains(&key),
        "never the secret"
    );

    let revoke = send(
        &app,
        with_bearer(
            HttpRequest::new(Method::Delete, &format!("/v1/api-keys/{key_id}")),
            &access,
        ),
    );
    assert_eq!(revoke.status, 204);
    assert!(!is_active(&app, &key));
    assert!(app
        .flags
        .inner()
        .values
        .borrow()
        .contains_key(&format!("revoked:api_key:{key_id}")));
    let again = send(
        &app,
        with_bearer(HttpRequest::new(Method::Get, "/v1/me"), &key),
    );
    assert_eq!(again.json_value(), auth_failure_body());
    assert_eq!(
        send(
            &app,
            with_bearer(
                HttpRequest::new(Method::Delete, &format!("/v1/api-keys/{key_id}")),
                &access
            )
        )
        .status,
        404
    );

    // The plaintext appears in no stored row and no audit event.
    for table in ["api_keys", "audit_events"] {
        let dump = format!("{:?}", app.db.rows(&format!("SELECT * FROM {table}"), &[]));
        assert!(!dump.contains(&key), "{table} holds the key");
        assert!(
            !dump.contains(&admin_key),
            "{table} holds the bootstrap key"
        );
    }
}

#[test]
fn an_expired_key_is_inactive() {
    let (app, clock) = app(&[]);
    let admin_key = text(&bootstrap(&app), "key");
    let created = send(
        &app,
        with_bearer(
            post(
                "/v1/api-keys",
                json!({ "name": "short", "expires_at": "2026-01-15T11:00:00Z" }),
            ),
            &admin_key,
        ),
    );
    assert_eq!(created.status, 201);
    let key = text(&created.json_value(), "key");
    assert!(is_active(&app, &key));
    clock.advance(3600);
    assert!(!is_active(&app, &key));
    let past = send(
        &app,
        with_bearer(
            post(
                "/v1/api-keys",
                json!({ "name": "old", "expires_at": "2020-01-01T00:00:00Z" }),
            ),
            &admin_key,
        ),
    );
    assert_eq!(past.json_value()["error"]["field"], "expires_at");
}

#[test]
fn keys_belong_to_their_owner() {
    let (app, _clock) = app(&[]);
    let admin_key = text(&bootstrap(&app), "key");
    insert_user(&app, "eve@example.test", "eve password", false);
    let eve = access_token_for(&app, "eve@example.test", "eve password", None);
    let admin_keys = send(
        &app,
        with_bearer(HttpRequest::new(Method::Get, "/v1/api-keys"), &admin_key),
    )
    .json_value();
    let bootstrap_key_id = admin_keys["api_keys"][0]["id"].as_str().unwrap().to_owned();
    let eve_list = send(
        &app,
        with_bearer(HttpRequest::new(Method::Get, "/v1/api-keys"), &eve),
    )
    .json_value();
    assert_eq!(eve_list["api_keys"], json!([]));
    let steal = send(
        &app,
        with_bearer(
            HttpRequest::new(Method::Delete, &format!("/v1/api-keys/{bootstrap_key_id}")),
            &eve,
        ),
    );
    assert_eq!(steal.status, 404);
    assert!(is_active(&app, &admin_key));
    let foreign_ws = send(
        &app,
        with_bearer(
            post(
                "/v1/api-keys",
                json!({ "name": "x", "workspace": "ws-nope" }),
            ),
            &eve,
        ),
    );
    assert_eq!(foreign_ws.json_value()["error"]["field"], "workspace");
}

#[test]
fn the_audit_log_pages_and_filters_for_org_admins_only() {
    let (app, clock) = app(&[]);
    let admin_key = text(&bootstrap(&app), "key");
    for _ in 0..3 {
        clock.advance(1);
        login_token_mode(&app);
    }
    let get = |query: &str, credential: &str| {
        send(
            &app,
            with_bearer(
                HttpRequest::new(Method::Get, &format!("/v1/audit{query}")),
                credential,
            ),
        )
    };
    let first = get("?action=login&limit=2", &admin_key);
    assert_eq!(first.status, 200);
    let first = first.json_value();
    assert_eq!(first["events"].as_array().unwrap().len(), 2);
    assert!(first["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["action"] == "login"));
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = get(
        &format!("?action=login&limit=2&cursor={cursor}"),
        &admin_key,
    )
    .json_value();
    assert_eq!(second["events"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], json!(null));
    assert!(
        second["events"][0]["id"].as_str().unwrap() < cursor.as_str(),
        "newest first"
    );
    let bootstrap_events = get("?action=bootstrap", &admin_key).json_value();
    assert_eq!(bootstrap_events["events"][0]["outcome"], "success");
    assert_eq!(get("?limit=0", &admin_key).status, 400);
    assert_eq!(get("?actor=%27%20OR%201%3D1", &admin_key).status, 400);
    insert_user(&app, "eve@example.test", "eve password", false);
    let eve = access_token_for(&app, "eve@example.test", "eve password", None);
    assert_eq!(get("", &eve).status, 403);
}
