//! Password hashing: RFC 7914 vectors, PHC records, constant cost for unknown users, policy, and
//! the upgrade of old hashes at login.

mod common;

use common::*;
use edgeauth::config::Config;
use edgeauth::passwords::{self, StoredHash};
use edgeauth::store::SqlValue;
use pbkdf2::phc::PasswordHash;
use serde_json::json;

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 7914 section 11, PBKDF2-HMAC-SHA256 (P="Password", S="NaCl", c=80000, dkLen=64), on the
/// primitive our records use.
#[test]
fn the_primitive_matches_the_rfc_7914_vector() {
    let mut out = [0u8; 64];
    edgeauth_pbkdf2::derive(b"Password", b"NaCl", 80_000, &mut out);
    assert_eq!(
        out.to_vec(),
        hex_decode(
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
             a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
        )
    );
}

/// The PHC record (whose salt must be at least 8 bytes, unlike RFC 7914's "NaCl") against an
/// independent implementation: Python's `hashlib.pbkdf2_hmac("sha256", b"Password",
/// b"saltSALTsaltSALT", 80000, 32)`.
#[test]
fn phc_records_match_an_independent_implementation() {
    let phc = passwords::hash("Password", b"saltSALTsaltSALT", 80_000).unwrap();
    assert!(phc.starts_with("$pbkdf2-sha256$i=80000,l=32$"), "{phc}");
    let record = PasswordHash::new(&phc).unwrap();
    assert_eq!(record.salt.unwrap().as_ref(), b"saltSALTsaltSALT");
    assert_eq!(
        record.hash.unwrap().as_ref(),
        hex_decode("e4c92d5bbc4a9af2d539bb1e39b7e554a6a5f6da3bb5cf4b281b2c93becbf94b").as_slice()
    );
    let stored = StoredHash::parse(&phc).unwrap();
    assert_eq!(stored.iterations(), 80_000);
    assert!(stored.verify("Password"));
    assert!(!stored.verify("password"));
    assert!(!stored.verify("Password "));
}

/// RFC 7914's first vector (c=1) is below the crate's minimum cost, so check the primitive we use.
#[test]
fn the_primitive_matches_the_rfc_7914_single_iteration_vector() {
    let mut out = [0u8; 64];
    edgeauth_pbkdf2::derive(b"passwd", b"salt", 1, &mut out);
    assert_eq!(
        out.to_vec(),
        hex_decode(
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        )
    );
}

#[test]
fn the_default_cost_is_owasp_600k() {
    let config = Config::from_lookup(|name| match name {
        "PUBLIC_URL" => Some(PUBLIC_URL.into()),
        "SIGNING_SECRET" => Some(SIGNING_SECRET.into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(config.pbkdf2_iterations, 600_000);
}

#[test]
fn a_login_upgrades_a_hash_made_at_a_lower_cost() {
    let (mut app, _clock) = app(&[("PBKDF2_ITERATIONS", "1000")]);
    let user_id = bootstrap(&app)["user"]["id"].as_str().unwrap().to_owned();
    let stored = |app: &TestApp| {
        app.db
            .rows(
                "SELECT phc FROM password_credentials WHERE user_id = ?1",
                &[SqlValue::from(user_id.as_str())],
            )
            .remove(0)
            .text("phc")
            .unwrap()
    };
    assert!(stored(&app).starts_with("$pbkdf2-sha256$i=1000,"));
    app.config.pbkdf2_iterations = 2000;
    login_token_mode(&app);
    let upgraded = stored(&app);
    assert!(upgraded.starts_with("$pbkdf2-sha256$i=2000,"), "{upgraded}");
    assert!(StoredHash::parse(&upgraded).unwrap().verify(ADMIN_PASSWORD));
    // And the upgraded record still logs in.
    login_token_mode(&app);
}

#[test]
fn the_policy_is_8_characters_to_1024_bytes_with_no_composition_rules() {
    assert!(passwords::check_policy("1234567", "p").is_err());
    assert!(passwords::check_policy("12345679x", "p").is_ok());
    assert!(
        passwords::check_policy("ééééééé", "p").is_err(),
        "7 characters, 14 bytes"
    );
    assert!(
        passwords::check_policy("éééééééé", "p").is_ok(),
        "8 characters"
    );
    assert!(
        passwords::check_policy(&"é".repeat(512), "p").is_ok(),
        "1024 bytes"
    );
    assert!(
        passwords::check_policy(&"é".repeat(513), "p").is_err(),
        "1026 bytes"
    );
    assert!(
        passwords::check_policy("qqqqqqqq", "p").is_ok(),
        "no composition rules"
    );
}

/// The shipped list, as the file has it (build.rs embeds only the entries of 8 characters or more).
fn top_10000() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/common-passwords.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip_while(|line| line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_one_of_the_top_10000_is_refused() {
    let list = top_10000();
    assert_eq!(list.len(), 10_000);
    let mut refused_as_common = 0;
    for word in &list {
        let err = passwords::check_policy(word, "password")
            .expect_err(word)
            .to_response();
        assert_eq!(err.status, 400, "{word}");
        assert_eq!(err.json_value()["error"]["field"], "password", "{word}");
        if word.chars().count() >= passwords::MIN_PASSWORD_CHARS {
            assert!(passwords::is_common(word), "{word}");
            refused_as_common += 1;
        }
    }
    // The length rule takes the rest; this many reach the list itself.
    assert_eq!(refused_as_common, 3395);
    // Case does not make one uncommon; a character more does.
    for word in ["Password", "PASSWORD1", "iLoveYou1", "Football1"] {
        assert!(passwords::is_common(word), "{word}");
        let message = passwords::check_policy(word, "password")
            .unwrap_err()
            .to_response()
            .json_value()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains("common"), "{message}");
    }
    for word in ["password!", "passw0rd-x", "fóotball1", "qqqqqqqq"] {
        assert!(!passwords::is_common(word), "{word}");
    }
}

#[test]
fn a_common_password_changes_nothing_on_any_route_that_sets_one() {
    let (app, _clock) = app(&[("ALLOW_SIGNUP", "true")]);
    let key = text(&bootstrap(&app), "key");
    let access = text(&login_token_mode(&app), "access_token");
    let before = app.db.rows("SELECT COUNT(*) AS n FROM users", &[])[0]
        .int("n")
        .unwrap();
    let attempts = [
        (
            post(
                "/v1/users",
                json!({ "email": "new@example.test", "name": "New", "password": "Password1" }),
            ),
            Some(&key),
            "password",
        ),
        (
            post(
                "/v1/auth/register",
                json!({ "email": "signup@example.test", "password": "baseball", "session": "token" }),
            ),
            None,
            "password",
        ),
        (
            post(
                "/v1/auth/password",
                json!({ "current_password": ADMIN_PASSWORD, "new_password": "trustno1" }),
            ),
            Some(&access),
            "new_password",
        ),
    ];
    for (request, credential, field) in attempts {
        let request = match credential {
            Some(credential) => with_bearer(request, credential),
            None => request,
        };
        let response = send(&app, request);
        assert_eq!(response.status, 400, "{:?}", response.json_value());
        assert_eq!(response.json_value()["error"]["field"], field);
    }
    let after = app.db.rows("SELECT COUNT(*) AS n FROM users", &[])[0]
        .int("n")
        .unwrap();
    assert_eq!(after, before, "no user was created");
    // The admin's password is unchanged.
    assert!(!text(&login_token_mode(&app), "access_token").is_empty());
}

#[test]
fn any_unicode_up_to_1024_bytes_is_a_password_that_logs_in() {
    let (app, _clock) = app(&[]);
    let key = text(&bootstrap(&app), "key");
    // NUL, a tab, a right-to-left override, a combining accent, CJK and an emoji: all allowed.
    let mut password = String::from("p\u{0}\tä\u{202e}e\u{301}密码🔑");
    while password.len() < passwords::MAX_PASSWORD_BYTES {
        password.push(if passwords::MAX_PASSWORD_BYTES - password.len() >= 4 {
            '🗝'
        } else {
            'x'
        });
    }
    assert_eq!(password.len(), 1024);
    let created = send(
        &app,
        with_bearer(
            post(
                "/v1/users",
                json!({ "email": "uni@example.test", "name": "Uni", "password": password }),
            ),
            &key,
        ),
    );
    assert_eq!(created.status, 201, "{:?}", created.json_value());
    let login = |password: &str| {
        send(
            &app,
            post(
                "/v1/auth/login",
                json!({ "email": "uni@example.test", "password": password, "session": "token" }),
            ),
        )
        .status
    };
    assert_eq!(login(&password), 200);
    // Exactly as received: the precomposed é is another password.
    assert_eq!(login(&password.replacen("e\u{301}", "é", 1)), 401);
    let too_long = format!("{password}x");
    let refused = send(
        &app,
        with_bearer(
            post(
                "/v1/users",
                json!({ "email": "long@example.test", "name": "Long", "password": too_long }),
            ),
            &key,
        ),
    );
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json_value()["error"]["field"], "password");
}

#[test]
fn unknown_users_and_wrong_passwords_get_the_identical_failure() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let attempts = [
        json!({ "email": "nobody@example.test", "password": ADMIN_PASSWORD, "session": "token" }),
        json!({ "email": ADMIN_EMAIL, "password": "wrong password", "session": "token" }),
        json!({ "email": ADMIN_EMAIL, "password": "x".repeat(2000), "session": "token" }),
        json!({ "username": "admin", "password": ADMIN_PASSWORD, "session": "token" }),
    ];
    for body in attempts {
        let response = send(&app, post("/v1/auth/login", body.clone()));
        assert_eq!(response.status, 401, "{body}");
        assert_eq!(response.json_value(), auth_failure_body());
    }
    let failures = app.db.rows(
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'login' AND outcome = 'failure'",
        &[],
    );
    assert_eq!(
        failures[0].int("n").unwrap(),
        4,
        "every failed login is audited"
    );
    let dump = format!("{:?}", app.db.rows("SELECT * FROM audit_events", &[]));
    assert!(
        !dump.contains("wrong password") && !dump.contains(ADMIN_PASSWORD),
        "no password in the audit log"
    );
}

#[test]
fn the_password_is_compared_exactly_as_received() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    for variant in [
        " correct horse battery staple",
        "Correct horse battery staple",
        "correct horse battery staple ",
    ] {
        let response = send(
            &app,
            post(
                "/v1/auth/login",
                json!({ "email": ADMIN_EMAIL, "password": variant, "session": "token" }),
            ),
        );
        assert_eq!(response.status, 401, "{variant:?}");
    }
    // The email, by contrast, is normalised.
    let response = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "email": " Admin@Example.TEST ", "password": ADMIN_PASSWORD, "session": "token" }),
        ),
    );
    assert_eq!(response.status, 200);
}

/// The embedded set (build.rs): sorted distinct values in range, one per listed password of 8+
/// characters, and found by `contains` exactly where its hash is in the set.
#[test]
fn the_common_set_is_exact_for_the_list_and_rarely_wrong_otherwise() {
    use edgeauth::common_passwords::{self as set, FALSE_POSITIVE_BITS, LISTED, RANGE, VALUES};

    let values: Vec<u64> = set::values().collect();
    assert_eq!(values.len(), VALUES);
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "sorted and distinct"
    );
    assert!(values.iter().all(|v| *v < RANGE));
    assert_eq!(LISTED, 3395);
    assert_eq!(RANGE, (LISTED as u64) << FALSE_POSITIVE_BITS);
    let members: std::collections::HashSet<u64> = values.iter().copied().collect();

    // Every listed entry hashes into the set (the whole-list test above checks `is_common` too).
    let listed: std::collections::HashSet<String> = top_10000()
        .iter()
        .filter(|w| w.chars().count() >= passwords::MIN_PASSWORD_CHARS)
        .map(|w| w.to_ascii_lowercase())
        .collect();
    assert_eq!(listed.len(), LISTED);
    for word in &listed {
        assert!(members.contains(&set::hash(word)), "{word}");
    }
    // The whole set is accounted for by the list: no stray values.
    let hashed: std::collections::HashSet<u64> = listed.iter().map(|w| set::hash(w)).collect();
    assert_eq!(hashed, members);

    // The false-positive rate is VALUES / RANGE, about 2^-20: over 1,000,000 unlisted candidates
    // expect ~1; more than 6 would mean a broken hash or range.
    let false_positives = (0..1_000_000u32)
        .map(|i| format!("not-on-the-list-{i}"))
        .filter(|c| members.contains(&set::hash(c)))
        .count();
    assert!(false_positives <= 6, "{false_positives} false positives");
    // `contains` answers exactly set membership, for listed and unlisted words alike.
    for word in listed.iter().take(300) {
        assert!(set::contains(word), "{word}");
    }
    for i in 0..3000u32 {
        let candidate = format!("unlisted {i}");
        assert_eq!(
            set::contains(&candidate),
            members.contains(&set::hash(&candidate)),
            "{candidate}"
        );
    }
}
