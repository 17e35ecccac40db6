//! Authorisation: the capability matcher, roles, and `/v1/authorize` decisions for sessions, API
//! keys (ceilings and scopes) and tokens passed in the body. Every doubt denies.

mod common;

use common::*;
use edgeauth::authz::{grants, is_valid_capability, Role};
use edgeauth::http::{HttpRequest, Method};
use serde_json::{json, Value};

#[test]
fn the_matcher_understands_wildcards_on_each_side() {
    assert!(grants("*", "docs:read"));
    assert!(grants("*", "anything:at-all"));
    assert!(grants("docs:*", "docs:write"));
    assert!(grants("*:read", "users:read"));
    assert!(grants("*:*", "x:y"));
    assert!(grants("docs:read", "docs:read"));
    assert!(!grants("docs:read", "docs:write"));
    assert!(!grants("*:read", "docs:write"));
    assert!(!grants("docs:*", "doc:read"), "no prefix matching");
    assert!(
        !grants("docs:read", "docs:*"),
        "a wanted wildcard is literal"
    );
    assert!(grants("docs:*", "docs:*"));
    assert!(!grants("docs", "docs"), "not a capability");
}

#[test]
fn capability_syntax_is_resource_colon_action() {
    for ok in [
        "*",
        "docs:read",
        "*:read",
        "docs:*",
        "billing.invoices:export",
        "a-b_c:d",
    ] {
        assert!(is_valid_capability(ok), "{ok}");
    }
    for bad in [
        "",
        "docs",
        "docs:",
        ":read",
        "Docs:read",
        "docs:read:x",
        "docs read",
        "d*:read",
        &"a".repeat(200),
    ] {
        assert!(!is_valid_capability(bad), "{bad}");
    }
}

#[test]
fn ceilings_cap_roles() {
    assert_eq!(Role::Admin.capped(Some(Role::Viewer)), Role::Viewer);
    assert_eq!(Role::Viewer.capped(Some(Role::Admin)), Role::Viewer);
    assert_eq!(Role::Editor.capped(None), Role::Editor);
    assert_eq!(
        Role::parse("owner"),
        None,
        "unknown roles do not parse, so they grant nothing"
    );
}

struct World {
    app: TestApp,
    admin_key: String,
    ws_a: String,
    ws_b: String,
    off: String,
    editor: String,
    viewer: String,
}

fn world() -> World {
    let (app, _clock) = app(&[]);
    let admin_key = text(&bootstrap(&app), "key");
    let ws_a = insert_workspace(&app, "a", false);
    let ws_b = insert_workspace(&app, "b", false);
    let off = insert_workspace(&app, "off", true);
    let ed = insert_user(&app, "editor@example.test", "editor password", false);
    let vi = insert_user(&app, "viewer@example.test", "viewer password", false);
    insert_membership(&app, &ws_a, &ed, "editor");
    insert_membership(&app, &off, &ed, "admin");
    insert_membership(&app, &ws_a, &vi, "viewer");
    let editor = access_token_for(&app, "editor@example.test", "editor password", Some(&ws_a));
    let viewer = access_token_for(&app, "viewer@example.test", "viewer password", None);
    World {
        app,
        admin_key,
        ws_a,
        ws_b,
        off,
        editor,
        viewer,
    }
}

fn ask(app: &TestApp, caller: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = post("/v1/authorize", body);
    if let Some(c) = caller {
        request = with_bearer(request, c);
    }
    let response = send(app, request);
    (response.status, response.json_value())
}

fn allowed(app: &TestApp, caller: Option<&str>, body: Value) -> bool {
    let (status, body) = ask(app, caller, body);
    assert_eq!(status, 200, "{body}");
    body["allow"].as_bool().expect("allow is a bool")
}

#[test]
fn roles_grant_their_default_capabilities_in_their_own_workspace_only() {
    let w = world();
    let (a, b) = (w.ws_a.as_str(), w.ws_b.as_str());
    assert!(allowed(
        &w.app,
        Some(&w.editor),
        json!({ "capability": "docs:write", "workspace": a })
    ));
    assert!(allowed(
        &w.app,
        Some(&w.editor),
        json!({ "capability": "docs:read", "workspace": a })
    ));
    assert!(!allowed(
        &w.app,
        Some(&w.editor),
        json!({ "capability": "docs:delete", "workspace": a })
    ));
    assert!(
        !allowed(
            &w.app,
            Some(&w.editor),
            json!({ "capability": "docs:read", "workspace": b })
        ),
        "not a member of B"
    );
    assert!(allowed(
        &w.app,
        Some(&w.viewer),
        json!({ "capability": "docs:read", "workspace": a })
    ));
    assert!(!allowed(
        &w.app,
        Some(&w.viewer),
        json!({ "capability": "docs:write", "workspace": a })
    ));
    // Without a workspace the token's `ws` is used; the viewer's token has none: deny.
    assert!(allowed(
        &w.app,
        Some(&w.editor),
        json!({ "capability": "docs:write" })
    ));
    assert!(!allowed(
        &w.app,
        Some(&w.viewer),
        json!({ "capability": "docs:read" })
    ));
    // Org admins hold everything in every active workspace.
    assert!(allowed(
        &w.app,
        Some(&w.admin_key),
        json!({ "capability": "billing:delete", "workspace": b })
    ));
}

#[test]
fn a_disabled_workspace_grants_nothing_even_to_its_admin() {
    let w = world();
    assert!(!allowed(
        &w.app,
        Some(&w.editor),
        json!({ "capability": "docs:read", "workspace": w.off })
    ));
    assert!(!allowed(
        &w.app,
        Some(&w.admin_key),
        json!({ "capability": "docs:read", "workspace": w.off })
    ));
    assert!(!allowed(
        &w.app,
        Some(&w.admin_key),
        json!({ "capability": "docs:read", "workspace": "no-such-workspace" })
    ));
}

#[test]
fn a_token_in_the_body_is_judged_instead_of_the_caller() {
    let w = world();
    // No caller credential at all: the body's token is the question.
    assert!(allowed(
        &w.app,
        None,
        json!({ "token": w.editor, "capability": "docs:write", "workspace": w.ws_a })
    ));
    assert!(!allowed(
        &w.app,
        None,
        json!({ "token": w.viewer, "capability": "docs:write", "workspace": w.ws_a })
    ));
    let (status, body) = ask(
        &w.app,
        None,
        json!({ "token": "garbage", "capability": "docs:read", "workspace": w.ws_a }),
    );
    assert_eq!((status, body), (200, json!({ "allow": false, "ttl": 0 })));
    // Without a token and without a caller: authentication failure.
    let (status, body) = ask(
        &w.app,
        None,
        json!({ "capability": "docs:read", "workspace": w.ws_a }),
    );
    assert_eq!((status, body), (401, auth_failure_body()));
}

#[test]
fn an_api_key_is_capped_by_its_ceiling_and_scope() {
    let w = world();
    let make = |body: Value| {
        let response = send(&w.app, with_bearer(post("/v1/api-keys", body), &w.editor));
        assert_eq!(response.status, 201, "{:?}", response.json_value());
        text(&response.json_value(), "key")
    };
    let capped = make(json!({ "name": "ci", "role": "viewer" }));
    assert!(allowed(
        &w.app,
        Some(&capped),
        json!({ "capability": "docs:read", "workspace": w.ws_a })
    ));
    assert!(
        !allowed(
            &w.app,
            Some(&capped),
            json!({ "capability": "docs:write", "workspace": w.ws_a })
        ),
        "ceiling viewer"
    );
    let scoped = make(json!({ "name": "scoped", "workspace": w.ws_a }));
    assert!(
        allowed(&w.app, Some(&scoped), json!({ "capability": "docs:write" })),
        "scope is the default workspace"
    );
    assert!(!allowed(
        &w.app,
        Some(&scoped),
        json!({ "capability": "docs:read", "workspace": w.off })
    ));
    // A key cannot mint a broader key than itself.
    let escalate = send(
        &w.app,
        with_bearer(
            post("/v1/api-keys", json!({ "name": "up", "role": "editor" })),
            &capped,
        ),
    );
    assert_eq!(escalate.status, 403);
    let unscoped = send(
        &w.app,
        with_bearer(post("/v1/api-keys", json!({ "name": "wide" })), &scoped),
    );
    assert_eq!(unscoped.status, 403);
    // An org admin's key with a ceiling is not an org admin.
    let admin_viewer = send(
        &w.app,
        with_bearer(
            post("/v1/api-keys", json!({ "name": "ro", "role": "viewer" })),
            &w.admin_key,
        ),
    );
    let admin_viewer = text(&admin_viewer.json_value(), "key");
    assert!(!allowed(
        &w.app,
        Some(&admin_viewer),
        json!({ "capability": "docs:read", "workspace": w.ws_b })
    ));
    let roles = send(
        &w.app,
        with_bearer(HttpRequest::new(Method::Get, "/v1/roles"), &admin_viewer),
    );
    assert_eq!(roles.status, 403);
}

#[test]
fn org_admins_edit_role_capabilities_and_decisions_follow() {
    let w = world();
    let put = |role: &str, caps: Value, credential: &str| {
        send(
            &w.app,
            with_bearer(
                HttpRequest::new(Method::Put, &format!("/v1/roles/{role}"))
                    .json(&json!({ "capabilities": caps })),
                credential,
            ),
        )
    };
    assert!(!allowed(
        &w.app,
        Some(&w.viewer),
        json!({ "capability": "comments:write", "workspace": w.ws_a })
    ));
    let response = put("viewer", json!(["*:read", "comments:write"]), &w.admin_key);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json_value()["capabilities"],
        json!(["*:read", "comments:write"])
    );
    assert!(allowed(
        &w.app,
        Some(&w.viewer),
        json!({ "capability": "comments:write", "workspace": w.ws_a })
    ));
    let roles = send(
        &w.app,
        with_bearer(HttpRequest::new(Method::Get, "/v1/roles"), &w.admin_key),
    )
    .json_value();
    assert_eq!(
        roles["roles"][0],
        json!({ "role": "viewer", "capabilities": ["*:read", "comments:write"] })
    );
    // Validation, unknown roles, and non-admins.
    assert_eq!(
        put("viewer", json!(["not a capability"]), &w.admin_key).status,
        400
    );
    assert_eq!(put("owner", json!(["*"]), &w.admin_key).status, 404);
    assert_eq!(put("viewer", json!(["*"]), &w.editor).status, 403);
    // An emptied role grants nothing (fails closed), and the change is audited.
    assert_eq!(put("editor", json!([]), &w.admin_key).status, 200);
    assert!(!allowed(
        &w.app,
        Some(&w.editor),
        json!({ "capability": "docs:read", "workspace": w.ws_a })
    ));
    let audit = w.app.db.rows(
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'role_update'",
        &[],
    );
    assert_eq!(audit[0].int("n").unwrap(), 2);
}

#[test]
fn batches_judge_each_check_and_denials_are_audited() {
    let w = world();
    let response = send(
        &w.app,
        with_bearer(
            post(
                "/v1/authorize/batch",
                json!({ "checks": [
                    { "capability": "docs:read", "workspace": w.ws_a },
                    { "capability": "docs:delete", "workspace": w.ws_a },
                    { "capability": "docs:read", "workspace": w.ws_b },
                    { "capability": "docs:write" }
                ] }),
            ),
            &w.editor,
        ),
    );
    assert_eq!(response.status, 200);
    let allows: Vec<bool> = response.json_value()["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["allow"].as_bool().unwrap())
        .collect();
    assert_eq!(allows, [true, false, false, true]);
    let ttl = response.json_value()["decisions"][0]["ttl"]
        .as_i64()
        .unwrap();
    assert!(ttl > 0 && ttl <= 30, "ttl {ttl}");
    let denied = w.app.db.rows(
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'authorize' AND outcome = 'denied'",
        &[],
    );
    assert_eq!(denied[0].int("n").unwrap(), 2);
    let too_many = json!({ "checks": vec![json!({ "capability": "a:b" }); 101] });
    assert_eq!(
        send(
            &w.app,
            with_bearer(post("/v1/authorize/batch", too_many), &w.editor)
        )
        .status,
        400
    );
    let bad = send(
        &w.app,
        with_bearer(
            post("/v1/authorize", json!({ "capability": "docs" })),
            &w.editor,
        ),
    );
    assert_eq!(bad.json_value()["error"]["field"], "capability");
}

#[test]
fn a_storage_failure_never_becomes_an_allow() {
    let w = world();
    w.app.db.fail.set(true);
    let (status, _) = ask(
        &w.app,
        Some(&w.admin_key),
        json!({ "capability": "docs:read", "workspace": w.ws_a }),
    );
    w.app.db.fail.set(false);
    assert_eq!(status, 503);
}
