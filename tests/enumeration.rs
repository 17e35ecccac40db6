//! Enumeration resistance (issue 6): a login and a magic-link request do the same D1 work and give
//! the same answer whether the address belongs to an account or not. "The same work" is checked as
//! the exact sequence of D1 round trips (their SQL); the timing figure is `scripts/timing.mjs`.

mod common;

use common::*;
use edgeauth::http::HttpResponse;
use serde_json::{json, Value};

/// Sends `body` to `path` and returns the answer with the SQL of each D1 round trip it made.
fn traced(app: &TestApp, path: &str, body: Value) -> (HttpResponse, Vec<String>) {
    app.db.round_trips.borrow_mut().clear();
    let response = send(app, post(path, body));
    let trips = app.db.round_trips.borrow().clone();
    (response, trips)
}

#[test]
fn a_failed_login_does_the_same_d1_work_for_every_kind_of_address() {
    let (app, _clock) = app(&[]);
    let key = text(&bootstrap(&app), "key");
    insert_user(&app, "known@example.test", "the real password 1", false);
    // A user without a password (magic-link only), and a disabled one.
    let created = send(
        &app,
        with_bearer(
            post(
                "/v1/users",
                json!({ "email": "nopassword@example.test", "name": "No Password" }),
            ),
            &key,
        ),
    );
    assert_eq!(created.status, 201);
    insert_user(&app, "disabled2@example.test", "the real password 1", false);
    app.db.rows(
        "UPDATE users SET status = 'disabled' WHERE email = 'disabled2@example.test'",
        &[],
    );
    let attempt = |email: &str, password: &str| {
        traced(
            &app,
            "/v1/auth/login",
            json!({ "email": email, "password": password, "session": "token" }),
        )
    };
    let (unknown, reference) = attempt("nobody@example.test", "a wrong password 1");
    assert_eq!(unknown.status, 401);
    assert_eq!(
        reference.len(),
        3,
        "admit, one lookup, the audit: {reference:#?}"
    );
    for (email, password) in [
        ("known@example.test", "a wrong password 1"),
        ("nopassword@example.test", "a wrong password 1"),
        ("disabled2@example.test", "the real password 1"),
        ("known@example.test", &"x".repeat(2000)),
    ] {
        let (response, trips) = attempt(email, password);
        assert_eq!(response.status, 401, "{email}");
        assert_eq!(response.body, unknown.body, "{email}");
        assert_eq!(
            trips, reference,
            "{email}: not the unknown address's D1 work"
        );
    }
    // And a locked identifier, known or not, still does the same.
    for _ in 0..6 {
        attempt("known@example.test", "a wrong password 1");
        attempt("other-nobody@example.test", "a wrong password 1");
    }
    let (_, locked_known) = attempt("known@example.test", "the real password 1");
    let (_, locked_unknown) = attempt("other-nobody@example.test", "a wrong password 1");
    assert_eq!(locked_known, reference);
    assert_eq!(locked_unknown, reference);
}

#[test]
fn a_magic_link_request_does_the_same_d1_work_for_every_kind_of_address() {
    for signup in ["false", "true"] {
        let (app, _clock) = app(&[("ALLOW_SIGNUP", signup)]);
        bootstrap(&app);
        insert_user(&app, "known@example.test", "the real password 1", false);
        insert_user(&app, "disabled@example.test", "the real password 1", false);
        app.db.rows(
            "UPDATE users SET status = 'disabled' WHERE email = 'disabled@example.test'",
            &[],
        );
        let ask = |email: &str| {
            traced(
                &app,
                "/v1/auth/magic-link",
                json!({ "email": email, "session": "token" }),
            )
        };
        let (first, reference) = ask("known@example.test");
        assert_eq!(first.status, 202);
        assert_eq!(reference.len(), 2, "one lookup, one batch: {reference:#?}");
        let attempt_rows = || {
            app.db
                .rows("SELECT COUNT(*) AS n FROM magic_link_attempts", &[])[0]
                .int("n")
                .unwrap()
        };
        let mut answers = vec![];
        for email in [
            "nobody@example.test",
            "disabled@example.test",
            "known@example.test",
        ] {
            let rows_before = attempt_rows();
            let (response, trips) = ask(email);
            assert_eq!(response.status, 202, "{email}");
            assert_eq!(trips, reference, "{email} (signup {signup})");
            assert_eq!(attempt_rows(), rows_before + 1, "{email}: one row written");
            answers.push(response.json_value());
        }
        // The disabled address got a decoy: consumed already, no address, no user, no redirect.
        let decoys = app.db.rows(
            "SELECT email, user_id, redirect_to, consumed_at, created_at FROM magic_link_attempts \
             WHERE consumed_at IS NOT NULL",
            &[],
        );
        assert!(!decoys.is_empty());
        for decoy in &decoys {
            assert_eq!(decoy.text("email").unwrap(), "");
            assert_eq!(decoy.opt_text("user_id").unwrap(), None);
            assert_eq!(decoy.opt_text("redirect_to").unwrap(), None);
            assert_eq!(
                decoy.int("consumed_at").unwrap(),
                decoy.int("created_at").unwrap()
            );
        }
        // Past the mail limit (5 per address per 15 minutes) the work is still the same.
        for _ in 0..4 {
            ask("known@example.test");
        }
        let rows_before = attempt_rows();
        let (throttled, trips) = ask("known@example.test");
        assert_eq!(throttled.status, 202);
        assert_eq!(trips, reference, "throttled");
        assert_eq!(
            attempt_rows(),
            rows_before + 1,
            "throttled: one (decoy) row"
        );
        // Live attempts: the known address's five, plus the unknown one's when sign-up is open.
        let live = app.db.rows(
            "SELECT COUNT(*) AS n FROM magic_link_attempts WHERE consumed_at IS NULL",
            &[],
        )[0]
        .int("n")
        .unwrap();
        assert_eq!(live, if signup == "true" { 6 } else { 5 });
        // Every answer has the same shape: status "sent" and a fresh attempt binding.
        for answer in &answers {
            assert_eq!(answer["status"], "sent");
            assert_eq!(
                answer["attempt"].as_str().map(str::len),
                first.json_value()["attempt"].as_str().map(str::len)
            );
        }
        // Mail went out five times to the known address (its limit), never to the disabled one,
        // and to the unknown one only when a first sign-in may create the account.
        let mut mailed: Vec<String> = app
            .outbox
            .drain()
            .into_iter()
            .map(|m| m.to.join(","))
            .collect();
        mailed.sort();
        let mut expected = vec!["known@example.test"; 5];
        if signup == "true" {
            expected.push("nobody@example.test");
        }
        assert_eq!(mailed, expected, "signup {signup}");
    }
}
