//! User administration over HTTP, against real SQLite: creation, paging, self-service limits, the
//! last-admin rule (also under concurrency), disable/enable, delete, password reset, a user's
//! sessions, and the audit trail of every change.

mod common;

use common::*;
use edgeauth::api_keys;
use edgeauth::http::{HttpRequest, HttpResponse, Method};
use edgeauth::routes::{Requirement, RouteId};
use edgeauth::stmt;
use edgeauth::store::{Database, SqlValue};
use serde_json::{json, Value};

const USER_PASSWORD: &str = "a long enough passphrase";

/// Bootstraps; returns the admin's API-key `Authorization` header and the bootstrap body.
fn setup() -> (TestApp, TestClock, String, Value) {
    let (app, clock) = app(&[]);
    let boot = bootstrap(&app);
    let auth = format!("Bearer {}", text(&boot, "key"));
    (app, clock, auth, boot)
}

fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> HttpResponse {
    let mut request = HttpRequest::new(method, path).header("authorization", auth);
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(app, request)
}

fn bearer(login: &Value) -> String {
    format!("Bearer {}", text(login, "access_token"))
}

/// `POST /v1/users`, asserting `201`; returns the `user` object.
fn create_user(app: &TestApp, auth: &str, body: Value) -> Value {
    let response = call(app, Method::Post, "/v1/users", auth, Some(body));
    assert_eq!(response.status, 201, "create: {:?}", response.json_value());
    response.json_value()["user"].clone()
}

/// A plain user (no org admin) with [`USER_PASSWORD`]; returns its id.
fn plain_user(app: &TestApp, auth: &str, email: &str) -> String {
    let user = create_user(
        app,
        auth,
        json!({ "email": email, "name": "Plain User", "password": USER_PASSWORD }),
    );
    text(&user, "id")
}

fn login_as(app: &TestApp, email: &str, password: &str) -> HttpResponse {
    send(
        app,
        post(
            "/v1/auth/login",
            json!({ "email": email, "password": password, "session": "token" }),
        ),
    )
}

/// Logs in, asserting `200`; returns the body.
fn logged_in(app: &TestApp, email: &str, password: &str) -> Value {
    let response = login_as(app, email, password);
    assert_eq!(response.status, 200, "login: {:?}", response.json_value());
    response.json_value()
}

/// Creates an API key for `user_id` directly in the database; returns (plaintext, id).
fn insert_api_key(app: &TestApp, user_id: &str, workspace: Option<&str>) -> (String, String) {
    let key = api_keys::generate(&OsRandom).unwrap();
    let id = format!("key-{}", &key.hash[..16]);
    block_on(app.db.execute(stmt!(
        "INSERT INTO api_keys (id, org_id, user_id, workspace_id, name, prefix, key_hash, created_at) \
         VALUES (?1, 'default', ?2, ?3, 'test', ?4, ?5, ?6)",
        id.clone(),
        user_id,
        workspace,
        key.prefix.clone(),
        key.hash.clone(),
        T0
    )))
    .unwrap();
    (key.plaintext, id)
}

fn user_row(app: &TestApp, id: &str) -> Option<edgeauth::store::Row> {
    app.db
        .rows(
            "SELECT email, username, name, status, org_admin, must_change_password, created_by \
             FROM users WHERE id = ?1",
            &[SqlValue::from(id)],
        )
        .into_iter()
        .next()
}

fn count(app: &TestApp, sql: &str, id: &str) -> i64 {
    app.db.rows(sql, &[SqlValue::from(id)])[0].int("n").unwrap()
}

fn audit_actions(app: &TestApp) -> Vec<(String, String, Option<String>, Option<String>)> {
    app.db
        .rows(
            "SELECT action, actor_kind, actor_id, target_id FROM audit_events ORDER BY rowid",
            &[],
        )
        .iter()
        .map(|r| {
            (
                r.text("action").unwrap(),
                r.text("actor_kind").unwrap(),
                r.opt_text("actor_id").unwrap(),
                r.opt_text("target_id").unwrap(),
            )
        })
        .collect()
}

fn error_code(response: &HttpResponse) -> String {
    response.json_value()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn error_field(response: &HttpResponse) -> Value {
    response.json_value()["error"]["field"].clone()
}

#[test]
fn admin_creates_a_user_who_logs_in_with_the_given_password() {
    let (app, _clock, auth, boot) = setup();
    let workspace = text(&boot["workspace"], "id");
    let admin_id = text(&boot["user"], "id");
    let user = create_user(
        &app,
        &auth,
        json!({
            "email": "  Alice@Example.TEST ", "name": " Alice ", "password": USER_PASSWORD,
            "workspace": workspace, "role": "editor", "username": "Alice.B"
        }),
    );
    let mut keys: Vec<_> = user.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "email",
            "id",
            "must_change_password",
            "name",
            "org_admin",
            "status",
            "username"
        ]
    );
    assert_eq!(user["email"], "alice@example.test");
    assert_eq!(user["username"], "alice.b");
    assert_eq!(user["name"], "Alice");
    assert_eq!(user["status"], "active");
    assert_eq!(user["org_admin"], false);
    assert_eq!(user["must_change_password"], false);
    assert_eq!(user["created_at"], "2026-01-15T10:00:00Z");
    let id = text(&user, "id");
    assert_eq!(
        user_row(&app, &id).unwrap().text("created_by").unwrap(),
        admin_id
    );

    // The password works, by email and by username; the membership carries the role.
    let login = logged_in(&app, "alice@example.test", USER_PASSWORD);
    assert_eq!(login["user"]["id"], id);
    let by_username = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "username": "alice.b", "password": USER_PASSWORD, "session": "token", "workspace": workspace }),
        ),
    );
    assert_eq!(by_username.status, 200);
    let me = call(&app, Method::Get, "/v1/me", &bearer(&login), None).json_value();
    assert_eq!(
        me["memberships"],
        json!([{ "workspace_id": workspace, "role": "editor" }])
    );
    assert_eq!(me["org_admin"], false);

    // Without a password there is no credential at all: password login is impossible.
    let no_password = create_user(
        &app,
        &auth,
        json!({ "email": "bob@example.test", "name": "Bob", "workspace": workspace }),
    );
    let bob = text(&no_password, "id");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM password_credentials WHERE user_id = ?1",
            &bob
        ),
        0
    );
    let role = app.db.rows(
        "SELECT role FROM memberships WHERE user_id = ?1",
        &[SqlValue::from(bob.as_str())],
    );
    assert_eq!(role[0].text("role").unwrap(), "viewer", "default role");
    assert_eq!(login_as(&app, "bob@example.test", "").status, 401);

    // An org admin can be created directly.
    let admin2 = create_user(
        &app,
        &auth,
        json!({ "email": "carol@example.test", "name": "Carol", "org_admin": true, "password": USER_PASSWORD }),
    );
    assert_eq!(admin2["org_admin"], true);
    let carol = logged_in(&app, "carol@example.test", USER_PASSWORD);
    assert_eq!(
        call(&app, Method::Get, "/v1/users", &bearer(&carol), None).status,
        200
    );
}

#[test]
fn creation_refuses_duplicates_and_bad_input_and_writes_nothing() {
    let (app, _clock, auth, boot) = setup();
    let workspace = text(&boot["workspace"], "id");
    create_user(
        &app,
        &auth,
        json!({ "email": "dup@example.test", "name": "Dup", "username": "dupe" }),
    );
    let users_before = app.db.rows("SELECT COUNT(*) AS n FROM users", &[])[0]
        .int("n")
        .unwrap();

    let duplicate_email = call(
        &app,
        Method::Post,
        "/v1/users",
        &auth,
        Some(json!({ "email": "DUP@example.test", "name": "Other" })),
    );
    assert_eq!(duplicate_email.status, 409);
    assert_eq!(error_code(&duplicate_email), "conflict");
    let duplicate_username = call(
        &app,
        Method::Post,
        "/v1/users",
        &auth,
        Some(json!({ "email": "other@example.test", "name": "Other", "username": "DUPE" })),
    );
    assert_eq!(duplicate_username.status, 409);

    // Disabled workspace, for the "must be active" rule.
    block_on(app.db.execute(stmt!(
        "INSERT INTO workspaces (id, org_id, name, status, created_at, updated_at) \
         VALUES ('ws-off', 'default', 'Off', 'disabled', ?1, ?1)",
        T0
    )))
    .unwrap();
    let cases = [
        (
            json!({ "email": "x@example.test", "name": "X", "status": "active" }),
            "status",
        ),
        (
            json!({ "email": "x@example.test", "name": "X", "created_by": "someone" }),
            "created_by",
        ),
        (json!({ "email": "x@example.test" }), "name"),
        (json!({ "email": "not-an-email", "name": "X" }), "email"),
        (
            json!({ "email": "x@example.test", "name": "X", "password": "short" }),
            "password",
        ),
        (
            json!({ "email": "x@example.test", "name": "X", "workspace": workspace, "role": "owner" }),
            "role",
        ),
        (
            json!({ "email": "x@example.test", "name": "X", "role": "admin" }),
            "role",
        ),
        (
            json!({ "email": "x@example.test", "name": "X", "workspace": "no-such-workspace" }),
            "workspace",
        ),
        (
            json!({ "email": "x@example.test", "name": "X", "workspace": "ws-off" }),
            "workspace",
        ),
        (
            json!({ "email": "x@example.test", "name": "X", "username": "has space" }),
            "username",
        ),
        (
            json!({ "email": "x@example.test", "name": "X", "username": "a@b.c" }),
            "username",
        ),
        (
            json!({ "email": "x@example.test", "name": "X", "org_admin": "yes" }),
            "org_admin",
        ),
    ];
    for (body, field) in cases {
        let response = call(&app, Method::Post, "/v1/users", &auth, Some(body.clone()));
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(error_field(&response), field, "{body}");
    }
    let users_after = app.db.rows("SELECT COUNT(*) AS n FROM users", &[])[0]
        .int("n")
        .unwrap();
    assert_eq!(users_after, users_before);
    assert_eq!(
        app.db.rows("SELECT COUNT(*) AS n FROM memberships", &[])[0]
            .int("n")
            .unwrap(),
        1,
        "only the bootstrap admin's"
    );
}

#[test]
fn users_are_paged_by_id_and_filtered_by_workspace() {
    let (app, _clock, auth, boot) = setup();
    let workspace = text(&boot["workspace"], "id");
    let admin_id = text(&boot["user"], "id");
    let mut members = vec![admin_id];
    for i in 0..5 {
        let mut body =
            json!({ "email": format!("user{i}@example.test"), "name": format!("User {i}") });
        if i % 2 == 0 {
            body["workspace"] = json!(workspace);
        }
        let id = text(&create_user(&app, &auth, body), "id");
        if i % 2 == 0 {
            members.push(id);
        }
    }
    let expected: Vec<String> = app
        .db
        .rows("SELECT id FROM users ORDER BY id", &[])
        .iter()
        .map(|r| r.text("id").unwrap())
        .collect();
    assert_eq!(expected.len(), 6);

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users?limit=2&cursor={c}"),
            None => "/v1/users?limit=2".to_owned(),
        };
        let response = call(&app, Method::Get, &path, &auth, None);
        assert_eq!(response.status, 200);
        let body = response.json_value();
        let page: Vec<String> = body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| text(u, "id"))
            .collect();
        pages.push(page.len());
        seen.extend(page.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), page.last().map(String::as_str));
                cursor = Some(next.to_owned());
            }
            None => {
                assert!(body["next_cursor"].is_null());
                break;
            }
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(seen, expected, "every user once, in id order");
    assert_eq!(pages, [2, 2, 2]);

    // Default page holds everyone, with a null cursor.
    let all = call(&app, Method::Get, "/v1/users", &auth, None).json_value();
    assert_eq!(all["users"].as_array().unwrap().len(), 6);
    assert!(all["next_cursor"].is_null());

    // Workspace filter: exactly its members, in id order.
    members.sort();
    let filtered = call(
        &app,
        Method::Get,
        &format!("/v1/users?workspace={workspace}"),
        &auth,
        None,
    )
    .json_value();
    let ids: Vec<String> = filtered["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| text(u, "id"))
        .collect();
    assert_eq!(ids, members);
    let filtered_page = call(
        &app,
        Method::Get,
        &format!(
            "/v1/users?workspace={workspace}&limit=1&cursor={}",
            members[0]
        ),
        &auth,
        None,
    )
    .json_value();
    assert_eq!(filtered_page["users"][0]["id"], members[1].as_str());
    assert_eq!(filtered_page["next_cursor"], members[1].as_str());

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%27%20OR%201=1", "cursor"),
        ("cursor=a'b", "cursor"),
        ("workspace=", "workspace"),
        ("limit=1&limit=2", "limit"),
    ] {
        let response = call(
            &app,
            Method::Get,
            &format!("/v1/users?{query}"),
            &auth,
            None,
        );
        assert_eq!(response.status, 400, "{query}");
        assert_eq!(error_field(&response), field, "{query}");
    }
    assert_eq!(
        call(&app, Method::Get, "/v1/users?sort=email", &auth, None).status,
        400
    );
    assert_eq!(
        call(&app, Method::Get, "/v1/users?limit=200", &auth, None).status,
        200
    );
}

#[test]
fn a_user_may_read_themself_and_change_only_their_own_name() {
    let (app, _clock, auth, boot) = setup();
    let admin_id = text(&boot["user"], "id");
    let id = plain_user(&app, &auth, "self@example.test");
    let session = bearer(&logged_in(&app, "self@example.test", USER_PASSWORD));
    let own = format!("/v1/users/{id}");

    let read = call(&app, Method::Get, &own, &session, None);
    assert_eq!(read.status, 200);
    assert_eq!(read.json_value()["user"]["id"], id.as_str());
    let renamed = call(
        &app,
        Method::Patch,
        &own,
        &session,
        Some(json!({ "name": "New Name" })),
    );
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.json_value()["user"]["name"], "New Name");

    // The mass-assignment defence: any other field is refused whole and nothing changes.
    for body in [
        json!({ "org_admin": true }),
        json!({ "name": "Sneaky", "org_admin": true }),
        json!({ "email": "boss@example.test" }),
        json!({ "username": "boss" }),
        json!({ "username": null }),
        json!({ "name": "Sneaky", "email": "self@example.test" }),
    ] {
        let response = call(&app, Method::Patch, &own, &session, Some(body.clone()));
        assert_eq!(response.status, 403, "{body}");
        assert_eq!(error_code(&response), "forbidden");
    }
    for field in ["status", "must_change_password", "id"] {
        let response = call(
            &app,
            Method::Patch,
            &own,
            &session,
            Some(json!({ field: "x" })),
        );
        assert_eq!(response.status, 400, "{field}");
        assert_eq!(error_field(&response), field);
    }
    let row = user_row(&app, &id).unwrap();
    assert_eq!(row.text("name").unwrap(), "New Name");
    assert_eq!(row.text("email").unwrap(), "self@example.test");
    assert_eq!(row.int("org_admin").unwrap(), 0);
    assert_eq!(row.text("status").unwrap(), "active");
    // Still no admin powers.
    assert_eq!(
        call(&app, Method::Get, "/v1/users", &session, None).status,
        403
    );

    // Someone else's record: neither read nor write.
    let other = format!("/v1/users/{admin_id}");
    assert_eq!(call(&app, Method::Get, &other, &session, None).status, 403);
    assert_eq!(
        call(
            &app,
            Method::Patch,
            &other,
            &session,
            Some(json!({ "name": "Pwned" }))
        )
        .status,
        403
    );
    assert_eq!(user_row(&app, &admin_id).unwrap().text("name").unwrap(), "");
}

#[test]
fn callers_without_org_admin_powers_get_403_on_every_admin_user_route() {
    let (app, _clock, auth, boot) = setup();
    let admin_id = text(&boot["user"], "id");
    let workspace = text(&boot["workspace"], "id");
    let id = plain_user(&app, &auth, "plain@example.test");
    let session = bearer(&logged_in(&app, "plain@example.test", USER_PASSWORD));
    let (own_key, _) = insert_api_key(&app, &id, None);
    // The admin's own key, scoped to a workspace, is not an org-admin credential either.
    let (scoped_key, _) = insert_api_key(&app, &admin_id, Some(&workspace));
    let victim = plain_user(&app, &auth, "victim@example.test");

    let admin_routes: Vec<RouteId> = RouteId::ALL
        .into_iter()
        .filter(|r| {
            r.spec().pattern.starts_with("/v1/users")
                && r.spec().requirement == Requirement::OrgAdmin
        })
        .collect();
    assert_eq!(admin_routes.len(), 8, "{admin_routes:?}");
    for credential in [
        session,
        format!("Bearer {own_key}"),
        format!("Bearer {scoped_key}"),
    ] {
        for route in &admin_routes {
            let spec = route.spec();
            let path = spec.pattern.replace("{id}", &victim);
            let body = matches!(spec.method, Method::Post | Method::Patch)
                .then(|| json!({ "email": "new@example.test", "name": "New", "org_admin": true }));
            let body = if *route == RouteId::CreateUser {
                body
            } else {
                None
            };
            let response = call(&app, spec.method, &path, &credential, body);
            assert_eq!(response.status, 403, "{route:?}");
            assert_eq!(error_code(&response), "forbidden", "{route:?}");
        }
        // Another user's record through the self-service routes.
        let path = format!("/v1/users/{victim}");
        assert_eq!(
            call(&app, Method::Get, &path, &credential, None).status,
            403
        );
        assert_eq!(
            call(
                &app,
                Method::Patch,
                &path,
                &credential,
                Some(json!({ "name": "x" }))
            )
            .status,
            403
        );
    }
    // Nothing happened to the victim and nobody was created.
    let row = user_row(&app, &victim).unwrap();
    assert_eq!(row.text("status").unwrap(), "active");
    assert_eq!(row.text("name").unwrap(), "Plain User");
    assert_eq!(row.int("must_change_password").unwrap(), 0);
    assert!(block_on(app.db.query_one(stmt!(
        "SELECT 1 AS one FROM users WHERE email = 'new@example.test'"
    )))
    .unwrap()
    .is_none());
    // The unscoped admin key is an org admin.
    assert_eq!(
        call(&app, Method::Get, "/v1/users", &auth, None).status,
        200
    );
}

#[test]
fn admins_update_users_and_taken_emails_or_usernames_conflict() {
    let (app, _clock, auth, _boot) = setup();
    let id = plain_user(&app, &auth, "edit@example.test");
    let other = create_user(
        &app,
        &auth,
        json!({ "email": "taken@example.test", "name": "Taken", "username": "taken" }),
    );
    let path = format!("/v1/users/{id}");
    let updated = call(
        &app,
        Method::Patch,
        &path,
        &auth,
        Some(
            json!({ "name": "Edited", "email": "Edited@Example.test", "username": "Edited", "org_admin": true }),
        ),
    );
    assert_eq!(updated.status, 200, "{:?}", updated.json_value());
    let user = updated.json_value()["user"].clone();
    assert_eq!(user["name"], "Edited");
    assert_eq!(user["email"], "edited@example.test");
    assert_eq!(user["username"], "edited");
    assert_eq!(user["org_admin"], true);
    // The new email logs in; the old one does not.
    assert_eq!(
        login_as(&app, "edited@example.test", USER_PASSWORD).status,
        200
    );
    assert_eq!(
        login_as(&app, "edit@example.test", USER_PASSWORD).status,
        401
    );

    for body in [
        json!({ "email": "TAKEN@example.test" }),
        json!({ "username": "Taken" }),
        json!({ "name": "Changed", "email": "taken@example.test" }),
    ] {
        let response = call(&app, Method::Patch, &path, &auth, Some(body.clone()));
        assert_eq!(response.status, 409, "{body}");
        assert_eq!(error_code(&response), "conflict");
    }
    let row = user_row(&app, &id).unwrap();
    assert_eq!(
        row.text("name").unwrap(),
        "Edited",
        "a refused change changes nothing"
    );
    assert_eq!(row.text("email").unwrap(), "edited@example.test");

    for (body, field) in [
        (json!({ "name": null }), "name"),
        (json!({ "email": null }), "email"),
        (json!({ "org_admin": null }), "org_admin"),
        (json!({ "name": "" }), "name"),
        (json!({ "email": "nope" }), "email"),
        (json!({ "status": "disabled" }), "status"),
    ] {
        let response = call(&app, Method::Patch, &path, &auth, Some(body.clone()));
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(error_field(&response), field, "{body}");
    }
    // `username: null` removes it, freeing it for someone else.
    let cleared = call(
        &app,
        Method::Patch,
        &path,
        &auth,
        Some(json!({ "username": null })),
    );
    assert_eq!(cleared.json_value()["user"]["username"], Value::Null);
    let other_path = format!("/v1/users/{}", text(&other, "id"));
    let moved = call(
        &app,
        Method::Patch,
        &other_path,
        &auth,
        Some(json!({ "username": "edited" })),
    );
    assert_eq!(moved.status, 200);
    // An empty body changes nothing and succeeds.
    let noop = call(&app, Method::Patch, &path, &auth, Some(json!({})));
    assert_eq!(noop.status, 200);
    assert_eq!(noop.json_value()["user"]["name"], "Edited");
}

#[test]
fn the_last_active_org_admin_cannot_be_demoted_disabled_or_deleted() {
    let (app, clock, auth, boot) = setup();
    let first = text(&boot["user"], "id");
    let first_path = format!("/v1/users/{first}");
    let session = bearer(&login_token_mode(&app));

    let demote = call(
        &app,
        Method::Patch,
        &first_path,
        &auth,
        Some(json!({ "org_admin": false })),
    );
    assert_eq!(demote.status, 409);
    assert_eq!(error_code(&demote), "conflict");
    let self_demote = call(
        &app,
        Method::Patch,
        &first_path,
        &session,
        Some(json!({ "org_admin": false })),
    );
    assert_eq!(self_demote.status, 409);
    assert_eq!(
        call(
            &app,
            Method::Post,
            &format!("{first_path}/disable"),
            &auth,
            None
        )
        .status,
        409
    );
    assert_eq!(
        call(&app, Method::Delete, &first_path, &auth, None).status,
        409
    );
    let row = user_row(&app, &first).unwrap();
    assert_eq!(row.int("org_admin").unwrap(), 1);
    assert_eq!(row.text("status").unwrap(), "active");
    // A refused delete has no side effects: the admin's session still works.
    assert!(is_active(&app, session.trim_start_matches("Bearer ")));
    assert_eq!(
        call(&app, Method::Get, "/v1/me", &session, None).status,
        200
    );

    // A second admin who is disabled does not count.
    let second = text(
        &create_user(
            &app,
            &auth,
            json!({ "email": "second@example.test", "name": "Second", "org_admin": true, "password": USER_PASSWORD }),
        ),
        "id",
    );
    let second_path = format!("/v1/users/{second}");
    assert_eq!(
        call(
            &app,
            Method::Post,
            &format!("{second_path}/disable"),
            &auth,
            None
        )
        .status,
        200
    );
    assert_eq!(
        call(
            &app,
            Method::Patch,
            &first_path,
            &auth,
            Some(json!({ "org_admin": false }))
        )
        .status,
        409
    );
    // Once the second admin is active, the first may go.
    assert_eq!(
        call(
            &app,
            Method::Post,
            &format!("{second_path}/enable"),
            &auth,
            None
        )
        .status,
        200
    );
    clock.advance(1);
    let demoted = call(
        &app,
        Method::Patch,
        &first_path,
        &session,
        Some(json!({ "org_admin": false })),
    );
    assert_eq!(demoted.status, 200);
    assert_eq!(demoted.json_value()["user"]["org_admin"], false);
    // The bootstrap key's owner is no org admin any more, so neither is the key.
    assert_eq!(
        call(&app, Method::Get, "/v1/users", &auth, None).status,
        403
    );

    let second_login = bearer(&logged_in(&app, "second@example.test", USER_PASSWORD));
    // Now the second is the last one.
    assert_eq!(
        call(&app, Method::Delete, &second_path, &second_login, None).status,
        409
    );
    assert_eq!(
        call(
            &app,
            Method::Post,
            &format!("{second_path}/disable"),
            &second_login,
            None
        )
        .status,
        409
    );
    let promote = call(
        &app,
        Method::Patch,
        &first_path,
        &second_login,
        Some(json!({ "org_admin": true })),
    );
    assert_eq!(promote.status, 200);
    assert_eq!(
        call(&app, Method::Delete, &first_path, &second_login, None).status,
        204
    );
    assert!(user_row(&app, &first).is_none());
}

#[test]
fn two_admins_removing_each_other_at_once_leave_one() {
    for action in ["demote", "disable", "delete"] {
        let (app, _clock, auth, boot) = setup();
        let first = text(&boot["user"], "id");
        let second = text(
            &create_user(
                &app,
                &auth,
                json!({ "email": "second@example.test", "name": "Second", "org_admin": true }),
            ),
            "id",
        );
        let request = |target: &str| {
            let path = format!("/v1/users/{target}");
            match action {
                "demote" => {
                    HttpRequest::new(Method::Patch, &path).json(&json!({ "org_admin": false }))
                }
                "disable" => HttpRequest::new(Method::Post, &format!("{path}/disable")),
                _ => HttpRequest::new(Method::Delete, &path),
            }
            .header("authorization", &auth)
        };
        let (a, b) = (request(&first), request(&second));
        // Both requests pass every read before either writes.
        app.db.interleave.set(true);
        let (ra, rb) = block_on(async { futures::join!(app.handle(&a), app.handle(&b)) });
        app.db.interleave.set(false);
        let mut statuses = [ra.status, rb.status];
        statuses.sort_unstable();
        assert_eq!(statuses[1], 409, "{action}: {statuses:?}");
        assert!(
            statuses[0] == 200 || statuses[0] == 204,
            "{action}: {statuses:?}"
        );
        let active_admins = app.db.rows(
            "SELECT COUNT(*) AS n FROM users WHERE org_admin = 1 AND status = 'active'",
            &[],
        )[0]
        .int("n")
        .unwrap();
        assert_eq!(active_admins, 1, "{action}");
    }
}

#[test]
fn disabling_a_user_shuts_every_door_and_enabling_reopens_them() {
    let (app, clock, auth, _boot) = setup();
    let id = plain_user(&app, &auth, "dis@example.test");
    let login = logged_in(&app, "dis@example.test", USER_PASSWORD);
    let access = text(&login, "access_token");
    let refresh_token = text(&login, "refresh_token");
    let (key, _) = insert_api_key(&app, &id, None);
    let key_auth = format!("Bearer {key}");
    assert_eq!(
        call(&app, Method::Get, "/v1/me", &key_auth, None).status,
        200
    );
    assert!(is_active(&app, &access));

    let disabled = call(
        &app,
        Method::Post,
        &format!("/v1/users/{id}/disable"),
        &auth,
        None,
    );
    assert_eq!(disabled.status, 200);
    assert_eq!(disabled.json_value()["user"]["status"], "disabled");
    let wrong_password = login_as(&app, "dis@example.test", "not the password");
    let refused = login_as(&app, "dis@example.test", USER_PASSWORD);
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.body, wrong_password.body,
        "indistinguishable from a wrong password"
    );
    assert_eq!(refresh(&app, &refresh_token).status, 401);
    assert_eq!(
        refresh(&app, &refresh_token).json_value(),
        auth_failure_body()
    );
    let key_refused = call(&app, Method::Get, "/v1/me", &key_auth, None);
    assert_eq!(key_refused.status, 401);
    assert!(!is_active(&app, &access));
    assert!(!is_active(&app, &key));
    assert_eq!(
        call(
            &app,
            Method::Get,
            "/v1/me",
            &format!("Bearer {access}"),
            None
        )
        .status,
        401
    );
    let reasons = app.db.rows(
        "SELECT revoked_reason FROM sessions WHERE user_id = ?1",
        &[SqlValue::from(id.as_str())],
    );
    assert_eq!(reasons.len(), 1);
    assert_eq!(reasons[0].text("revoked_reason").unwrap(), "user_disabled");
    assert!(app
        .flags
        .inner()
        .values
        .borrow()
        .contains_key(&format!("revoked:user:{id}")));
    // Disabling again is harmless.
    assert_eq!(
        call(
            &app,
            Method::Post,
            &format!("/v1/users/{id}/disable"),
            &auth,
            None
        )
        .status,
        200
    );

    clock.advance(1);
    let enabled = call(
        &app,
        Method::Post,
        &format!("/v1/users/{id}/enable"),
        &auth,
        None,
    );
    assert_eq!(enabled.status, 200);
    assert_eq!(enabled.json_value()["user"]["status"], "active");
    let again = logged_in(&app, "dis@example.test", USER_PASSWORD);
    assert!(is_active(&app, &text(&again, "access_token")));
    assert_eq!(refresh(&app, &text(&again, "refresh_token")).status, 200);
    assert_eq!(
        call(&app, Method::Get, "/v1/me", &key_auth, None).status,
        200
    );
    // The sessions ended by the disable stay ended.
    assert_eq!(refresh(&app, &refresh_token).status, 401);
    // Enabling an active user changes nothing.
    assert_eq!(
        call(
            &app,
            Method::Post,
            &format!("/v1/users/{id}/enable"),
            &auth,
            None
        )
        .status,
        200
    );
}

/// Token times are whole seconds and a disable revokes every token issued up to its own second, so
/// a user enabled again within that second used to get access tokens that were dead on arrival.
#[test]
fn a_user_enabled_in_the_second_of_the_disable_gets_working_tokens_and_the_old_ones_stay_dead() {
    let (app, _clock, auth, _boot) = setup();
    let id = plain_user(&app, &auth, "same@example.test");
    let before = text(
        &logged_in(&app, "same@example.test", USER_PASSWORD),
        "access_token",
    );
    let path = |action: &str| format!("/v1/users/{id}/{action}");
    // The clock does not move: all of this happens within one second.
    assert_eq!(
        call(&app, Method::Post, &path("disable"), &auth, None).status,
        200
    );
    assert_eq!(
        call(&app, Method::Post, &path("enable"), &auth, None).status,
        200
    );
    let after = text(
        &logged_in(&app, "same@example.test", USER_PASSWORD),
        "access_token",
    );
    assert!(is_active(&app, &after), "a token issued after the enable");
    assert!(
        !is_active(&app, &before),
        "a token issued before the disable"
    );
}

/// Enable moves the user flag before it touches D1: when KV fails, the answer is 503 and the user
/// is still disabled.
#[test]
fn enable_with_the_flag_store_down_is_503_and_the_user_stays_disabled() {
    let (app, clock, auth, _boot) = setup();
    let id = plain_user(&app, &auth, "kvdown@example.test");
    let path = |action: &str| format!("/v1/users/{id}/{action}");
    assert_eq!(
        call(&app, Method::Post, &path("disable"), &auth, None).status,
        200
    );
    clock.advance(1);
    app.flags.inner().fail.set(true);
    let refused = call(&app, Method::Post, &path("enable"), &auth, None);
    app.flags.inner().fail.set(false);
    assert_eq!(refused.status, 503, "{:?}", refused.json_value());
    let status = app.db.rows(
        "SELECT status FROM users WHERE id = ?1",
        &[SqlValue::from(id.as_str())],
    );
    assert_eq!(status[0].text("status").unwrap(), "disabled");
    assert_eq!(
        login_as(&app, "kvdown@example.test", USER_PASSWORD).status,
        401
    );
}

#[test]
fn a_pending_user_is_not_activated_by_enable() {
    let (app, _clock, auth, _boot) = setup();
    block_on(app.db.execute(stmt!(
        "INSERT INTO users (id, org_id, email, name, status, created_at, updated_at) \
         VALUES ('pending-1', 'default', 'pending@example.test', '', 'pending', ?1, ?1)",
        T0
    )))
    .unwrap();
    let response = call(
        &app,
        Method::Post,
        "/v1/users/pending-1/enable",
        &auth,
        None,
    );
    assert_eq!(response.status, 409);
    assert_eq!(
        user_row(&app, "pending-1").unwrap().text("status").unwrap(),
        "pending"
    );
}

#[test]
fn deleting_a_user_ends_their_sessions_keys_and_memberships_at_once() {
    let (app, _clock, auth, boot) = setup();
    let workspace = text(&boot["workspace"], "id");
    let id = text(
        &create_user(
            &app,
            &auth,
            json!({ "email": "gone@example.test", "name": "Gone", "password": USER_PASSWORD, "workspace": workspace }),
        ),
        "id",
    );
    let login = logged_in(&app, "gone@example.test", USER_PASSWORD);
    let access = text(&login, "access_token");
    let (key, _) = insert_api_key(&app, &id, None);

    let deleted = call(
        &app,
        Method::Delete,
        &format!("/v1/users/{id}"),
        &auth,
        None,
    );
    assert_eq!(deleted.status, 204);
    assert!(user_row(&app, &id).is_none());
    for table in [
        "sessions",
        "api_keys",
        "memberships",
        "password_credentials",
    ] {
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE user_id = ?1");
        assert_eq!(count(&app, &sql, &id), 0, "{table}");
    }
    assert!(!is_active(&app, &access));
    assert!(app
        .flags
        .inner()
        .values
        .borrow()
        .contains_key(&format!("revoked:user:{id}")));
    assert_eq!(refresh(&app, &text(&login, "refresh_token")).status, 401);
    assert_eq!(
        call(&app, Method::Get, "/v1/me", &format!("Bearer {key}"), None).status,
        401
    );
    assert_eq!(
        login_as(&app, "gone@example.test", USER_PASSWORD).status,
        401
    );
    assert_eq!(
        call(&app, Method::Get, &format!("/v1/users/{id}"), &auth, None).status,
        404
    );
    assert_eq!(
        call(
            &app,
            Method::Delete,
            &format!("/v1/users/{id}"),
            &auth,
            None
        )
        .status,
        404
    );
    // The address is free again.
    create_user(
        &app,
        &auth,
        json!({ "email": "gone@example.test", "name": "Back" }),
    );
}

#[test]
fn reset_password_gives_a_temporary_password_that_must_be_changed_first() {
    let (app, clock, auth, _boot) = setup();
    let id = plain_user(&app, &auth, "reset@example.test");
    let before = logged_in(&app, "reset@example.test", USER_PASSWORD);

    let response = call(
        &app,
        Method::Post,
        &format!("/v1/users/{id}/reset-password"),
        &auth,
        None,
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header_value("cache-control"), Some("no-store"));
    let temporary = text(&response.json_value(), "temporary_password");
    assert!(temporary.len() >= 24, "{temporary}");
    assert_eq!(response.json_value().as_object().unwrap().len(), 1);
    assert_eq!(
        user_row(&app, &id)
            .unwrap()
            .int("must_change_password")
            .unwrap(),
        1
    );

    // Whoever held the old password is out.
    assert!(!is_active(&app, &text(&before, "access_token")));
    assert_eq!(refresh(&app, &text(&before, "refresh_token")).status, 401);
    assert_eq!(
        login_as(&app, "reset@example.test", USER_PASSWORD).status,
        401
    );

    // The temporary password logs in, but that session may only change the password.
    clock.advance(1);
    let temp_login = logged_in(&app, "reset@example.test", &temporary);
    assert_eq!(temp_login["user"]["must_change_password"], true);
    let session = bearer(&temp_login);
    for (method, path) in [
        (Method::Get, "/v1/auth/sessions".to_owned()),
        (Method::Get, format!("/v1/users/{id}")),
        (Method::Post, "/v1/api-keys".to_owned()),
    ] {
        let refused = call(
            &app,
            method,
            &path,
            &session,
            Some(json!({})).filter(|_| method == Method::Post),
        );
        assert_eq!(refused.status, 403, "{path}");
    }
    assert_eq!(
        call(&app, Method::Get, "/v1/me", &session, None).status,
        200
    );
    let changed = call(
        &app,
        Method::Post,
        "/v1/auth/password",
        &session,
        Some(json!({ "current_password": temporary, "new_password": "my very own passphrase" })),
    );
    assert_eq!(changed.status, 204);
    assert_eq!(
        user_row(&app, &id)
            .unwrap()
            .int("must_change_password")
            .unwrap(),
        0
    );
    assert_eq!(
        call(&app, Method::Get, "/v1/auth/sessions", &session, None).status,
        200
    );
    assert_eq!(
        call(
            &app,
            Method::Get,
            &format!("/v1/users/{id}"),
            &session,
            None
        )
        .status,
        200
    );
    assert_eq!(login_as(&app, "reset@example.test", &temporary).status, 401);
    assert_eq!(
        login_as(&app, "reset@example.test", "my very own passphrase").status,
        200
    );

    // Shown once: never stored or audited in plaintext.
    let audit = format!("{:?}", app.db.rows("SELECT * FROM audit_events", &[]));
    assert!(audit.contains("user_reset_password"));
    assert!(!audit.contains(&temporary));
    let credentials = format!(
        "{:?}",
        app.db.rows("SELECT * FROM password_credentials", &[])
    );
    assert!(!credentials.contains(&temporary));

    // A user without any password can be given one this way.
    let bare = text(
        &create_user(
            &app,
            &auth,
            json!({ "email": "bare@example.test", "name": "Bare" }),
        ),
        "id",
    );
    let issued = call(
        &app,
        Method::Post,
        &format!("/v1/users/{bare}/reset-password"),
        &auth,
        None,
    );
    let password = text(&issued.json_value(), "temporary_password");
    assert_eq!(login_as(&app, "bare@example.test", &password).status, 200);
}

#[test]
fn admins_list_and_revoke_a_users_sessions() {
    let (app, _clock, auth, boot) = setup();
    let admin_id = text(&boot["user"], "id");
    let id = plain_user(&app, &auth, "sess@example.test");
    let one = logged_in(&app, "sess@example.test", USER_PASSWORD);
    let two = logged_in(&app, "sess@example.test", USER_PASSWORD);
    let admin_session = login_token_mode(&app);

    let path = format!("/v1/users/{id}/sessions");
    let listed = call(&app, Method::Get, &path, &auth, None);
    assert_eq!(listed.status, 200);
    let sessions = listed.json_value()["sessions"].as_array().unwrap().clone();
    let mut ids: Vec<String> = sessions.iter().map(|s| text(s, "id")).collect();
    ids.sort();
    let mut expected = vec![text(&one, "session_id"), text(&two, "session_id")];
    expected.sort();
    assert_eq!(ids, expected, "only this user's sessions");
    assert!(sessions
        .iter()
        .all(|s| s["current"] == false && s["auth_method"] == "pwd"));

    // The user cannot use the admin routes on themself.
    assert_eq!(
        call(&app, Method::Get, &path, &bearer(&one), None).status,
        403
    );
    assert_eq!(
        call(&app, Method::Delete, &path, &bearer(&one), None).status,
        403
    );

    assert_eq!(call(&app, Method::Delete, &path, &auth, None).status, 204);
    let after = call(&app, Method::Get, &path, &auth, None).json_value();
    assert_eq!(after["sessions"], json!([]));
    for login in [&one, &two] {
        assert!(!is_active(&app, &text(login, "access_token")));
        assert_eq!(refresh(&app, &text(login, "refresh_token")).status, 401);
    }
    let reasons = app.db.rows(
        "SELECT DISTINCT revoked_reason FROM sessions WHERE user_id = ?1",
        &[SqlValue::from(id.as_str())],
    );
    assert_eq!(reasons.len(), 1);
    assert_eq!(reasons[0].text("revoked_reason").unwrap(), "admin_revoked");
    // Other users' sessions are untouched.
    assert!(is_active(&app, &text(&admin_session, "access_token")));
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL",
            &admin_id
        ),
        1
    );
    assert_eq!(
        user_row(&app, &id).unwrap().text("status").unwrap(),
        "active"
    );
    assert_eq!(
        login_as(&app, "sess@example.test", USER_PASSWORD).status,
        200
    );
}

#[test]
fn unknown_user_ids_are_404_on_every_user_route() {
    let (app, _clock, auth, _boot) = setup();
    let unknown = "01900000-0000-7000-8000-000000000000";
    for route in RouteId::ALL {
        let spec = route.spec();
        if !spec.pattern.starts_with("/v1/users/{id}") {
            continue;
        }
        let path = spec.pattern.replace("{id}", unknown);
        let body = (spec.method == Method::Patch).then(|| json!({ "name": "Nobody" }));
        let response = call(&app, spec.method, &path, &auth, body);
        assert_eq!(response.status, 404, "{route:?}");
        assert_eq!(error_code(&response), "not_found", "{route:?}");
    }
}

#[test]
fn every_user_change_is_audited_with_its_actor_and_no_secret() {
    let (app, _clock, auth, boot) = setup();
    let admin_id = text(&boot["user"], "id");
    let key_id = text(&boot["api_key"], "id");
    let session = bearer(&login_token_mode(&app));
    let id = text(
        &create_user(
            &app,
            &auth,
            json!({ "email": "aud@example.test", "name": "Aud", "password": USER_PASSWORD }),
        ),
        "id",
    );
    let path = format!("/v1/users/{id}");
    let ok = |r: HttpResponse| assert!(r.status < 300, "{:?}", r.json_value());
    ok(call(
        &app,
        Method::Patch,
        &path,
        &session,
        Some(json!({ "name": "Audited" })),
    ));
    ok(call(
        &app,
        Method::Post,
        &format!("{path}/disable"),
        &auth,
        None,
    ));
    ok(call(
        &app,
        Method::Post,
        &format!("{path}/enable"),
        &session,
        None,
    ));
    let reset = call(
        &app,
        Method::Post,
        &format!("{path}/reset-password"),
        &auth,
        None,
    );
    let temporary = text(&reset.json_value(), "temporary_password");
    ok(call(
        &app,
        Method::Delete,
        &format!("{path}/sessions"),
        &session,
        None,
    ));
    ok(call(&app, Method::Delete, &path, &auth, None));

    let events: Vec<_> = audit_actions(&app)
        .into_iter()
        .filter(|e| e.0.starts_with("user_"))
        .collect();
    let by_key = |action: &str| {
        (
            action.to_owned(),
            "api_key".to_owned(),
            Some(key_id.clone()),
            Some(id.clone()),
        )
    };
    let by_session = |action: &str| {
        (
            action.to_owned(),
            "user".to_owned(),
            Some(admin_id.clone()),
            Some(id.clone()),
        )
    };
    assert_eq!(
        events,
        [
            by_key("user_create"),
            by_session("user_update"),
            by_key("user_disable"),
            by_session("user_enable"),
            by_key("user_reset_password"),
            by_session("user_sessions_revoke"),
            by_key("user_delete"),
        ]
    );
    let details = format!("{:?}", app.db.rows("SELECT detail FROM audit_events", &[]));
    assert!(!details.contains(USER_PASSWORD));
    assert!(!details.contains(&temporary));
    assert!(!details.contains("pbkdf2"));
}
