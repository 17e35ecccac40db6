//! Scheduled upkeep (`edgeauth::upkeep::run`, what the cron trigger runs): rotation when due, and
//! the deletion of what can no longer matter, each rule checked on both sides of its boundary in
//! SQLite; the run's audit event; a failed run reported as a failure.

mod common;

use common::*;
use edgeauth::config::{Config, ConfigError};
use edgeauth::http::{HttpRequest, Method};
use edgeauth::signing_keys;
use edgeauth::stmt;
use edgeauth::store::{Database, SqlValue};
use edgeauth::upkeep::{self, UpkeepReport, CHUNK, MAX_CHUNKS};
use serde_json::{json, Value};

/// `ACCESS_TOKEN_TTL` (default) + the 10 s verification leeway.
const OVERLAP: i64 = 610;
const DAY: i64 = 86_400;

fn run(app: &TestApp) -> UpkeepReport {
    block_on(upkeep::run(app)).expect("upkeep run")
}

fn ids(app: &TestApp, table: &str, column: &str) -> Vec<String> {
    let mut ids: Vec<String> = app
        .db
        .rows(&format!("SELECT {column} AS id FROM {table}"), &[])
        .iter()
        .map(|r| r.text("id").unwrap())
        .collect();
    ids.sort();
    ids
}

fn jwks_kids(app: &TestApp) -> Vec<String> {
    let mut kids: Vec<String> = send(app, HttpRequest::new(Method::Get, "/.well-known/jwks.json"))
        .json_value()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

fn current_kid(app: &TestApp) -> String {
    block_on(signing_keys::current(&app.db))
        .unwrap()
        .expect("a current key")
        .kid
}

fn insert_session(
    app: &TestApp,
    id: &str,
    user_id: &str,
    expires_at: i64,
    absolute_expires_at: i64,
    revoked_at: Option<i64>,
) {
    block_on(app.db.execute(stmt!(
        "INSERT INTO sessions (id, org_id, user_id, auth_method, created_at, last_active_at, \
         expires_at, absolute_expires_at, refresh_nonce, refresh_hash, revoked_at, revoked_reason) \
         VALUES (?1, 'default', ?2, 'pwd', ?3, ?3, ?4, ?5, 'nonce', ?1, ?6, ?7)",
        id,
        user_id,
        T0 - 60 * DAY,
        expires_at,
        absolute_expires_at,
        revoked_at,
        revoked_at.map(|_| "logout")
    )))
    .unwrap();
}

fn insert_attempt(app: &TestApp, id: &str, expires_at: i64, consumed_at: Option<i64>) {
    block_on(app.db.execute(stmt!(
        "INSERT INTO magic_link_attempts (id, org_id, email, purpose, token_hash, code_hash, \
         binding_hash, session_mode, created_at, expires_at, consumed_at) \
         VALUES (?1, 'default', 'someone@example.test', 'login', ?1, 'c', 'b', 'token', ?2, ?3, ?4)",
        id,
        expires_at - 600,
        expires_at,
        consumed_at
    )))
    .unwrap();
}

fn insert_rate_limit(app: &TestApp, key: &str, expires_at: i64, locked_until: Option<i64>) {
    block_on(app.db.execute(stmt!(
        "INSERT INTO rate_limits (key, org_id, window_start, count, locked_until, expires_at) \
         VALUES (?1, 'default', ?2, 3, ?3, ?4)",
        key,
        expires_at - 900,
        locked_until,
        expires_at
    )))
    .unwrap();
}

fn insert_audit(app: &TestApp, id: &str, occurred_at: i64) {
    block_on(app.db.execute(stmt!(
        "INSERT INTO audit_events (id, org_id, occurred_at, actor_kind, action, outcome) \
         VALUES (?1, 'default', ?2, 'system', 'test', 'success')",
        id,
        occurred_at
    )))
    .unwrap();
}

/// The `upkeep` audit events: (outcome, detail).
fn upkeep_events(app: &TestApp) -> Vec<(String, Value)> {
    app.db
        .rows(
            "SELECT actor_kind, actor_id, outcome, detail FROM audit_events \
             WHERE action = 'upkeep' ORDER BY id",
            &[],
        )
        .iter()
        .map(|r| {
            assert_eq!(r.text("actor_kind").unwrap(), "system");
            assert_eq!(r.opt_text("actor_id").unwrap(), None);
            (
                r.text("outcome").unwrap(),
                serde_json::from_str(&r.text("detail").unwrap()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn upkeep_deletes_what_can_no_longer_matter_and_keeps_the_rest() {
    let (app, clock) = app(&[("AUDIT_RETENTION_DAYS", "30")]);
    // Keys: K1 retired at T0+100 (published until T0+710), K2 retired at T0+200 (until T0+810),
    // K3 current.
    block_on(app.key_ring()).unwrap();
    let k1 = current_kid(&app);
    clock.advance(100);
    block_on(signing_keys::rotate(&app, Some(&k1))).unwrap();
    let k2 = current_kid(&app);
    clock.advance(100);
    block_on(signing_keys::rotate(&app, Some(&k2))).unwrap();
    let k3 = current_kid(&app);
    clock.advance(510);
    let now = clock.now();
    assert_eq!(now, T0 + 710);

    let user = insert_user(&app, "sessions@example.test", ADMIN_PASSWORD, false);
    let far = now + 10 * DAY;
    insert_session(&app, "live", &user, now + DAY, far, None);
    // A session's last token may outlive its end by the overlap: kept until then.
    insert_session(
        &app,
        "idle-ended-in-overlap",
        &user,
        now - OVERLAP + 1,
        far,
        None,
    );
    insert_session(
        &app,
        "idle-ended-past-overlap",
        &user,
        now - OVERLAP,
        far,
        None,
    );
    insert_session(
        &app,
        "absolute-ended-in-overlap",
        &user,
        now + DAY,
        now - OVERLAP + 1,
        None,
    );
    insert_session(
        &app,
        "absolute-ended-past-overlap",
        &user,
        now + DAY,
        now - OVERLAP,
        None,
    );
    insert_session(
        &app,
        "revoked-in-overlap",
        &user,
        now + DAY,
        far,
        Some(now - OVERLAP + 1),
    );
    insert_session(
        &app,
        "revoked-past-overlap",
        &user,
        now + DAY,
        far,
        Some(now - OVERLAP),
    );

    insert_attempt(&app, "attempt-live", now + 1, None);
    insert_attempt(&app, "attempt-consumed-live", now + 1, Some(now - 5));
    insert_attempt(&app, "attempt-expired", now, None);
    insert_attempt(&app, "attempt-consumed-expired", now - 100, Some(now - 200));

    insert_rate_limit(&app, "window-open", now + 1, None);
    insert_rate_limit(&app, "window-ended", now, None);
    insert_rate_limit(&app, "window-ended-locked", now - 100, Some(now + 1));
    insert_rate_limit(&app, "window-ended-lock-over", now - 100, Some(now));

    let cutoff = now - 30 * DAY;
    insert_audit(&app, "audit-at-cutoff", cutoff);
    insert_audit(&app, "audit-before-cutoff", cutoff - 1);
    insert_audit(&app, "audit-recent", now - 1);

    let report = run(&app);
    assert_eq!(
        report,
        UpkeepReport {
            rotated_to: None,
            signing_keys_deleted: 1,
            sessions_deleted: 3,
            magic_link_attempts_deleted: 2,
            rate_limits_deleted: 2,
            audit_events_deleted: 1,
        }
    );

    let mut kept_keys = vec![k2.clone(), k3.clone()];
    kept_keys.sort();
    assert_eq!(ids(&app, "signing_keys", "kid"), kept_keys);
    assert_eq!(jwks_kids(&app), kept_keys);
    assert_eq!(current_kid(&app), k3);
    assert_eq!(
        ids(&app, "sessions", "id"),
        [
            "absolute-ended-in-overlap",
            "idle-ended-in-overlap",
            "live",
            "revoked-in-overlap"
        ]
    );
    assert_eq!(
        ids(&app, "magic_link_attempts", "id"),
        ["attempt-consumed-live", "attempt-live"]
    );
    assert_eq!(
        ids(&app, "rate_limits", "key"),
        ["window-ended-locked", "window-open"]
    );
    let audit = ids(&app, "audit_events", "id");
    assert!(audit.contains(&"audit-at-cutoff".to_owned()));
    assert!(audit.contains(&"audit-recent".to_owned()));
    assert!(!audit.contains(&"audit-before-cutoff".to_owned()));

    // One `upkeep` event, by the system, with the counts.
    assert_eq!(
        upkeep_events(&app),
        vec![("success".to_owned(), report.to_json())]
    );
    assert_eq!(
        report.to_json(),
        json!({
            "rotated_to": null, "signing_keys_deleted": 1, "sessions_deleted": 3,
            "magic_link_attempts_deleted": 2, "rate_limits_deleted": 2, "audit_events_deleted": 1,
        })
    );

    // A second run finds nothing more.
    let again = run(&app);
    assert_eq!(again, UpkeepReport::default());
}

#[test]
fn upkeep_rotates_when_the_current_key_is_due_and_prunes_it_after_the_overlap() {
    let (app, clock) = app(&[("SIGNING_KEY_ROTATION_SECONDS", "3600")]);
    bootstrap(&app);
    login_token_mode(&app);
    let k1 = current_kid(&app);

    clock.advance(3599);
    assert_eq!(run(&app).rotated_to, None, "not due yet");
    assert_eq!(current_kid(&app), k1);

    clock.advance(1);
    let rotated_at = clock.now();
    let report = run(&app);
    let k2 = report.rotated_to.clone().expect("due: rotated");
    assert_ne!(k2, k1);
    assert_eq!(current_kid(&app), k2);
    let row = &app.db.rows(
        "SELECT status, retired_at, publish_until FROM signing_keys WHERE kid = ?1",
        &[SqlValue::from(k1.as_str())],
    )[0];
    assert_eq!(row.text("status").unwrap(), "retired");
    assert_eq!(row.int("retired_at").unwrap(), rotated_at);
    assert_eq!(row.int("publish_until").unwrap(), rotated_at + OVERLAP);
    let mut both = vec![k1.clone(), k2.clone()];
    both.sort();
    assert_eq!(jwks_kids(&app), both);
    assert_eq!(
        upkeep_events(&app).last().unwrap().1["rotated_to"],
        json!(k2)
    );

    // New tokens verify (tokens of the old key through the overlap: tests/signing_keys.rs).
    let after = text(&login_token_mode(&app), "access_token");
    assert!(is_active(&app, &after));

    // Not due again at once; the old key goes once its overlap is over.
    clock.advance(OVERLAP - 1);
    let report = run(&app);
    assert_eq!(report.rotated_to, None);
    assert_eq!(report.signing_keys_deleted, 0);
    clock.advance(1);
    assert_eq!(run(&app).signing_keys_deleted, 1);
    assert_eq!(ids(&app, "signing_keys", "kid"), vec![k2.clone()]);
    assert_eq!(jwks_kids(&app), vec![k2]);
}

#[test]
fn upkeep_on_a_fresh_deployment_makes_the_first_key() {
    let (app, _clock) = app(&[]);
    let report = run(&app);
    let kid = report.rotated_to.expect("a first key");
    assert_eq!(ids(&app, "signing_keys", "kid"), vec![kid.clone()]);
    assert_eq!(jwks_kids(&app), vec![kid]);
}

#[test]
fn large_backlogs_are_deleted_in_bounded_chunks() {
    let (app, _clock) = app(&[]);
    let cap = CHUNK * i64::try_from(MAX_CHUNKS).unwrap();
    block_on(app.db.execute(stmt!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO magic_link_attempts (id, org_id, email, purpose, token_hash, code_hash, \
           binding_hash, session_mode, created_at, expires_at) \
         SELECT 'a' || i, 'default', 'x@example.test', 'login', 'h' || i, 'c', 'b', 'token', ?2, ?3 \
         FROM n",
        cap + 5,
        T0 - 700,
        T0 - 100
    )))
    .unwrap();
    assert_eq!(
        run(&app).magic_link_attempts_deleted,
        u64::try_from(cap).unwrap()
    );
    assert_eq!(run(&app).magic_link_attempts_deleted, 5);
    assert!(ids(&app, "magic_link_attempts", "id").is_empty());
}

#[test]
fn a_failed_run_is_reported_and_recorded_as_a_failure() {
    let (app, _clock) = app(&[]);
    block_on(app.key_ring()).unwrap();
    app.db.fail.set(true);
    let error = block_on(upkeep::run(&app)).expect_err("storage is down");
    assert_eq!(error.step, "rotate");
    app.db.fail.set(false);
    assert!(
        upkeep_events(&app).is_empty(),
        "no event claims success (nor could the failure be written)"
    );

    // A run that fails part-way records the failure with what it did.
    block_on(app.db.execute(stmt!("DROP TABLE magic_link_attempts"))).unwrap();
    let error = block_on(upkeep::run(&app)).expect_err("a table is missing");
    assert_eq!(error.step, "magic_link_attempts");
    let events = upkeep_events(&app);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "failure");
    assert_eq!(events[0].1["failed_step"], "magic_link_attempts");
}

#[test]
fn upkeep_settings_have_defaults_and_bounds() {
    let config = common::config(&[]);
    assert_eq!(config.signing_key_rotation_seconds, 2_592_000);
    assert_eq!(config.audit_retention_days, 365);
    let with = |name: &'static str, value: &'static str| {
        let base = [
            ("PUBLIC_URL", PUBLIC_URL),
            ("SIGNING_SECRET", SIGNING_SECRET),
            (name, value),
        ];
        Config::from_lookup(|n| {
            base.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    assert_eq!(
        with("SIGNING_KEY_ROTATION_SECONDS", "60")
            .unwrap()
            .signing_key_rotation_seconds,
        60
    );
    assert_eq!(
        with("AUDIT_RETENTION_DAYS", "1")
            .unwrap()
            .audit_retention_days,
        1
    );
    for (name, value) in [
        ("SIGNING_KEY_ROTATION_SECONDS", "59"),
        ("SIGNING_KEY_ROTATION_SECONDS", "a month"),
        ("AUDIT_RETENTION_DAYS", "0"),
    ] {
        assert!(
            matches!(with(name, value), Err(ConfigError::Invalid { name: n, .. }) if n == name),
            "{name}={value}"
        );
    }
}
