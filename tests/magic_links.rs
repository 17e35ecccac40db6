//! Magic-link attempts (hashing at rest, binding, single use, expiry, the code limit, races) and the
//! `redirect_to` allow-list, over real SQLite running the real migrations.

mod common;

use std::cell::RefCell;

use common::*;
use edgeauth::crypto::{derive_key, hex, hmac_sha256, sha256_hex};
use edgeauth::magic_links::{
    self, AttemptSecrets, CodeOutcome, NewAttempt, Purpose, SessionMode, MAX_CODE_FAILURES,
};
use edgeauth::redirects::{check_redirect, RedirectError};
use edgeauth::store::{BackendError, Random, SqlValue};

const EMAIL: &str = "ann@example.test";

fn login_attempt(email: &str) -> NewAttempt<'_> {
    NewAttempt {
        email,
        user_id: None,
        purpose: Purpose::Login,
        redirect_to: Some("https://app.example/dash"),
        session_mode: SessionMode::Cookie,
        binding: None,
    }
}

fn create(app: &TestApp) -> (AttemptSecrets, String) {
    block_on(magic_links::create_attempt(app, &login_attempt(EMAIL))).unwrap()
}

fn by_token(app: &TestApp, s: &AttemptSecrets, binding: &str) -> Option<magic_links::Attempt> {
    block_on(magic_links::consume_by_token(app, s.token(), binding)).unwrap()
}

fn by_code(app: &TestApp, code: &str, binding: &str) -> CodeOutcome {
    block_on(magic_links::consume_by_code(app, EMAIL, code, binding)).unwrap()
}

fn peek(app: &TestApp, token: &str) -> Option<magic_links::LinkPreview> {
    block_on(magic_links::peek_by_token(app, token)).unwrap()
}

/// The stored row, every column as text (integers and NULL rendered), for "appears nowhere" checks.
fn row_texts(app: &TestApp, id: &str) -> Vec<(String, String)> {
    let row = app
        .db
        .rows(
            "SELECT * FROM magic_link_attempts WHERE id = ?1",
            &[SqlValue::from(id)],
        )
        .remove(0);
    row.0
        .into_iter()
        .map(|(column, value)| {
            let text = match value {
                SqlValue::Null => String::new(),
                SqlValue::Integer(i) => i.to_string(),
                SqlValue::Real(f) => f.to_string(),
                SqlValue::Text(t) => t,
            };
            (column, text)
        })
        .collect()
}

fn column(app: &TestApp, id: &str, name: &str) -> String {
    row_texts(app, id)
        .into_iter()
        .find(|(c, _)| c == name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .1
}

/// A code that is certainly not `code`.
fn other_code(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[test]
fn token_code_and_binding_are_stored_only_as_hashes() {
    let (app, _clock) = app(&[]);
    let (secrets, id) = create(&app);
    let texts = row_texts(&app, &id);
    for (column, value) in &texts {
        assert!(!value.contains(secrets.token()), "token in column {column}");
        assert!(
            !value.contains(secrets.binding()),
            "binding in column {column}"
        );
        assert_ne!(value, secrets.code(), "code in column {column}");
    }
    // The link token is SHA-256 at rest (256 random bits need no key).
    assert_eq!(
        column(&app, &id, "token_hash"),
        sha256_hex(secrets.token().as_bytes())
    );
    // Code and binding are keyed: a plain hash of them would let a dump be brute-forced.
    let code_hash = column(&app, &id, "code_hash");
    let binding_hash = column(&app, &id, "binding_hash");
    assert_eq!(code_hash.len(), 64);
    assert_eq!(binding_hash.len(), 64);
    for plain in [
        sha256_hex(secrets.code().as_bytes()),
        sha256_hex(format!("{}{}", secrets.binding(), secrets.code()).as_bytes()),
    ] {
        assert_ne!(code_hash, plain, "code hashed without a key");
    }
    assert_ne!(
        binding_hash,
        sha256_hex(secrets.binding().as_bytes()),
        "binding hashed without a key"
    );
    // ... under the key derived for magic links, so the hashes are useless without SIGNING_SECRET.
    let key = derive_key(&app.config.signing_secret, "magic-link");
    let mac = |parts: &[&[u8]]| hex(&hmac_sha256(key.expose(), parts));
    assert_eq!(
        code_hash,
        mac(&[
            b"code\0",
            secrets.binding().as_bytes(),
            b"\0",
            secrets.code().as_bytes()
        ])
    );
    assert_eq!(
        binding_hash,
        mac(&[b"binding\0", secrets.binding().as_bytes()])
    );
}

#[test]
fn the_stored_fields_round_trip() {
    let (app, _clock) = app(&[]);
    let user_id = insert_user(&app, "bob@example.test", "a long password", false);
    let (secrets, id) = block_on(magic_links::create_attempt(
        &app,
        &NewAttempt {
            email: "bob@example.test",
            user_id: Some(&user_id),
            purpose: Purpose::VerifyEmail,
            redirect_to: None,
            session_mode: SessionMode::Token,
            binding: None,
        },
    ))
    .unwrap();
    assert_eq!(column(&app, &id, "expires_at"), (T0 + 600).to_string());
    assert_eq!(column(&app, &id, "code_failures"), "0");
    assert_eq!(column(&app, &id, "consumed_at"), "");
    let attempt = by_token(&app, &secrets, secrets.binding()).unwrap();
    assert_eq!(attempt.id, id);
    assert_eq!(attempt.email, "bob@example.test");
    assert_eq!(attempt.user_id.as_deref(), Some(user_id.as_str()));
    assert_eq!(attempt.purpose, Purpose::VerifyEmail);
    assert_eq!(attempt.session_mode, SessionMode::Token);
    assert_eq!(attempt.redirect_to, None);
    assert_eq!((attempt.created_at, attempt.expires_at), (T0, T0 + 600));
    assert_eq!(column(&app, &id, "consumed_at"), T0.to_string());
}

#[test]
fn secrets_are_long_enough_and_do_not_print() {
    let (app, _clock) = app(&[]);
    let (secrets, _) = create(&app);
    // 32 bytes of base64url: 43 characters, 256 bits.
    assert_eq!(secrets.token().len(), 43);
    assert_eq!(secrets.binding().len(), 43);
    assert_ne!(secrets.token(), secrets.binding());
    let printed = format!("{secrets:?}");
    for secret in [secrets.token(), secrets.code(), secrets.binding()] {
        assert!(!printed.contains(secret), "Debug prints {printed}");
    }
}

#[test]
fn a_link_is_single_use() {
    let (app, clock) = app(&[]);
    let (secrets, id) = create(&app);
    let attempt = by_token(&app, &secrets, secrets.binding()).expect("first use");
    assert_eq!(attempt.id, id);
    assert_eq!(
        attempt.redirect_to.as_deref(),
        Some("https://app.example/dash")
    );
    clock.advance(1);
    assert!(by_token(&app, &secrets, secrets.binding()).is_none());
    assert!(peek(&app, secrets.token()).is_none());
    // Nor does its code work afterwards.
    assert_eq!(
        by_code(&app, secrets.code(), secrets.binding()),
        CodeOutcome::NoLiveAttempt
    );
    assert_eq!(column(&app, &id, "consumed_at"), T0.to_string());
}

#[test]
fn a_wrong_binding_consumes_nothing_and_the_right_one_then_succeeds() {
    let (app, _clock) = app(&[]);
    let (secrets, id) = create(&app);
    let (other, _) = create(&app);
    for wrong in ["", "x", other.binding(), secrets.token()] {
        assert!(
            by_token(&app, &secrets, wrong).is_none(),
            "consumed with binding {wrong:?}"
        );
    }
    assert_eq!(column(&app, &id, "consumed_at"), "");
    assert!(peek(&app, secrets.token()).is_some());
    assert_eq!(
        by_token(&app, &secrets, secrets.binding()).map(|a| a.id),
        Some(id)
    );
}

#[test]
fn peeking_consumes_nothing_and_shows_only_the_address() {
    let (app, _clock) = app(&[]);
    let (secrets, id) = create(&app);
    for _ in 0..3 {
        let preview = peek(&app, secrets.token()).expect("live link");
        assert_eq!(preview.email, EMAIL);
        assert_eq!(preview.purpose, Purpose::Login);
    }
    assert_eq!(column(&app, &id, "consumed_at"), "");
    assert!(peek(&app, "not-a-token").is_none());
    assert!(peek(&app, "").is_none());
    assert!(by_token(&app, &secrets, secrets.binding()).is_some());
}

#[test]
fn a_link_expires_after_the_ttl() {
    let (app, clock) = app(&[("MAGIC_LINK_TTL", "600")]);
    let (early, _) = create(&app);
    let (late, late_id) = create(&app);
    clock.advance(599);
    assert!(
        by_token(&app, &early, early.binding()).is_some(),
        "still live at ttl - 1"
    );
    clock.advance(1);
    assert!(peek(&app, late.token()).is_none(), "expired at exactly ttl");
    assert!(by_token(&app, &late, late.binding()).is_none());
    assert_eq!(
        by_code(&app, late.code(), late.binding()),
        CodeOutcome::NoLiveAttempt
    );
    assert_eq!(column(&app, &late_id, "consumed_at"), "");
}

#[test]
fn a_code_expires_after_the_ttl() {
    let (app, clock) = app(&[("MAGIC_LINK_TTL", "300")]);
    let (early, _) = create(&app);
    let (late, _) = create(&app);
    clock.advance(299);
    assert!(matches!(
        by_code(&app, early.code(), early.binding()),
        CodeOutcome::Consumed(_)
    ));
    clock.advance(1);
    assert_eq!(
        by_code(&app, late.code(), late.binding()),
        CodeOutcome::NoLiveAttempt
    );
}

#[test]
fn a_right_code_works_once() {
    let (app, _clock) = app(&[]);
    let (secrets, id) = create(&app);
    match by_code(&app, secrets.code(), secrets.binding()) {
        CodeOutcome::Consumed(attempt) => assert_eq!(attempt.id, id),
        other => panic!("right code refused: {other:?}"),
    }
    assert_eq!(
        by_code(&app, secrets.code(), secrets.binding()),
        CodeOutcome::NoLiveAttempt
    );
    assert!(by_token(&app, &secrets, secrets.binding()).is_none());
}

#[test]
fn a_code_needs_the_binding_and_the_address() {
    let (app, _clock) = app(&[]);
    let (secrets, id) = create(&app);
    let (other, other_id) = block_on(magic_links::create_attempt(
        &app,
        &login_attempt("bob@example.test"),
    ))
    .unwrap();
    // Another address's binding, or none: nothing matches, and nothing is counted, so a client
    // without the binding cannot lock the user out.
    assert_eq!(
        by_code(&app, secrets.code(), other.binding()),
        CodeOutcome::NoLiveAttempt
    );
    assert_eq!(
        by_code(&app, secrets.code(), ""),
        CodeOutcome::NoLiveAttempt
    );
    assert_eq!(
        block_on(magic_links::consume_by_code(
            &app,
            "eve@example.test",
            secrets.code(),
            secrets.binding()
        ))
        .unwrap(),
        CodeOutcome::NoLiveAttempt
    );
    assert_eq!(column(&app, &id, "code_failures"), "0");
    assert_eq!(column(&app, &other_id, "code_failures"), "0");
    assert_eq!(column(&app, &id, "consumed_at"), "");
    assert!(matches!(
        by_code(&app, secrets.code(), secrets.binding()),
        CodeOutcome::Consumed(_)
    ));
}

#[test]
fn four_wrong_codes_leave_the_attempt_usable() {
    let (app, _clock) = app(&[]);
    let (secrets, _) = create(&app);
    let wrong = other_code(secrets.code());
    for left in (1..MAX_CODE_FAILURES).rev() {
        assert_eq!(
            by_code(&app, &wrong, secrets.binding()),
            CodeOutcome::WrongCode {
                failures_left: left
            }
        );
    }
    assert!(matches!(
        by_code(&app, secrets.code(), secrets.binding()),
        CodeOutcome::Consumed(_)
    ));
}

#[test]
fn five_wrong_codes_end_the_attempt_for_code_and_link() {
    let (app, _clock) = app(&[]);
    let (secrets, id) = create(&app);
    let wrong = other_code(secrets.code());
    // Malformed input counts like any wrong code.
    let guesses = [wrong.as_str(), "12345", "abcdef", "", "1234567"];
    for (i, guess) in guesses.iter().enumerate() {
        assert_eq!(
            by_code(&app, guess, secrets.binding()),
            CodeOutcome::WrongCode {
                failures_left: MAX_CODE_FAILURES - 1 - i as i64
            },
            "guess {guess:?}"
        );
    }
    assert_eq!(column(&app, &id, "code_failures"), "5");
    assert_eq!(
        by_code(&app, secrets.code(), secrets.binding()),
        CodeOutcome::NoLiveAttempt
    );
    assert!(by_token(&app, &secrets, secrets.binding()).is_none());
    assert!(peek(&app, secrets.token()).is_none());
    // Further guesses are not counted past the limit.
    assert_eq!(
        by_code(&app, &wrong, secrets.binding()),
        CodeOutcome::NoLiveAttempt
    );
    assert_eq!(column(&app, &id, "code_failures"), "5");
    assert_eq!(column(&app, &id, "consumed_at"), "");
}

#[test]
fn concurrent_link_consumption_consumes_once() {
    let (app, _clock) = app(&[]);
    let (secrets, _) = create(&app);
    app.db.interleave.set(true);
    let (a, b, c) = block_on(async {
        futures::join!(
            magic_links::consume_by_token(&app, secrets.token(), secrets.binding()),
            magic_links::consume_by_token(&app, secrets.token(), secrets.binding()),
            magic_links::consume_by_code(&app, EMAIL, secrets.code(), secrets.binding()),
        )
    });
    app.db.interleave.set(false);
    let winners = [a.unwrap().is_some(), b.unwrap().is_some()]
        .into_iter()
        .filter(|w| *w)
        .count()
        + usize::from(matches!(c.unwrap(), CodeOutcome::Consumed(_)));
    assert_eq!(winners, 1);
}

#[test]
fn concurrent_right_codes_consume_once() {
    let (app, _clock) = app(&[]);
    let (secrets, _) = create(&app);
    app.db.interleave.set(true);
    let (a, b) = block_on(async {
        futures::join!(
            magic_links::consume_by_code(&app, EMAIL, secrets.code(), secrets.binding()),
            magic_links::consume_by_code(&app, EMAIL, secrets.code(), secrets.binding()),
        )
    });
    app.db.interleave.set(false);
    let outcomes = [a.unwrap(), b.unwrap()];
    let consumed = outcomes
        .iter()
        .filter(|o| matches!(o, CodeOutcome::Consumed(_)))
        .count();
    assert_eq!(consumed, 1, "{outcomes:?}");
    assert!(outcomes.contains(&CodeOutcome::NoLiveAttempt));
}

#[test]
fn concurrent_wrong_codes_never_count_past_the_limit() {
    let (app, _clock) = app(&[]);
    let (secrets, id) = create(&app);
    let wrong = other_code(secrets.code());
    let guess = || magic_links::consume_by_code(&app, EMAIL, &wrong, secrets.binding());
    app.db.interleave.set(true);
    let results = block_on(async {
        let (a, b, c, d) = futures::join!(guess(), guess(), guess(), guess());
        let (e, f, g, h) = futures::join!(guess(), guess(), guess(), guess());
        [a, b, c, d, e, f, g, h]
    });
    app.db.interleave.set(false);
    let counted = results
        .into_iter()
        .filter(|r| matches!(r, Ok(CodeOutcome::WrongCode { .. })))
        .count();
    assert_eq!(counted, 5);
    assert_eq!(column(&app, &id, "code_failures"), "5");
}

#[test]
fn one_browser_can_hold_several_attempts_and_the_code_is_the_latest_ones() {
    let (app, clock) = app(&[]);
    let (first, first_id) = create(&app);
    clock.advance(30);
    let mut again = login_attempt(EMAIL);
    again.binding = Some(first.binding());
    let (second, second_id) = block_on(magic_links::create_attempt(&app, &again)).unwrap();
    assert_eq!(
        second.binding(),
        first.binding(),
        "the held binding is reused"
    );
    // The first mail's code is not the latest: it counts as a wrong code on the latest attempt
    // (unless the two codes happen to be equal, one chance in a million).
    if first.code() != second.code() {
        assert_eq!(
            by_code(&app, first.code(), first.binding()),
            CodeOutcome::WrongCode { failures_left: 4 }
        );
        assert_eq!(column(&app, &first_id, "code_failures"), "0");
    }
    assert!(matches!(
        by_code(&app, second.code(), second.binding()),
        CodeOutcome::Consumed(a) if a.id == second_id
    ));
    // The first link still works in the browser that holds the binding.
    assert_eq!(
        by_token(&app, &first, first.binding()).unwrap().id,
        first_id
    );
}

#[test]
fn a_planted_binding_of_the_wrong_shape_is_not_reused() {
    let (app, _clock) = app(&[]);
    let mut attempt = login_attempt(EMAIL);
    attempt.binding = Some("short");
    let (secrets, _) = block_on(magic_links::create_attempt(&app, &attempt)).unwrap();
    assert_ne!(secrets.binding(), "short");
    assert!(magic_links::is_binding_shaped(secrets.binding()));
}

#[test]
fn storage_failure_is_an_error_not_a_miss() {
    let (app, _clock) = app(&[]);
    let (secrets, _) = create(&app);
    app.db.fail.set(true);
    assert!(block_on(magic_links::consume_by_token(
        &app,
        secrets.token(),
        secrets.binding()
    ))
    .is_err());
    assert!(block_on(magic_links::peek_by_token(&app, secrets.token())).is_err());
    assert!(block_on(magic_links::consume_by_code(
        &app,
        EMAIL,
        secrets.code(),
        secrets.binding()
    ))
    .is_err());
    assert!(block_on(magic_links::create_attempt(&app, &login_attempt(EMAIL))).is_err());
}

#[test]
fn the_code_is_always_six_digits() {
    let (app, _clock) = app(&[]);
    for _ in 0..300 {
        let (secrets, _) = create(&app);
        let code = secrets.code();
        assert_eq!(code.len(), 6, "{code}");
        assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    }
}

/// Hands out scripted bytes.
struct Scripted(RefCell<Vec<u8>>);

impl Random for Scripted {
    fn fill(&self, buf: &mut [u8]) -> Result<(), BackendError> {
        let mut bytes = self.0.borrow_mut();
        if bytes.len() < buf.len() {
            return Err(BackendError::Random("script exhausted".into()));
        }
        let rest = bytes.split_off(buf.len());
        buf.copy_from_slice(&bytes);
        *bytes = rest;
        Ok(())
    }
}

#[test]
fn codes_are_drawn_without_modulo_bias() {
    // 0x00000000 -> 000000, and leading zeros are kept.
    let zero = Scripted(RefCell::new(vec![0, 0, 0, 0]));
    assert_eq!(magic_links::generate_code(&zero).unwrap(), "000000");
    // 4_293_999_999 is the last value below the rejection limit: it maps to 999999.
    let top = Scripted(RefCell::new(4_293_999_999u32.to_be_bytes().to_vec()));
    assert_eq!(magic_links::generate_code(&top).unwrap(), "999999");
    // Values at or above 4_294_000_000 would make 000000-967295 likelier: they are drawn again.
    let mut script = 4_294_000_000u32.to_be_bytes().to_vec();
    script.extend(u32::MAX.to_be_bytes());
    script.extend(42u32.to_be_bytes());
    let redraw = Scripted(RefCell::new(script));
    assert_eq!(magic_links::generate_code(&redraw).unwrap(), "000042");
    // A source that only ever yields rejected values fails closed instead of looping.
    let stuck = Scripted(RefCell::new(vec![0xff; 4 * 64]));
    assert!(magic_links::generate_code(&stuck).is_err());
}

fn allowed(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|e| (*e).to_owned()).collect()
}

#[test]
fn redirects_outside_the_allow_list_are_refused() {
    let list = allowed(&["https://app.example/dash", "http://localhost:8787"]);
    let refused: &[(&str, RedirectError)] = &[
        ("https://evil.example", RedirectError::NotAllowed),
        ("https://evil.example/dash", RedirectError::NotAllowed),
        ("//evil.example", RedirectError::NotAbsolute),
        ("//evil.example/dash", RedirectError::NotAbsolute),
        ("/\\evil.example", RedirectError::ForbiddenCharacter),
        (
            "https://app.example\\@evil.example/dash",
            RedirectError::ForbiddenCharacter,
        ),
        (
            "https:\\\\app.example/dash",
            RedirectError::ForbiddenCharacter,
        ),
        (
            "https://app.example.evil.example/dash",
            RedirectError::NotAllowed,
        ),
        ("https://evilapp.example/dash", RedirectError::NotAllowed),
        ("javascript:alert(1)", RedirectError::UnsupportedScheme),
        (
            "JavaScript://app.example/dash",
            RedirectError::UnsupportedScheme,
        ),
        ("data:text/html,hi", RedirectError::UnsupportedScheme),
        ("ftp://app.example/dash", RedirectError::UnsupportedScheme),
        ("https://app.example@evil.example", RedirectError::Userinfo),
        (
            "https://app.example@evil.example/dash",
            RedirectError::Userinfo,
        ),
        ("https://user:pw@app.example/dash", RedirectError::Userinfo),
        ("https://app.example:8443/dash", RedirectError::NotAllowed),
        ("http://app.example/dash", RedirectError::NotAllowed),
        ("https://app.example:80/dash", RedirectError::NotAllowed),
        ("http://localhost/", RedirectError::NotAllowed),
        ("https://app.example/dashboard", RedirectError::NotAllowed),
        ("https://app.example/", RedirectError::NotAllowed),
        ("https://app.example", RedirectError::NotAllowed),
        ("https://app.example/Dash", RedirectError::NotAllowed),
        (
            "https://app.example/dash/../admin",
            RedirectError::DotSegment,
        ),
        ("https://app.example/dash/..", RedirectError::DotSegment),
        ("https://app.example/dash/./x", RedirectError::DotSegment),
        (
            "https://app.example/dash/%2e%2e/admin",
            RedirectError::EncodedSeparator,
        ),
        (
            "https://app.example/dash/%2E%2E/admin",
            RedirectError::EncodedSeparator,
        ),
        (
            "https://app.example/dash%2F..%2Fadmin",
            RedirectError::EncodedSeparator,
        ),
        (
            "https://app.example/dash%2fx",
            RedirectError::EncodedSeparator,
        ),
        (
            "https://app.example/dash%5c..",
            RedirectError::EncodedSeparator,
        ),
        (
            "https://app.example/dash//evil.example",
            RedirectError::EmptySegment,
        ),
        (
            "https://app.example/dash/%zz",
            RedirectError::BadPercentEncoding,
        ),
        (
            "https://app.example/dash/%2",
            RedirectError::BadPercentEncoding,
        ),
        (
            "https://app.example/dash x",
            RedirectError::ForbiddenCharacter,
        ),
        (
            "https://app.example/dash\tx",
            RedirectError::ForbiddenCharacter,
        ),
        (
            "https://app.example/dash\r\nSet-Cookie:x",
            RedirectError::ForbiddenCharacter,
        ),
        (
            " https://app.example/dash",
            RedirectError::ForbiddenCharacter,
        ),
        (
            "https://app.example/dash\0",
            RedirectError::ForbiddenCharacter,
        ),
        (
            "https://app.example/dash\u{7f}",
            RedirectError::ForbiddenCharacter,
        ),
        (
            "https://аpp.example/dash",
            RedirectError::ForbiddenCharacter,
        ),
        (
            "https://app.example/dash/<script>",
            RedirectError::ForbiddenCharacter,
        ),
        ("https:/app.example/dash", RedirectError::NotAbsolute),
        ("https:app.example/dash", RedirectError::NotAbsolute),
        ("app.example/dash", RedirectError::NotAbsolute),
        ("/dash", RedirectError::NotAbsolute),
        ("", RedirectError::NotAbsolute),
        ("https:///dash", RedirectError::InvalidHost),
        ("https://app..example/dash", RedirectError::InvalidHost),
        ("https://app.example./dash", RedirectError::InvalidHost),
        ("https://app%2eexample/dash", RedirectError::InvalidHost),
        ("https://[::1]/dash", RedirectError::InvalidHost),
        ("https://app_x.example/dash", RedirectError::InvalidHost),
        ("https://app.example:/dash", RedirectError::InvalidPort),
        ("https://app.example:0/dash", RedirectError::InvalidPort),
        ("https://app.example:65536/dash", RedirectError::InvalidPort),
        (
            "https://app.example:443:443/dash",
            RedirectError::InvalidPort,
        ),
        ("https://app.example:+443/dash", RedirectError::InvalidPort),
    ];
    for (candidate, expected) in refused {
        assert_eq!(
            check_redirect(candidate, &list),
            Err(*expected),
            "{candidate:?}"
        );
    }
    let long = format!("https://app.example/dash/{}", "a".repeat(3000));
    assert_eq!(check_redirect(&long, &list), Err(RedirectError::TooLong));
    // An empty allow-list admits nothing.
    assert_eq!(
        check_redirect("https://app.example/dash", &[]),
        Err(RedirectError::NotAllowed)
    );
}

#[test]
fn redirects_inside_the_allow_list_are_accepted_in_canonical_form() {
    let list = allowed(&[
        "https://app.example/dash",
        "http://localhost:8787",
        "https://docs.example/guide/",
        "https://other.example:8443/",
    ]);
    let accepted: &[(&str, &str)] = &[
        ("https://app.example/dash", "https://app.example/dash"),
        ("HTTPS://APP.EXAMPLE/dash", "https://app.example/dash"),
        ("https://app.example:443/dash", "https://app.example/dash"),
        ("https://app.example/dash/", "https://app.example/dash/"),
        (
            "https://app.example/dash/x/y",
            "https://app.example/dash/x/y",
        ),
        (
            "https://app.example/dash?tab=1&next=%2Fx",
            "https://app.example/dash?tab=1&next=%2Fx",
        ),
        (
            "https://app.example/dash#top",
            "https://app.example/dash#top",
        ),
        (
            "https://app.example/dash/caf%C3%A9",
            "https://app.example/dash/caf%C3%A9",
        ),
        ("http://localhost:8787", "http://localhost:8787/"),
        (
            "http://LocalHost:8787/anything",
            "http://localhost:8787/anything",
        ),
        (
            "https://docs.example/guide/intro",
            "https://docs.example/guide/intro",
        ),
        (
            "https://other.example:8443/x",
            "https://other.example:8443/x",
        ),
    ];
    for (candidate, canonical) in accepted {
        assert_eq!(
            check_redirect(candidate, &list).as_deref(),
            Ok(*canonical),
            "{candidate:?}"
        );
    }
    // An entry with a trailing slash does not admit the bare directory.
    assert_eq!(
        check_redirect("https://docs.example/guide", &list),
        Err(RedirectError::NotAllowed)
    );
    // An entry with an explicit default port is the same as one without.
    let explicit = allowed(&["https://app.example:443/dash"]);
    assert!(check_redirect("https://app.example/dash", &explicit).is_ok());
    // A malformed or over-specific entry matches nothing rather than widening the list.
    let broken = allowed(&[
        "https://app.example/dash?x=1",
        "app.example",
        "https://a@app.example",
    ]);
    for candidate in [
        "https://app.example/dash?x=1",
        "https://app.example/dash",
        "https://app.example/",
    ] {
        assert_eq!(
            check_redirect(candidate, &broken),
            Err(RedirectError::NotAllowed),
            "{candidate:?}"
        );
    }
}
