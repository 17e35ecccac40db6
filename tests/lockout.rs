//! Per-account lockout and per-IP limits (issue 6), with the fixed clock: the backoff schedule, the
//! proven maximum of password checks per hour, exactness under concurrency, the lock as no oracle
//! (same answer, same cost, unknown identifiers alike), what clears it, and the per-IP `429`s.

mod common;

use std::time::Instant;

use common::*;
use edgeauth::http::HttpRequest;
use edgeauth::rate_limits::{
    self, Admission, IpScope, LOCKOUT_BASE_SECONDS, LOCKOUT_MAX_CHECKS_PER_HOUR,
    LOCKOUT_MAX_SECONDS, LOCKOUT_MEMORY_SECONDS,
};
use edgeauth::store::SqlValue;
use serde_json::{json, Value};

const WRONG: &str = "not the password at all";

fn login(email: &str, password: &str) -> HttpRequest {
    post(
        "/v1/auth/login",
        json!({ "email": email, "password": password, "session": "token" }),
    )
}

fn from_ip(request: HttpRequest, ip: &str) -> HttpRequest {
    request.header("cf-connecting-ip", ip)
}

/// Status of a login; asserts that every refusal is the one auth_failure answer.
fn try_login(app: &TestApp, email: &str, password: &str) -> u16 {
    let response = send(app, login(email, password));
    if response.status != 200 {
        assert_eq!(response.status, 401);
        assert_eq!(response.json_value(), auth_failure_body());
        assert_eq!(response.header_value("retry-after"), None);
    }
    response.status
}

/// Login failures in the audit log, split into (checked, refused while locked).
fn audited_failures(app: &TestApp) -> (usize, usize) {
    let rows = app.db.rows(
        "SELECT detail FROM audit_events WHERE action = 'login' AND outcome = 'failure'",
        &[],
    );
    let locked = rows
        .iter()
        .filter(|r| {
            let detail: Value = serde_json::from_str(&r.text("detail").unwrap()).unwrap();
            detail["locked"] == json!(true)
        })
        .count();
    (rows.len() - locked, locked)
}

fn admit(app: &TestApp, key: &str) -> Admission {
    block_on(rate_limits::admit_login(app, key)).unwrap()
}

fn locked_until(app: &TestApp, key: &str) -> Option<i64> {
    app.db
        .rows(
            "SELECT locked_until FROM rate_limits WHERE key = ?1",
            &[SqlValue::Text(key.to_owned())],
        )
        .first()
        .and_then(|r| r.opt_int("locked_until").unwrap())
}

// ---------------------------------------------------------------------------------------------
// Per account
// ---------------------------------------------------------------------------------------------

#[test]
fn five_failures_lock_the_account_and_the_right_password_is_refused_until_the_lock_ends() {
    let (app, clock) = app(&[]);
    bootstrap(&app);
    for _ in 0..5 {
        assert_eq!(try_login(&app, ADMIN_EMAIL, WRONG), 401);
    }
    assert_eq!(audited_failures(&app), (5, 0));
    // Locked for 15 s: the right password gets the same 401 and is never checked.
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 401);
    clock.advance(LOCKOUT_BASE_SECONDS - 1);
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 401);
    assert_eq!(audited_failures(&app), (5, 2));
    clock.advance(1);
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 200);
    // Success ends the run: four more failures pass, the fifth locks again.
    for _ in 0..4 {
        assert_eq!(try_login(&app, ADMIN_EMAIL, WRONG), 401);
    }
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 200);
    for _ in 0..5 {
        assert_eq!(try_login(&app, ADMIN_EMAIL, WRONG), 401);
    }
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 401);
}

#[test]
fn four_failures_do_not_lock() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    for _ in 0..4 {
        assert_eq!(try_login(&app, ADMIN_EMAIL, WRONG), 401);
    }
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 200);
}

#[test]
fn each_failure_beyond_the_fifth_doubles_the_lock_up_to_an_hour() {
    let (app, clock) = app(&[]);
    let key = rate_limits::lockout_key("email", "victim@example.test");
    for _ in 0..4 {
        assert_eq!(admit(&app, &key), Admission::Check);
        assert_eq!(locked_until(&app, &key), None);
    }
    let mut locks = Vec::new();
    for _ in 0..12 {
        assert_eq!(admit(&app, &key), Admission::Check);
        let until = locked_until(&app, &key).expect("locked");
        let lock = until - clock.now();
        locks.push(lock);
        // Refused up to the last second of the lock, without extending it.
        clock.advance(lock - 1);
        assert_eq!(admit(&app, &key), Admission::Locked);
        assert_eq!(locked_until(&app, &key), Some(until));
        clock.advance(1);
    }
    assert_eq!(
        locks,
        [15, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]
    );
    assert_eq!(LOCKOUT_MAX_SECONDS, 3600);
}

#[test]
fn at_most_twelve_passwords_an_hour_are_checked_for_one_identifier() {
    // An attacker who tries every second for 6 hours: count the attempts that were admitted (the
    // only ones whose password is checked) in every one-hour window.
    let (app, clock) = app(&[]);
    let key = rate_limits::lockout_key("email", "victim@example.test");
    let start = clock.now();
    let mut admitted = Vec::new();
    for _ in 0..6 * 3600 {
        if admit(&app, &key) == Admission::Check {
            admitted.push(clock.now() - start);
        }
        clock.advance(1);
    }
    let max_per_hour = admitted
        .iter()
        .map(|&t| admitted.iter().filter(|&&u| u >= t && u < t + 3600).count())
        .max()
        .unwrap();
    assert_eq!(max_per_hour as i64, LOCKOUT_MAX_CHECKS_PER_HOUR);
    assert!(max_per_hour <= 100);
    // The first hour, exactly: five in five seconds, then one as each lock ends.
    assert_eq!(
        &admitted[..13],
        [0, 1, 2, 3, 4, 19, 49, 109, 229, 469, 949, 1909, 3829]
            .map(|t| t as i64)
            .as_slice()
    );
    // Afterwards one an hour (each failure locks for the full hour).
    assert!(admitted[12..].windows(2).all(|w| w[1] - w[0] == 3600));
    assert_eq!(admitted.len(), 12 + (6 * 3600 - 1 - 3829) / 3600 + 1);
}

#[test]
fn concurrent_attempts_are_admitted_exactly_as_the_backoff_allows() {
    let (app, _clock) = app(&[]);
    app.db.interleave.set(true);
    let key = rate_limits::lockout_key("email", "victim@example.test");
    let outcomes = block_on(futures::future::join_all(
        (0..40).map(|_| rate_limits::admit_login(&app, &key)),
    ));
    let admitted = outcomes
        .into_iter()
        .filter(|o| *o.as_ref().unwrap() == Admission::Check)
        .count();
    assert_eq!(admitted, 5);
}

#[test]
fn concurrent_wrong_passwords_through_http_check_only_five() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    app.db.interleave.set(true);
    let requests: Vec<HttpRequest> = (0..30)
        .map(|i| from_ip(login(ADMIN_EMAIL, WRONG), &format!("198.51.100.{i}")))
        .collect();
    let responses = block_on(futures::future::join_all(
        requests.iter().map(|r| app.handle(r)),
    ));
    assert!(responses.iter().all(|r| r.status == 401));
    assert_eq!(audited_failures(&app), (5, 25));
}

#[test]
fn an_unknown_address_locks_exactly_like_a_known_one() {
    let (app, clock) = app(&[]);
    bootstrap(&app);
    let unknown = "nobody@example.test";
    let mut answers = Vec::new();
    for email in [ADMIN_EMAIL, unknown] {
        for _ in 0..5 {
            assert_eq!(try_login(&app, email, WRONG), 401);
        }
        let response = send(&app, login(email, WRONG));
        answers.push((response.status, response.headers.clone(), response.body));
    }
    assert_eq!(
        answers[0], answers[1],
        "the lock must not tell accounts apart"
    );
    assert_eq!(audited_failures(&app), (10, 2));
    assert!(locked_until(&app, &rate_limits::lockout_key("email", unknown)).is_some());
    clock.advance(LOCKOUT_BASE_SECONDS);
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 200);
}

#[test]
fn the_identifier_is_normalised_so_case_and_spaces_do_not_escape_the_lock() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    for variant in [
        "admin@example.test",
        "ADMIN@example.test",
        " Admin@Example.Test ",
        "admin@EXAMPLE.test",
        "aDmin@example.test",
    ] {
        assert_eq!(try_login(&app, variant, WRONG), 401);
    }
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 401);
}

#[test]
fn a_locked_attempt_costs_a_full_hash_like_any_failure() {
    let (app, _clock) = app(&[("PBKDF2_ITERATIONS", "200000")]);
    bootstrap(&app);
    let time = |password: &str| {
        let started = Instant::now();
        assert_eq!(try_login(&app, ADMIN_EMAIL, password), 401);
        started.elapsed()
    };
    let checked: Vec<_> = (0..5).map(|_| time(WRONG)).collect();
    let locked: Vec<_> = (0..3).map(|_| time(ADMIN_PASSWORD)).collect();
    let fastest_checked = checked.iter().min().unwrap();
    let fastest_locked = locked.iter().min().unwrap();
    assert!(
        fastest_locked.as_secs_f64() > fastest_checked.as_secs_f64() / 3.0,
        "a locked attempt must burn the dummy hash: {fastest_locked:?} vs {fastest_checked:?}"
    );
}

#[test]
fn usernames_lock_too_and_a_login_by_email_clears_both() {
    let (app, clock) = app(&[]);
    bootstrap(&app);
    app.db
        .rows("UPDATE users SET username = 'root' RETURNING id", &[]);
    let by_name = |password: &str| {
        send(
            &app,
            post(
                "/v1/auth/login",
                json!({ "username": "Root", "password": password, "session": "token" }),
            ),
        )
        .status
    };
    for _ in 0..5 {
        assert_eq!(by_name(WRONG), 401);
    }
    assert_eq!(by_name(ADMIN_PASSWORD), 401);
    // The email is a different identifier: not locked, and its success clears the username too.
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 200);
    assert_eq!(by_name(ADMIN_PASSWORD), 200);
    let _ = clock;
}

#[test]
fn a_run_of_failures_is_forgotten_after_a_quiet_day_but_not_by_waiting_out_a_lock() {
    let (app, clock) = app(&[]);
    let key = rate_limits::lockout_key("email", "victim@example.test");
    // Eight attempts, each as soon as the previous lock ends; the 8th locks for 120 s.
    for _ in 0..8 {
        if let Some(until) = locked_until(&app, &key) {
            clock.advance(until - clock.now());
        }
        assert_eq!(admit(&app, &key), Admission::Check);
    }
    assert_eq!(locked_until(&app, &key), Some(clock.now() + 120));
    // Waiting out the lock does not reset the run: the 9th locks for 240 s.
    clock.advance(120);
    assert_eq!(admit(&app, &key), Admission::Check);
    assert_eq!(locked_until(&app, &key), Some(clock.now() + 240));
    clock.advance(LOCKOUT_MEMORY_SECONDS);
    for _ in 0..4 {
        assert_eq!(admit(&app, &key), Admission::Check);
    }
    assert_eq!(locked_until(&app, &key), None);
}

#[test]
fn a_magic_link_sign_in_clears_the_lock() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    for _ in 0..6 {
        try_login(&app, ADMIN_EMAIL, WRONG);
    }
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 401);
    let asked = send(
        &app,
        post(
            "/v1/auth/magic-link",
            json!({ "email": ADMIN_EMAIL, "session": "token" }),
        ),
    );
    assert_eq!(asked.status, 202);
    let attempt = text(&asked.json_value(), "attempt");
    let mail = app.outbox.drain().pop().expect("a sign-in mail");
    let code = mail
        .text
        .lines()
        .find_map(|l| l.strip_prefix("Code: "))
        .expect("code")
        .to_owned();
    let signed_in = send(
        &app,
        post(
            "/v1/auth/magic-link/code",
            json!({ "email": ADMIN_EMAIL, "code": code, "attempt": attempt }),
        ),
    );
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.json_value());
    assert_eq!(try_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD), 200);
}

#[test]
fn an_admin_password_reset_clears_the_lock() {
    let (app, _clock) = app(&[]);
    let boot = bootstrap(&app);
    let key = text(&boot, "key");
    let created = send(
        &app,
        post(
            "/v1/users",
            json!({ "email": "ann@example.test", "name": "Ann", "password": "ann's first password" }),
        )
        .header("authorization", &format!("Bearer {key}")),
    );
    assert_eq!(created.status, 201, "{:?}", created.json_value());
    let id = created.json_value()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..6 {
        try_login(&app, "ann@example.test", WRONG);
    }
    let reset = send(
        &app,
        post(&format!("/v1/users/{id}/reset-password"), json!({}))
            .header("authorization", &format!("Bearer {key}")),
    );
    assert_eq!(reset.status, 200, "{:?}", reset.json_value());
    let temporary = text(&reset.json_value(), "temporary_password");
    assert_eq!(try_login(&app, "ann@example.test", &temporary), 200);
}

// ---------------------------------------------------------------------------------------------
// Per IP
// ---------------------------------------------------------------------------------------------

fn assert_rate_limited(response: &edgeauth::http::HttpResponse, what: &str) {
    assert_eq!(response.status, 429, "{what}: {:?}", response.json_value());
    assert_eq!(
        response.json_value()["error"]["code"],
        json!("rate_limited"),
        "{what}"
    );
    assert_eq!(response.header_value("retry-after"), Some("60"), "{what}");
}

#[test]
fn sixty_logins_a_minute_per_ip_then_429_before_any_work() {
    let (app, clock) = app(&[]);
    bootstrap(&app);
    let ip = "203.0.113.7";
    // Spread over different accounts (a password spray); each is its own lockout key.
    for i in 0..60 {
        let request = from_ip(login(&format!("user{i}@example.test"), WRONG), ip)
            .header("x-forwarded-for", &format!("10.0.0.{i}"));
        assert_eq!(send(&app, request).status, 401, "login {i}");
    }
    let failures_before = audited_failures(&app);
    // Over the limit: 429 even with the right password, and nothing is checked or counted.
    for xff in ["10.9.9.9", "198.51.100.1"] {
        let response = send(
            &app,
            from_ip(login(ADMIN_EMAIL, ADMIN_PASSWORD), ip).header("x-forwarded-for", xff),
        );
        assert_rate_limited(&response, "61st login");
    }
    assert_eq!(audited_failures(&app), failures_before);
    assert!(locked_until(&app, &rate_limits::lockout_key("email", ADMIN_EMAIL)).is_none());
    // Another address is its own bucket.
    let other = send(
        &app,
        from_ip(login(ADMIN_EMAIL, ADMIN_PASSWORD), "203.0.113.8"),
    );
    assert_eq!(other.status, 200);
    // The next window opens after 60 s.
    clock.advance(60);
    let again = send(&app, from_ip(login(ADMIN_EMAIL, ADMIN_PASSWORD), ip));
    assert_eq!(again.status, 200);
}

#[test]
fn without_cf_connecting_ip_every_request_shares_one_bucket() {
    let (app, _clock) = app(&[]);
    for i in 0..60 {
        let request =
            login("x@example.test", WRONG).header("x-forwarded-for", &format!("10.0.0.{i}"));
        send(&app, request);
    }
    let response = send(
        &app,
        login("y@example.test", WRONG).header("x-real-ip", "10.1.1.1"),
    );
    assert_rate_limited(&response, "no CF-Connecting-IP");
}

#[test]
fn every_limited_route_answers_429_past_its_limit_even_for_a_malformed_body() {
    let (app, _clock) = app(&[("ALLOW_SIGNUP", "true")]);
    let routes = [
        ("/v1/auth/login", IpScope::Login),
        ("/v1/auth/register", IpScope::Register),
        ("/v1/auth/magic-link", IpScope::MagicLinkRequest),
        ("/v1/auth/magic-link/verify", IpScope::MagicLinkConfirm),
        ("/v1/auth/refresh", IpScope::Refresh),
    ];
    for (path, scope) in routes {
        let ip = format!("192.0.2.{}", scope as u8);
        let limit = scope.limit().max;
        for i in 0..limit {
            let mut request = from_ip(HttpRequest::new(edgeauth::http::Method::Post, path), &ip);
            request = request.header("content-type", "application/json");
            request.body = b"{".to_vec();
            let response = send(&app, request);
            assert_ne!(response.status, 429, "{path} request {i}");
        }
        let response = send(&app, from_ip(post(path, json!({})), &ip));
        assert_rate_limited(&response, path);
    }
    // Verify and code share one budget.
    let ip = format!("192.0.2.{}", IpScope::MagicLinkConfirm as u8);
    let response = send(
        &app,
        from_ip(
            post(
                "/v1/auth/magic-link/code",
                json!({ "email": "a@example.test", "code": "123456" }),
            ),
            &ip,
        ),
    );
    assert_rate_limited(&response, "code after verify's budget");
    assert_eq!(IpScope::Login.limit().max, 60);
    assert_eq!(IpScope::Refresh.limit().max, 600);
}

#[test]
fn a_failing_limiter_fails_closed() {
    let (mut app, _clock) = app(&[]);
    bootstrap(&app);
    let limiter = edgeauth::rate_limits::MemoryIpLimiter::default();
    limiter.fail.set(true);
    app.ip_limiter = Box::new(limiter);
    let response = send(&app, login(ADMIN_EMAIL, ADMIN_PASSWORD));
    assert_eq!(response.status, 503);
}
