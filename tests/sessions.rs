//! Refresh rotation, reuse detection, the grace window, expiry and revocation, over real SQLite.

mod common;

use common::*;
use edgeauth::http::Method;
use edgeauth::store::SqlValue;
use serde_json::json;

fn session_row(app: &TestApp, id: &str) -> edgeauth::store::Row {
    app.db
        .rows(
            "SELECT generation, revoked_at, revoked_reason, expires_at FROM sessions WHERE id = ?1",
            &[SqlValue::from(id)],
        )
        .remove(0)
}

#[test]
fn refresh_rotates_the_token_and_the_new_one_works() {
    let (app, clock) = app(&[]);
    bootstrap(&app);
    let login = login_token_mode(&app);
    let first = text(&login, "refresh_token");

    clock.advance(60);
    let response = refresh(&app, &first);
    assert_eq!(response.status, 200);
    let body = response.json_value();
    let second = text(&body, "refresh_token");
    assert_ne!(first, second, "refresh must rotate the token");
    assert_eq!(body["session_id"], login["session_id"]);
    assert_eq!(body["token_type"], "Bearer");
    assert!(is_active(&app, body["access_token"].as_str().unwrap()));

    clock.advance(60);
    let third = refresh(&app, &second);
    assert_eq!(third.status, 200);
    assert_ne!(
        third.json_value()["refresh_token"].as_str().unwrap(),
        second
    );
    let row = session_row(&app, login["session_id"].as_str().unwrap());
    assert_eq!(row.int("generation").unwrap(), 2);
    // Only hashes are stored: the plaintext token appears nowhere in the session row.
    let stored = app.db.rows("SELECT * FROM sessions", &[]);
    let dump = format!("{stored:?}");
    assert!(!dump.contains(&second) && !dump.contains(&first));
}

#[test]
fn replaying_the_parent_after_the_grace_window_revokes_the_session() {
    let (app, clock) = app(&[("REFRESH_GRACE_SECONDS", "10")]);
    bootstrap(&app);
    let login = login_token_mode(&app);
    let parent = text(&login, "refresh_token");
    let rotated = refresh(&app, &parent).json_value();
    let current = text(&rotated, "refresh_token");
    let access = text(&rotated, "access_token");
    assert!(is_active(&app, &access));

    clock.advance(11);
    let replay = refresh(&app, &parent);
    assert_eq!(replay.status, 401);
    assert_eq!(replay.json_value(), auth_failure_body());

    let sid = login["session_id"].as_str().unwrap();
    let row = session_row(&app, sid);
    assert_eq!(row.text("revoked_reason").unwrap(), "reuse_detected");
    // The whole session is gone: the legitimate holder's current token fails too...
    assert_eq!(refresh(&app, &current).status, 401);
    // ...and its access token is refused at once through the KV flag.
    assert!(!is_active(&app, &access));
    let audit = app.db.rows(
        "SELECT outcome FROM audit_events WHERE action = 'refresh_reuse' AND target_id = ?1",
        &[SqlValue::from(sid)],
    );
    assert_eq!(audit.len(), 1);
}

#[test]
fn a_grandparent_token_is_reuse_even_inside_the_grace_window() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let t0 = text(&login_token_mode(&app), "refresh_token");
    let t1 = rotate(&app, &t0);
    let t2 = rotate(&app, &t1);
    assert_eq!(
        refresh(&app, &t0).status,
        401,
        "only the immediate parent gets grace"
    );
    assert_eq!(refresh(&app, &t2).status, 401, "reuse revoked the session");
}

#[test]
fn a_retry_of_the_parent_inside_the_grace_window_gets_the_same_current_token() {
    let (app, clock) = app(&[("REFRESH_GRACE_SECONDS", "10")]);
    bootstrap(&app);
    let login = login_token_mode(&app);
    let parent = text(&login, "refresh_token");
    let winner = refresh(&app, &parent).json_value();

    clock.advance(5);
    let retry = refresh(&app, &parent);
    assert_eq!(
        retry.status, 200,
        "a retry within the grace window must succeed"
    );
    let retry = retry.json_value();
    assert_eq!(
        retry["refresh_token"], winner["refresh_token"],
        "both tabs converge on one token"
    );
    assert!(is_active(&app, retry["access_token"].as_str().unwrap()));
    let row = session_row(&app, login["session_id"].as_str().unwrap());
    assert_eq!(
        row.int("generation").unwrap(),
        1,
        "the retry does not fork the lineage"
    );
    assert!(row.opt_int("revoked_at").unwrap().is_none());
}

#[test]
fn two_concurrent_refreshes_of_one_token_both_succeed_with_one_lineage() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let login = login_token_mode(&app);
    let token = text(&login, "refresh_token");

    // Both requests read the session before either updates it: one wins the conditional UPDATE,
    // the other sees zero changed rows and must be answered from the grace path.
    let request = post("/v1/auth/refresh", json!({ "refresh_token": token }));
    app.db.interleave.set(true);
    let (a, b) = block_on(async { futures::join!(app.handle(&request), app.handle(&request)) });
    app.db.interleave.set(false);
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(
        a.json_value()["refresh_token"],
        b.json_value()["refresh_token"]
    );
    let row = session_row(&app, login["session_id"].as_str().unwrap());
    assert_eq!(row.int("generation").unwrap(), 1);
    assert!(row.opt_int("revoked_at").unwrap().is_none());
    // And the shared token keeps working.
    let shared = text(&a.json_value(), "refresh_token");
    assert_eq!(refresh(&app, &shared).status, 200);
}

#[test]
fn idle_expiry_ends_a_session_that_is_not_refreshed() {
    let (app, clock) = app(&[
        ("REFRESH_IDLE_TTL", "3600"),
        ("REFRESH_ABSOLUTE_TTL", "86400"),
    ]);
    bootstrap(&app);
    let mut token = text(&login_token_mode(&app), "refresh_token");
    // Refreshing inside the idle window extends it, again and again, past the first idle limit.
    for _ in 0..3 {
        clock.advance(3000);
        let response = refresh(&app, &token);
        assert_eq!(response.status, 200);
        token = text(&response.json_value(), "refresh_token");
    }
    clock.advance(3601);
    assert_eq!(
        refresh(&app, &token).status,
        401,
        "idle for longer than REFRESH_IDLE_TTL"
    );
}

#[test]
fn absolute_expiry_ends_even_an_active_session() {
    let (app, clock) = app(&[
        ("REFRESH_IDLE_TTL", "3600"),
        ("REFRESH_ABSOLUTE_TTL", "7200"),
    ]);
    bootstrap(&app);
    let login = login_token_mode(&app);
    let mut token = text(&login, "refresh_token");
    clock.advance(3000);
    let response = refresh(&app, &token);
    assert_eq!(response.status, 200);
    token = text(&response.json_value(), "refresh_token");
    // The idle extension is capped at the absolute limit.
    let row = session_row(&app, login["session_id"].as_str().unwrap());
    assert_eq!(row.int("expires_at").unwrap(), T0 + 6600);
    clock.advance(3000);
    let response = refresh(&app, &token);
    assert_eq!(response.status, 200);
    token = text(&response.json_value(), "refresh_token");
    assert_eq!(
        session_row(&app, login["session_id"].as_str().unwrap())
            .int("expires_at")
            .unwrap(),
        T0 + 7200
    );
    clock.advance(1201);
    assert_eq!(
        refresh(&app, &token).status,
        401,
        "past REFRESH_ABSOLUTE_TTL"
    );
}

#[test]
fn a_forged_refresh_token_for_a_real_session_revokes_nothing() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let login = login_token_mode(&app);
    let sid = login["session_id"].as_str().unwrap();
    let forged = format!("{sid}.0.{}", "A".repeat(43));
    assert_eq!(refresh(&app, &forged).status, 401);
    assert!(session_row(&app, sid)
        .opt_int("revoked_at")
        .unwrap()
        .is_none());
    assert_eq!(
        refresh(&app, login["refresh_token"].as_str().unwrap()).status,
        200
    );
}

#[test]
fn logout_revokes_the_session_and_flags_its_access_token() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let login = login_token_mode(&app);
    let access = login["access_token"].as_str().unwrap();
    let response = send(
        &app,
        edgeauth::http::HttpRequest::new(Method::Post, "/v1/auth/logout")
            .header("authorization", &format!("Bearer {access}")),
    );
    assert_eq!(response.status, 204);
    assert!(!is_active(&app, access));
    assert_eq!(
        refresh(&app, login["refresh_token"].as_str().unwrap()).status,
        401
    );
    let sid = login["session_id"].as_str().unwrap();
    assert_eq!(
        session_row(&app, sid).text("revoked_reason").unwrap(),
        "logout"
    );
    let flags = app.flags.inner().values.borrow();
    let (reason, ttl) = flags
        .get(&format!("revoked:session:{sid}"))
        .expect("KV flag written");
    assert_eq!(reason, "logout");
    assert!(
        *ttl >= 600,
        "the flag outlives every access token it guards (ttl {ttl})"
    );
}

#[test]
fn logging_in_beyond_the_cap_evicts_the_least_recently_active_session() {
    let (app, clock) = app(&[("MAX_SESSIONS_PER_USER", "2")]);
    bootstrap(&app);
    let oldest = login_token_mode(&app);
    clock.advance(10);
    let middle = login_token_mode(&app);
    clock.advance(10);
    let newest = login_token_mode(&app);
    let sid = oldest["session_id"].as_str().unwrap();
    assert_eq!(
        session_row(&app, sid).text("revoked_reason").unwrap(),
        "session_cap_eviction"
    );
    assert!(!is_active(&app, oldest["access_token"].as_str().unwrap()));
    assert!(is_active(&app, middle["access_token"].as_str().unwrap()));
    assert!(is_active(&app, newest["access_token"].as_str().unwrap()));
}

#[test]
fn a_storage_failure_during_refresh_is_503_and_rotates_nothing() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let login = login_token_mode(&app);
    let token = login["refresh_token"].as_str().unwrap();
    app.db.fail.set(true);
    let response = refresh(&app, token);
    app.db.fail.set(false);
    assert_eq!(response.status, 503);
    assert_eq!(response.json_value()["error"]["code"], "unavailable");
    assert_eq!(
        session_row(&app, login["session_id"].as_str().unwrap())
            .int("generation")
            .unwrap(),
        0
    );
    assert_eq!(
        refresh(&app, token).status,
        200,
        "the token still works once storage is back"
    );
}

#[test]
fn a_flag_store_failure_makes_verification_fail_closed() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let access = text(&login_token_mode(&app), "access_token");
    app.flags.inner().fail.set(true);
    let response = send(&app, post("/v1/verify", json!({ "token": access })));
    app.flags.inner().fail.set(false);
    assert_eq!(
        response.status, 503,
        "unknown revocation state is not an active token"
    );
}
