//! Workspaces and memberships over HTTP: org admins manage workspaces, workspace admins manage their
//! own workspace's members and nothing else, editors and viewers only read their workspace, capped or
//! scoped API keys lose admin powers, a disabled workspace stops counting, and every change is
//! audited.

mod common;

use common::*;
use edgeauth::http::{HttpRequest, HttpResponse, Method};
use edgeauth::store::SqlValue;
use serde_json::{json, Value};

const PASSWORD: &str = "member password 123";

fn request(method: Method, path: &str, credential: &str, body: Option<Value>) -> HttpRequest {
    let request =
        HttpRequest::new(method, path).header("authorization", &format!("Bearer {credential}"));
    match body {
        Some(body) => request.json(&body),
        None => request,
    }
}

fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    credential: &str,
    body: Option<Value>,
) -> HttpResponse {
    send(app, request(method, path, credential, body))
}

/// Inserts an active, non-admin user with [`PASSWORD`]; returns its id.
fn add_user(app: &TestApp, id: &str, email: &str) -> String {
    let phc = edgeauth::passwords::hash(PASSWORD, b"0123456789abcdef", 1000).unwrap();
    block_on(edgeauth::store::Database::batch(
        &app.db,
        vec![
            edgeauth::stmt!(
                "INSERT INTO users (id, org_id, email, name, status, org_admin, must_change_password, \
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'active', 0, 0, ?5, ?5)",
                id,
                edgeauth::ORG_ID,
                email,
                "Member",
                T0
            ),
            edgeauth::stmt!(
                "INSERT INTO password_credentials (user_id, org_id, phc, updated_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                id,
                edgeauth::ORG_ID,
                phc,
                T0
            ),
        ],
    ))
    .unwrap();
    id.to_owned()
}

/// Logs a user in in token mode; returns the access token.
fn login(app: &TestApp, email: &str) -> String {
    let response = send(
        app,
        post(
            "/v1/auth/login",
            json!({ "email": email, "password": PASSWORD, "session": "token" }),
        ),
    );
    assert_eq!(response.status, 200, "login: {:?}", response.json_value());
    text(&response.json_value(), "access_token")
}

/// Inserts an API key owned by `user_id` with the given ceiling and scope; returns the plaintext.
fn insert_api_key(
    app: &TestApp,
    user_id: &str,
    role: Option<&str>,
    workspace_id: Option<&str>,
) -> String {
    let key = edgeauth::api_keys::generate(app.random.as_ref()).unwrap();
    block_on(edgeauth::store::Database::execute(
        &app.db,
        edgeauth::stmt!(
            "INSERT INTO api_keys (id, org_id, user_id, workspace_id, name, prefix, key_hash, role, \
             created_at) VALUES (?1, ?2, ?3, ?4, 'test', ?5, ?6, ?7, ?8)",
            format!("key-{}", key.prefix),
            edgeauth::ORG_ID,
            user_id,
            workspace_id,
            key.prefix.clone(),
            key.hash.clone(),
            role,
            T0
        ),
    ))
    .unwrap();
    key.plaintext.clone()
}

fn create_workspace(app: &TestApp, credential: &str, name: &str) -> String {
    let response = call(
        app,
        Method::Post,
        "/v1/workspaces",
        credential,
        Some(json!({ "name": name })),
    );
    assert_eq!(response.status, 201, "create: {:?}", response.json_value());
    text(&response.json_value()["workspace"], "id")
}

fn put_member(
    app: &TestApp,
    credential: &str,
    workspace: &str,
    user: &str,
    role: &str,
) -> HttpResponse {
    call(
        app,
        Method::Put,
        &format!("/v1/workspaces/{workspace}/members/{user}"),
        credential,
        Some(json!({ "role": role })),
    )
}

fn listed_ids(response: &HttpResponse) -> Vec<String> {
    assert_eq!(response.status, 200, "list: {:?}", response.json_value());
    response.json_value()["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| text(w, "id"))
        .collect()
}

fn error_code(response: &HttpResponse) -> String {
    text(&response.json_value()["error"], "code")
}

/// Audit rows of `action` in insertion order (ids are UUIDv7 made from a fixed clock in tests, so
/// they do not order events within one second).
fn audit_rows(app: &TestApp, action: &str) -> Vec<edgeauth::store::Row> {
    app.db.rows(
        "SELECT actor_kind, actor_id, target_kind, target_id, outcome, detail FROM audit_events \
         WHERE action = ?1 ORDER BY rowid",
        &[SqlValue::from(action)],
    )
}

fn detail(row: &edgeauth::store::Row) -> Value {
    serde_json::from_str(&row.text("detail").unwrap()).unwrap()
}

/// The bootstrap admin's key, the admin's id and the bootstrap workspace's id.
struct Org {
    key: String,
    admin_id: String,
    default_ws: String,
}

fn org(app: &TestApp) -> Org {
    let body = bootstrap(app);
    Org {
        key: text(&body, "key"),
        admin_id: text(&body["user"], "id"),
        default_ws: text(&body["workspace"], "id"),
    }
}

#[test]
fn org_admin_creates_lists_renames_and_disables_workspaces() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    let key_id = bootstrap_key_id(&app);

    let created = call(
        &app,
        Method::Post,
        "/v1/workspaces",
        &org.key,
        Some(json!({ "name": "  Research  " })),
    );
    assert_eq!(created.status, 201);
    let workspace = created.json_value()["workspace"].clone();
    let id = text(&workspace, "id");
    assert_eq!(
        workspace,
        json!({ "id": id, "name": "Research", "status": "active", "created_at": "2026-01-15T10:00:00Z" })
    );

    // Org admins see every workspace, ordered by id.
    let mut expected = vec![org.default_ws.clone(), id.clone()];
    expected.sort();
    let listed = call(&app, Method::Get, "/v1/workspaces", &org.key, None);
    assert_eq!(listed_ids(&listed), expected);

    let got = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{id}"),
        &org.key,
        None,
    );
    assert_eq!(got.status, 200);
    assert_eq!(got.json_value()["workspace"], workspace);

    // A session of the org admin works as well as the key.
    let session = text(&login_token_mode(&app), "access_token");
    let renamed = call(
        &app,
        Method::Patch,
        &format!("/v1/workspaces/{id}"),
        &session,
        Some(json!({ "name": "Research & Development" })),
    );
    assert_eq!(renamed.status, 200, "{:?}", renamed.json_value());
    assert_eq!(
        renamed.json_value()["workspace"]["name"],
        "Research & Development"
    );
    assert_eq!(renamed.json_value()["workspace"]["id"], id.as_str());

    let disabled = call(
        &app,
        Method::Post,
        &format!("/v1/workspaces/{id}/disable"),
        &org.key,
        None,
    );
    assert_eq!(disabled.status, 200);
    assert_eq!(disabled.json_value()["workspace"]["status"], "disabled");
    assert_eq!(
        disabled.json_value()["workspace"]["name"],
        "Research & Development"
    );
    // Idempotent, and audited once.
    let again = call(
        &app,
        Method::Post,
        &format!("/v1/workspaces/{id}/disable"),
        &org.key,
        None,
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json_value()["workspace"]["status"], "disabled");
    let got = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{id}"),
        &org.key,
        None,
    );
    assert_eq!(got.json_value()["workspace"]["status"], "disabled");
    // Org admins still list disabled workspaces.
    let listed = call(&app, Method::Get, "/v1/workspaces", &org.key, None);
    assert_eq!(listed_ids(&listed), expected);

    // Audit: actor is the API key for key calls and the user for session calls.
    let creates = audit_rows(&app, "workspace_create");
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].text("actor_kind").unwrap(), "api_key");
    assert_eq!(creates[0].text("actor_id").unwrap(), key_id);
    assert_eq!(creates[0].text("target_kind").unwrap(), "workspace");
    assert_eq!(creates[0].text("target_id").unwrap(), id);
    assert_eq!(creates[0].text("outcome").unwrap(), "success");
    assert_eq!(detail(&creates[0])["name"], "Research");
    let updates = audit_rows(&app, "workspace_update");
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].text("actor_kind").unwrap(), "user");
    assert_eq!(updates[0].text("actor_id").unwrap(), org.admin_id);
    assert_eq!(
        detail(&updates[0]),
        json!({ "name": "Research & Development", "previous_name": "Research" })
    );
    let disables = audit_rows(&app, "workspace_disable");
    assert_eq!(disables.len(), 1);
    assert_eq!(disables[0].text("target_id").unwrap(), id);
}

fn bootstrap_key_id(app: &TestApp) -> String {
    let rows = app
        .db
        .rows("SELECT id FROM api_keys WHERE name = 'bootstrap'", &[]);
    rows[0].text("id").unwrap()
}

#[test]
fn unknown_workspaces_are_404_for_org_admins() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    let missing = "00000000-0000-7000-8000-000000000000";
    for (method, path, body) in [
        (Method::Get, format!("/v1/workspaces/{missing}"), None),
        (
            Method::Patch,
            format!("/v1/workspaces/{missing}"),
            Some(json!({ "name": "x" })),
        ),
        (
            Method::Post,
            format!("/v1/workspaces/{missing}/disable"),
            None,
        ),
        (
            Method::Get,
            format!("/v1/workspaces/{missing}/members"),
            None,
        ),
        (
            Method::Put,
            format!("/v1/workspaces/{missing}/members/{}", org.admin_id),
            Some(json!({ "role": "viewer" })),
        ),
        (
            Method::Delete,
            format!("/v1/workspaces/{missing}/members/{}", org.admin_id),
            None,
        ),
    ] {
        let response = call(&app, method, &path, &org.key, body);
        assert_eq!(response.status, 404, "{method:?} {path}");
        assert_eq!(error_code(&response), "not_found");
    }
    assert!(audit_rows(&app, "workspace_update").is_empty());
    assert!(audit_rows(&app, "workspace_disable").is_empty());
    assert!(audit_rows(&app, "member_put").is_empty());
}

#[test]
fn workspace_names_are_validated() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    let too_long = "x".repeat(101);
    for body in [
        json!({ "name": "" }),
        json!({ "name": "   " }),
        json!({ "name": too_long }),
        json!({ "name": "bad\nname" }),
    ] {
        let response = call(
            &app,
            Method::Post,
            "/v1/workspaces",
            &org.key,
            Some(body.clone()),
        );
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(response.json_value()["error"]["field"], "name", "{body}");
        let response = call(
            &app,
            Method::Patch,
            &format!("/v1/workspaces/{}", org.default_ws),
            &org.key,
            Some(body.clone()),
        );
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(response.json_value()["error"]["field"], "name", "{body}");
    }
    // 100 characters is fine, counted as characters rather than bytes.
    let hundred = "é".repeat(100);
    let response = call(
        &app,
        Method::Post,
        "/v1/workspaces",
        &org.key,
        Some(json!({ "name": format!(" {hundred} ") })),
    );
    assert_eq!(response.status, 201);
    assert_eq!(response.json_value()["workspace"]["name"], hundred.as_str());

    // Unknown fields (mass assignment) and a missing name are refused.
    for body in [
        json!({ "name": "ok", "status": "disabled" }),
        json!({ "name": "ok", "id": "chosen-id" }),
        json!({}),
    ] {
        let response = call(
            &app,
            Method::Post,
            "/v1/workspaces",
            &org.key,
            Some(body.clone()),
        );
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(error_code(&response), "invalid_request");
    }
    let response = call(
        &app,
        Method::Patch,
        &format!("/v1/workspaces/{}", org.default_ws),
        &org.key,
        Some(json!({ "name": "ok", "status": "disabled" })),
    );
    assert_eq!(response.status, 400);
    let still = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{}", org.default_ws),
        &org.key,
        None,
    );
    assert_eq!(still.json_value()["workspace"]["status"], "active");
    assert_eq!(still.json_value()["workspace"]["name"], "Default");
    assert_eq!(
        app.db.rows("SELECT COUNT(*) AS n FROM workspaces", &[])[0]
            .int("n")
            .unwrap(),
        2
    );
}

#[test]
fn a_workspace_admin_manages_its_own_members_and_nothing_else() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    let a = create_workspace(&app, &org.key, "A");
    let b = create_workspace(&app, &org.key, "B");
    let alice = add_user(&app, "u-alice", "alice@example.test");
    let bob = add_user(&app, "u-bob", "bob@example.test");
    let carl = add_user(&app, "u-carl", "carl@example.test");
    assert_eq!(put_member(&app, &org.key, &a, &alice, "admin").status, 200);
    assert_eq!(put_member(&app, &org.key, &b, &carl, "viewer").status, 200);
    let token = login(&app, "alice@example.test");

    // Its own workspace: list, add, change, remove.
    let members = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{a}/members"),
        &token,
        None,
    );
    assert_eq!(members.status, 200);
    assert_eq!(
        members.json_value(),
        json!({ "members": [{ "workspace_id": a, "user_id": alice, "role": "admin" }] })
    );
    let added = put_member(&app, &token, &a, &bob, "editor");
    assert_eq!(added.status, 200, "{:?}", added.json_value());
    assert_eq!(
        added.json_value(),
        json!({ "membership": { "workspace_id": a, "user_id": bob, "role": "editor" } })
    );
    let changed = put_member(&app, &token, &a, &bob, "viewer");
    assert_eq!(changed.status, 200);
    assert_eq!(changed.json_value()["membership"]["role"], "viewer");
    // Ordered by user id; the upsert changed the row rather than adding one.
    let members = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{a}/members"),
        &token,
        None,
    );
    assert_eq!(
        members.json_value()["members"],
        json!([
            { "workspace_id": a, "user_id": alice, "role": "admin" },
            { "workspace_id": a, "user_id": bob, "role": "viewer" },
        ])
    );
    let removed = call(
        &app,
        Method::Delete,
        &format!("/v1/workspaces/{a}/members/{bob}"),
        &token,
        None,
    );
    assert_eq!(removed.status, 204);
    let removed_again = call(
        &app,
        Method::Delete,
        &format!("/v1/workspaces/{a}/members/{bob}"),
        &token,
        None,
    );
    assert_eq!(removed_again.status, 404);

    // Another workspace's members: forbidden, and nothing changes there.
    for (method, path, body) in [
        (Method::Get, format!("/v1/workspaces/{b}/members"), None),
        (
            Method::Put,
            format!("/v1/workspaces/{b}/members/{bob}"),
            Some(json!({ "role": "admin" })),
        ),
        (
            Method::Put,
            format!("/v1/workspaces/{b}/members/{alice}"),
            Some(json!({ "role": "admin" })),
        ),
        (
            Method::Delete,
            format!("/v1/workspaces/{b}/members/{carl}"),
            None,
        ),
        (Method::Get, format!("/v1/workspaces/{b}"), None),
    ] {
        let response = call(&app, method, &path, &token, body);
        assert_eq!(response.status, 403, "{method:?} {path}");
        assert_eq!(error_code(&response), "forbidden");
    }
    let b_members = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{b}/members"),
        &org.key,
        None,
    );
    assert_eq!(
        b_members.json_value()["members"],
        json!([{ "workspace_id": b, "user_id": carl, "role": "viewer" }])
    );

    // Workspace administration is for org admins only, even of its own workspace.
    for (method, path, body) in [
        (
            Method::Post,
            "/v1/workspaces".to_owned(),
            Some(json!({ "name": "Mine" })),
        ),
        (
            Method::Patch,
            format!("/v1/workspaces/{a}"),
            Some(json!({ "name": "Renamed" })),
        ),
        (Method::Post, format!("/v1/workspaces/{a}/disable"), None),
        (
            Method::Patch,
            format!("/v1/workspaces/{b}"),
            Some(json!({ "name": "Renamed" })),
        ),
    ] {
        let response = call(&app, method, &path, &token, body);
        assert_eq!(response.status, 403, "{method:?} {path}");
    }
    let a_now = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{a}"),
        &token,
        None,
    );
    assert_eq!(a_now.status, 200);
    assert_eq!(
        a_now.json_value()["workspace"],
        json!({ "id": a, "name": "A", "status": "active", "created_at": "2026-01-15T10:00:00Z" })
    );
    let listed = call(&app, Method::Get, "/v1/workspaces", &token, None);
    assert_eq!(listed_ids(&listed), vec![a.clone()]);
    assert_eq!(
        app.db.rows("SELECT COUNT(*) AS n FROM workspaces", &[])[0]
            .int("n")
            .unwrap(),
        3
    );

    // Alice's changes are audited as hers, with the roles and never a secret.
    let puts = audit_rows(&app, "member_put");
    let alice_puts: Vec<_> = puts
        .iter()
        .filter(|r| r.text("actor_id").unwrap() == alice)
        .collect();
    assert_eq!(alice_puts.len(), 2);
    assert_eq!(alice_puts[0].text("actor_kind").unwrap(), "user");
    assert_eq!(alice_puts[0].text("target_kind").unwrap(), "user");
    assert_eq!(alice_puts[0].text("target_id").unwrap(), bob);
    assert_eq!(
        detail(alice_puts[0]),
        json!({ "workspace_id": a, "role": "editor", "previous_role": null })
    );
    assert_eq!(
        detail(alice_puts[1]),
        json!({ "workspace_id": a, "role": "viewer", "previous_role": "editor" })
    );
    let removes = audit_rows(&app, "member_remove");
    assert_eq!(removes.len(), 1, "a failed removal is not a change");
    assert_eq!(removes[0].text("actor_id").unwrap(), alice);
    assert_eq!(removes[0].text("target_id").unwrap(), bob);
    assert_eq!(
        detail(&removes[0]),
        json!({ "workspace_id": a, "role": "viewer" })
    );
    let dump = format!("{:?}", app.db.rows("SELECT * FROM audit_events", &[]));
    assert!(!dump.contains(&token));
    assert!(!dump.contains(PASSWORD));
    assert!(!dump.contains(&org.key));
}

#[test]
fn editors_and_viewers_read_their_workspace_but_not_its_members() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    let a = create_workspace(&app, &org.key, "A");
    let b = create_workspace(&app, &org.key, "B");
    let target = add_user(&app, "u-target", "target@example.test");
    assert_eq!(
        put_member(&app, &org.key, &a, &target, "viewer").status,
        200
    );
    for (id, email, role) in [
        ("u-editor", "editor@example.test", "editor"),
        ("u-viewer", "viewer@example.test", "viewer"),
    ] {
        let user = add_user(&app, id, email);
        assert_eq!(put_member(&app, &org.key, &a, &user, role).status, 200);
        let token = login(&app, email);

        for (method, path, body) in [
            (Method::Get, format!("/v1/workspaces/{a}/members"), None),
            (
                Method::Put,
                format!("/v1/workspaces/{a}/members/{target}"),
                Some(json!({ "role": "admin" })),
            ),
            (
                Method::Put,
                format!("/v1/workspaces/{a}/members/{user}"),
                Some(json!({ "role": "admin" })),
            ),
            (
                Method::Delete,
                format!("/v1/workspaces/{a}/members/{target}"),
                None,
            ),
            (Method::Get, format!("/v1/workspaces/{b}"), None),
            (
                Method::Post,
                "/v1/workspaces".to_owned(),
                Some(json!({ "name": "X" })),
            ),
            (
                Method::Patch,
                format!("/v1/workspaces/{a}"),
                Some(json!({ "name": "X" })),
            ),
            (Method::Post, format!("/v1/workspaces/{a}/disable"), None),
        ] {
            let response = call(&app, method, &path, &token, body);
            assert_eq!(response.status, 403, "{role}: {method:?} {path}");
        }
        let got = call(
            &app,
            Method::Get,
            &format!("/v1/workspaces/{a}"),
            &token,
            None,
        );
        assert_eq!(got.status, 200, "{role}");
        assert_eq!(got.json_value()["workspace"]["name"], "A");
        let listed = call(&app, Method::Get, "/v1/workspaces", &token, None);
        assert_eq!(listed_ids(&listed), vec![a.clone()], "{role}");
    }
    // Nothing changed: no one escalated, the target is still a viewer.
    let members = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{a}/members"),
        &org.key,
        None,
    );
    let roles: Vec<(String, String)> = members.json_value()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (text(m, "user_id"), text(m, "role")))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("u-editor".to_owned(), "editor".to_owned()),
            ("u-target".to_owned(), "viewer".to_owned()),
            ("u-viewer".to_owned(), "viewer".to_owned()),
        ]
    );
}

#[test]
fn a_user_without_memberships_sees_no_workspaces() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    add_user(&app, "u-lonely", "lonely@example.test");
    let token = login(&app, "lonely@example.test");
    let listed = call(&app, Method::Get, "/v1/workspaces", &token, None);
    assert_eq!(listed.json_value(), json!({ "workspaces": [] }));
    let got = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{}", org.default_ws),
        &token,
        None,
    );
    assert_eq!(got.status, 403);
    // And no credential at all is the usual 401.
    let anonymous = send(&app, HttpRequest::new(Method::Get, "/v1/workspaces"));
    assert_eq!(anonymous.status, 401);
}

#[test]
fn a_viewer_capped_key_of_an_org_admin_is_not_an_org_admin() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    let other = create_workspace(&app, &org.key, "Other");
    let user = add_user(&app, "u-someone", "someone@example.test");
    let capped = insert_api_key(&app, &org.admin_id, Some("viewer"), None);

    for (method, path, body) in [
        (
            Method::Post,
            "/v1/workspaces".to_owned(),
            Some(json!({ "name": "X" })),
        ),
        (
            Method::Patch,
            format!("/v1/workspaces/{}", org.default_ws),
            Some(json!({ "name": "X" })),
        ),
        (
            Method::Post,
            format!("/v1/workspaces/{}/disable", org.default_ws),
            None,
        ),
        // The owner is `admin` of the default workspace, but the key is capped at viewer.
        (
            Method::Get,
            format!("/v1/workspaces/{}/members", org.default_ws),
            None,
        ),
        (
            Method::Put,
            format!("/v1/workspaces/{}/members/{user}", org.default_ws),
            Some(json!({ "role": "admin" })),
        ),
        (
            Method::Delete,
            format!("/v1/workspaces/{}/members/{}", org.default_ws, org.admin_id),
            None,
        ),
        // The owner is not a member of this one, and the key is no org admin.
        (Method::Get, format!("/v1/workspaces/{other}"), None),
        (Method::Get, format!("/v1/workspaces/{other}/members"), None),
    ] {
        let response = call(&app, method, &path, &capped, body);
        assert_eq!(response.status, 403, "{method:?} {path}");
        assert_eq!(error_code(&response), "forbidden");
    }
    // It reads what its owner is a member of, as a viewer.
    let got = call(
        &app,
        Method::Get,
        &format!("/v1/workspaces/{}", org.default_ws),
        &capped,
        None,
    );
    assert_eq!(got.status, 200);
    let listed = call(&app, Method::Get, "/v1/workspaces", &capped, None);
    assert_eq!(listed_ids(&listed), vec![org.default_ws.clone()]);
    assert_eq!(audit_rows(&app, "workspace_create").len(), 1);
    assert!(audit_rows(&app, "member_put").is_empty());
}

#[test]
fn a_workspace_scoped_key_sees_and_administers_only_its_workspace() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    let a = create_workspace(&app, &org.key, "A");
    let user = add_user(&app, "u-someone", "someone@example.test");
    assert_eq!(
        put_member(&app, &org.key, &a, &org.admin_id, "admin").status,
        200
    );
    let scoped = insert_api_key(&app, &org.admin_id, None, Some(&a));

    let listed = call(&app, Method::Get, "/v1/workspaces", &scoped, None);
    assert_eq!(listed_ids(&listed), vec![a.clone()]);
    // Not an org admin, and blind to the owner's other workspace.
    for (method, path, body) in [
        (
            Method::Get,
            format!("/v1/workspaces/{}", org.default_ws),
            None,
        ),
        (
            Method::Get,
            format!("/v1/workspaces/{}/members", org.default_ws),
            None,
        ),
        (
            Method::Post,
            "/v1/workspaces".to_owned(),
            Some(json!({ "name": "X" })),
        ),
        (Method::Post, format!("/v1/workspaces/{a}/disable"), None),
    ] {
        let response = call(&app, method, &path, &scoped, body);
        assert_eq!(response.status, 403, "{method:?} {path}");
    }
    // Its owner is `admin` of A and the key has no ceiling: it manages A's members.
    let response = put_member(&app, &scoped, &a, &user, "editor");
    assert_eq!(response.status, 200);
    let puts = audit_rows(&app, "member_put");
    let last = puts.last().unwrap();
    assert_eq!(last.text("actor_kind").unwrap(), "api_key");
    assert_eq!(
        last.text("actor_id").unwrap(),
        format!("key-{}", &scoped[..11])
    );
}

#[test]
fn member_roles_and_users_are_validated() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    let user = add_user(&app, "u-someone", "someone@example.test");
    let path = format!("/v1/workspaces/{}/members/{user}", org.default_ws);
    for body in [
        json!({ "role": "owner" }),
        json!({ "role": "Admin" }),
        json!({ "role": "" }),
        json!({ "role": " viewer" }),
    ] {
        let response = call(&app, Method::Put, &path, &org.key, Some(body.clone()));
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(response.json_value()["error"]["field"], "role", "{body}");
    }
    for body in [json!({}), json!({ "role": "viewer", "org_admin": true })] {
        let response = call(&app, Method::Put, &path, &org.key, Some(body.clone()));
        assert_eq!(response.status, 400, "{body}");
        assert_eq!(error_code(&response), "invalid_request");
    }
    // A user that does not exist in the organisation.
    let response = put_member(&app, &org.key, &org.default_ws, "u-nobody", "viewer");
    assert_eq!(response.status, 404);
    assert_eq!(error_code(&response), "not_found");
    // Not a member: nothing to remove.
    let response = call(&app, Method::Delete, &path, &org.key, None);
    assert_eq!(response.status, 404);
    assert!(audit_rows(&app, "member_put").is_empty());
    assert!(audit_rows(&app, "member_remove").is_empty());
    assert_eq!(
        app.db.rows("SELECT COUNT(*) AS n FROM memberships", &[])[0]
            .int("n")
            .unwrap(),
        1,
        "only the bootstrap membership"
    );
    for role in ["viewer", "editor", "admin"] {
        let response = put_member(&app, &org.key, &org.default_ws, &user, role);
        assert_eq!(response.status, 200, "{role}");
        assert_eq!(response.json_value()["membership"]["role"], role);
    }
    let rows = app.db.rows(
        "SELECT role, org_id FROM memberships WHERE user_id = ?1",
        &[SqlValue::from(user.as_str())],
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text("role").unwrap(), "admin");
    assert_eq!(rows[0].text("org_id").unwrap(), edgeauth::ORG_ID);
}

#[test]
fn a_disabled_workspace_takes_no_members_and_its_members_lose_access() {
    let (app, _clock) = app(&[]);
    let org = org(&app);
    let a = create_workspace(&app, &org.key, "A");
    let alice = add_user(&app, "u-alice", "alice@example.test");
    let bob = add_user(&app, "u-bob", "bob@example.test");
    let carl = add_user(&app, "u-carl", "carl@example.test");
    assert_eq!(put_member(&app, &org.key, &a, &alice, "admin").status, 200);
    assert_eq!(put_member(&app, &org.key, &a, &bob, "viewer").status, 200);
    let alice_token = login(&app, "alice@example.test");
    let bob_token = login(&app, "bob@example.test");
    let ws_path = format!("/v1/workspaces/{a}");
    let members_path = format!("/v1/workspaces/{a}/members");
    assert_eq!(
        call(&app, Method::Get, &ws_path, &bob_token, None).status,
        200
    );
    assert_eq!(
        call(&app, Method::Get, &members_path, &alice_token, None).status,
        200
    );

    let disabled = call(
        &app,
        Method::Post,
        &format!("{ws_path}/disable"),
        &org.key,
        None,
    );
    assert_eq!(disabled.status, 200);

    // Its members' roles no longer count.
    let response = call(&app, Method::Get, &ws_path, &bob_token, None);
    assert_eq!(response.status, 403);
    assert_eq!(error_code(&response), "forbidden");
    assert_eq!(
        call(&app, Method::Get, &ws_path, &alice_token, None).status,
        403
    );
    assert_eq!(
        call(&app, Method::Get, &members_path, &alice_token, None).status,
        403
    );
    assert_eq!(
        put_member(&app, &alice_token, &a, &carl, "viewer").status,
        403
    );
    for token in [&alice_token, &bob_token] {
        let listed = call(&app, Method::Get, "/v1/workspaces", token, None);
        assert_eq!(listed.json_value(), json!({ "workspaces": [] }));
    }

    // It takes no new or changed memberships, even from an org admin.
    let response = put_member(&app, &org.key, &a, &carl, "viewer");
    assert_eq!(response.status, 409);
    assert_eq!(error_code(&response), "conflict");
    let response = put_member(&app, &org.key, &a, &bob, "admin");
    assert_eq!(response.status, 409);
    // Role validation still comes first.
    let response = put_member(&app, &org.key, &a, &carl, "owner");
    assert_eq!(response.status, 400);

    // The org admin still sees the records, and may remove members.
    let members = call(&app, Method::Get, &members_path, &org.key, None);
    assert_eq!(members.status, 200);
    assert_eq!(
        members.json_value()["members"],
        json!([
            { "workspace_id": a, "user_id": alice, "role": "admin" },
            { "workspace_id": a, "user_id": bob, "role": "viewer" },
        ])
    );
    let removed = call(
        &app,
        Method::Delete,
        &format!("{members_path}/{bob}"),
        &org.key,
        None,
    );
    assert_eq!(removed.status, 204);
    assert!(audit_rows(&app, "member_put")
        .iter()
        .all(|r| r.text("outcome").unwrap() == "success"));
    assert_eq!(
        audit_rows(&app, "member_put").len(),
        2,
        "only the two before disabling"
    );
    assert_eq!(audit_rows(&app, "workspace_disable").len(), 1);
}
