//! The HTTP contract at the host level: bootstrap, cookie sessions and their attributes, the CSRF
//! rule, API keys on person-only routes, input errors and the route table.

mod common;

use common::*;
use edgeauth::http::{HttpRequest, Method};
use edgeauth::routes::{resolve, Credential, RouteId, RouteMatch};
use serde_json::json;

fn get(path: &str) -> HttpRequest {
    HttpRequest::new(Method::Get, path)
}

#[test]
fn bootstrap_works_once_and_every_refusal_is_the_same_401() {
    let (app, _clock) = app(&[]);
    assert_eq!(
        send(&app, get("/v1/bootstrap")).json_value(),
        json!({ "bootstrap_available": true })
    );
    let wrong = send(
        &app,
        post(
            "/v1/bootstrap",
            json!({ "token": "wrong-token-wrong-token", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        ),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json_value(), auth_failure_body());

    for malformed in [
        json!({}),
        json!({ "token": 5 }),
        json!({ "email": ADMIN_EMAIL }),
    ] {
        let response = send(&app, post("/v1/bootstrap", malformed.clone()));
        assert_eq!(
            response.body, wrong.body,
            "{malformed}: any refusal is the same 401"
        );
    }
    let mut broken =
        HttpRequest::new(Method::Post, "/v1/bootstrap").header("content-type", "application/json");
    broken.body = b"{\"token\":".to_vec();
    assert_eq!(send(&app, broken).status, 401);
    // With the right token, field errors are explained.
    let bad_email = send(
        &app,
        post(
            "/v1/bootstrap",
            json!({ "token": BOOTSTRAP_TOKEN, "email": "nope", "password": ADMIN_PASSWORD }),
        ),
    );
    assert_eq!(bad_email.json_value()["error"]["field"], "email");

    let body = bootstrap(&app);
    assert_eq!(body["user"]["org_admin"], true);
    assert_eq!(body["user"]["email"], ADMIN_EMAIL);
    assert!(body["key"].as_str().unwrap().starts_with("ea_"));
    assert_eq!(
        body["api_key"]["prefix"].as_str().unwrap(),
        &body["key"].as_str().unwrap()[..11]
    );
    assert_eq!(
        send(&app, get("/v1/bootstrap")).json_value(),
        json!({ "bootstrap_available": false })
    );

    let again = send(
        &app,
        post(
            "/v1/bootstrap",
            json!({ "token": BOOTSTRAP_TOKEN, "email": "second@example.test", "password": ADMIN_PASSWORD }),
        ),
    );
    assert_eq!(again.status, 401);
    assert_eq!(again.body, wrong.body, "identical bytes for every refusal");
    let users = app.db.rows("SELECT COUNT(*) AS n FROM users", &[]);
    assert_eq!(users[0].int("n").unwrap(), 1);
    // The key is shown once: it is stored only as a hash.
    let dump = format!("{:?}", app.db.rows("SELECT * FROM api_keys", &[]));
    assert!(!dump.contains(body["key"].as_str().unwrap()));
}

#[test]
fn bootstrap_is_unavailable_without_a_configured_token() {
    let (mut app, _clock) = app(&[]);
    app.config.bootstrap_token = None;
    assert_eq!(
        send(&app, get("/v1/bootstrap")).json_value(),
        json!({ "bootstrap_available": false })
    );
    let response = send(
        &app,
        post(
            "/v1/bootstrap",
            json!({ "token": "", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        ),
    );
    assert_eq!(response.status, 401);
}

#[test]
fn cookie_login_sets_host_cookies_and_keeps_the_refresh_token_out_of_the_body() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let response = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        ),
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header_value("cache-control"), Some("no-store"));
    let body = response.json_value();
    assert!(body.get("refresh_token").is_none());
    let cookies = response.set_cookies();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("__Host-edgeauth-access="))
        .unwrap();
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("__Host-edgeauth-refresh="))
        .unwrap();
    for (cookie, same_site) in [(access, "SameSite=Lax"), (refresh, "SameSite=Strict")] {
        for attribute in ["HttpOnly", "Secure", "Path=/", same_site, "Max-Age="] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
    assert!(access.contains(body["access_token"].as_str().unwrap()));
}

#[test]
fn cookie_authenticated_state_changes_need_an_allowed_origin() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let response = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        ),
    );
    let cookie_header: String = response
        .set_cookies()
        .iter()
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let with_cookies = |req: HttpRequest| req.header("cookie", &cookie_header);

    for origin in [None, Some("https://evil.example")] {
        let mut req = with_cookies(HttpRequest::new(Method::Post, "/v1/auth/refresh"));
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let response = send(&app, req);
        assert_eq!(response.status, 403, "origin {origin:?}");
        assert_eq!(response.json_value()["error"]["code"], "csrf");
        let mut req = with_cookies(HttpRequest::new(Method::Post, "/v1/auth/logout-all"));
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        assert_eq!(send(&app, req).json_value()["error"]["code"], "csrf");
    }
    // Reads need no Origin.
    assert_eq!(send(&app, with_cookies(get("/v1/me"))).status, 200);
    // With the allowed Origin the refresh goes through and rotates the cookie.
    let response = send(
        &app,
        with_cookies(HttpRequest::new(Method::Post, "/v1/auth/refresh"))
            .header("origin", PUBLIC_URL),
    );
    assert_eq!(response.status, 200);
    assert!(response
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("__Host-edgeauth-refresh=")));
    // A foreign page cannot log a browser in either.
    let response = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
        )
        .header("origin", "https://evil.example"),
    );
    assert_eq!(response.json_value()["error"]["code"], "csrf");
}

#[test]
fn api_keys_cannot_use_routes_that_belong_to_a_session() {
    let (app, _clock) = app(&[]);
    let key = text(&bootstrap(&app), "key");
    let auth = format!("Bearer {key}");
    let me = send(&app, get("/v1/me").header("authorization", &auth));
    assert_eq!(me.status, 200);
    assert!(me.json_value()["api_key_id"].is_string());
    assert!(me.json_value().get("session_id").is_none());
    for id in RouteId::ALL {
        let spec = id.spec();
        if !matches!(
            spec.credential,
            Credential::Session | Credential::SessionOrRefresh
        ) {
            continue;
        }
        let path = spec
            .pattern
            .replace("{id}", "00000000-0000-0000-0000-000000000000");
        let mut req = HttpRequest::new(spec.method, &path).header("authorization", &auth);
        if spec.method == Method::Post {
            req = req.json(&json!({}));
        }
        let response = send(&app, req);
        assert_eq!(response.status, 403, "{id:?}");
        assert_eq!(response.json_value()["error"]["code"], "forbidden");
    }
    let verify = send(&app, post("/v1/verify", json!({ "token": key })));
    assert_eq!(verify.json_value()["active"], true);
    assert_eq!(verify.json_value()["kind"], "api_key");
    let bogus = send(
        &app,
        get("/v1/me").header("authorization", "Bearer ea_not-a-real-key"),
    );
    assert_eq!(bogus.json_value(), auth_failure_body());
}

#[test]
fn password_change_signs_out_other_sessions_by_default() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let this = login_token_mode(&app);
    let other = login_token_mode(&app);
    let auth = format!("Bearer {}", this["access_token"].as_str().unwrap());
    let short = send(
        &app,
        post(
            "/v1/auth/password",
            json!({ "current_password": ADMIN_PASSWORD, "new_password": "short" }),
        )
        .header("authorization", &auth),
    );
    assert_eq!(short.status, 400);
    assert_eq!(short.json_value()["error"]["field"], "new_password");
    let wrong = send(
        &app,
        post("/v1/auth/password", json!({ "current_password": "not it at all", "new_password": "a brand new passphrase" }))
            .header("authorization", &auth),
    );
    assert_eq!(wrong.json_value(), auth_failure_body());
    let ok = send(
        &app,
        post(
            "/v1/auth/password",
            json!({ "current_password": ADMIN_PASSWORD, "new_password": "a brand new passphrase" }),
        )
        .header("authorization", &auth),
    );
    assert_eq!(ok.status, 204);
    assert!(is_active(&app, this["access_token"].as_str().unwrap()));
    assert!(!is_active(&app, other["access_token"].as_str().unwrap()));
    assert_eq!(
        refresh(&app, other["refresh_token"].as_str().unwrap()).status,
        401
    );
    assert_eq!(
        refresh(&app, this["refresh_token"].as_str().unwrap()).status,
        200
    );
    let old = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "session": "token" }),
        ),
    );
    assert_eq!(old.status, 401);
    let new = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": "a brand new passphrase", "session": "token" }),
        ),
    );
    assert_eq!(new.status, 200);
}

#[test]
fn malformed_input_gets_a_clear_4xx_and_changes_nothing() {
    let (app, _clock) = app(&[]);
    let mut bad_json =
        HttpRequest::new(Method::Post, "/v1/auth/login").header("content-type", "application/json");
    bad_json.body = b"{\"email\":".to_vec();
    assert_eq!(
        send(&app, bad_json).json_value()["error"]["code"],
        "invalid_request"
    );

    let mut form =
        HttpRequest::new(Method::Post, "/v1/auth/login").header("content-type", "text/plain");
    form.body = b"email=a".to_vec();
    assert_eq!(send(&app, form).status, 415);

    let mut big =
        HttpRequest::new(Method::Post, "/v1/verify").header("content-type", "application/json");
    big.body = vec![b' '; 64 * 1024 + 1];
    assert_eq!(send(&app, big).status, 413);

    let missing = send(
        &app,
        post("/v1/auth/login", json!({ "email": ADMIN_EMAIL })),
    );
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json_value()["error"]["field"], "password");
    let wrong_type = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": 5 }),
        ),
    );
    assert_eq!(wrong_type.json_value()["error"]["field"], "password");
    let unknown = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": "x", "org_admin": true }),
        ),
    );
    assert_eq!(unknown.json_value()["error"]["field"], "org_admin");
    let bad_mode = send(
        &app,
        post(
            "/v1/auth/login",
            json!({ "email": ADMIN_EMAIL, "password": "x", "session": "both" }),
        ),
    );
    assert_eq!(bad_mode.json_value()["error"]["field"], "session");

    assert_eq!(send(&app, get("/nope")).status, 404);
    let wrong_method = send(&app, get("/v1/auth/login"));
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header_value("allow"), Some("POST"));
    let sessions = app.db.rows("SELECT COUNT(*) AS n FROM sessions", &[]);
    assert_eq!(sessions[0].int("n").unwrap(), 0);
}

#[test]
fn the_route_table_declares_each_route_once_and_resolves_to_it() {
    for (i, id) in RouteId::ALL.iter().enumerate() {
        let spec = id.spec();
        for other in &RouteId::ALL[i + 1..] {
            assert_ne!(id, other);
            assert!(
                !(other.spec().pattern == spec.pattern && other.spec().method == spec.method),
                "{id:?} twice"
            );
        }
        // Every `{param}` gets a value; the matcher must hand them back in order.
        let mut params = Vec::new();
        let path: Vec<String> = spec
            .pattern
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    params.push(format!("p{}", params.len()));
                    params.last().unwrap().clone()
                } else {
                    segment.to_owned()
                }
            })
            .collect();
        assert_eq!(
            resolve(spec.method, &path.join("/")),
            RouteMatch::Found(*id, params)
        );
    }
    assert_eq!(
        resolve(Method::Head, "/health"),
        RouteMatch::Found(RouteId::Health, vec![])
    );
    assert_eq!(
        resolve(Method::Get, "/v1/auth/sessions/"),
        RouteMatch::NotFound
    );
}

#[test]
fn jwks_and_discovery_publish_only_public_material() {
    let (app, _clock) = app(&[]);
    let jwks = send(&app, get("/.well-known/jwks.json"));
    assert_eq!(jwks.status, 200);
    let keys = jwks.json_value()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut members: Vec<_> = key.keys().cloned().collect();
    members.sort();
    assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x"]);
    assert!(jwks
        .header_value("cache-control")
        .unwrap()
        .starts_with("public"));
    let discovery = send(&app, get("/.well-known/openid-configuration")).json_value();
    assert_eq!(discovery["issuer"], PUBLIC_URL);
    assert_eq!(
        discovery["jwks_uri"],
        format!("{PUBLIC_URL}/.well-known/jwks.json")
    );
}

#[test]
fn missing_or_weak_secrets_are_configuration_errors_not_defaults() {
    use edgeauth::config::{Config, ConfigError};
    let base = |name: &str| match name {
        "PUBLIC_URL" => Some(PUBLIC_URL.to_owned()),
        _ => None,
    };
    assert_eq!(
        Config::from_lookup(base).unwrap_err(),
        ConfigError::Missing {
            name: "SIGNING_SECRET"
        }
    );
    let weak = Config::from_lookup(|n| {
        if n == "SIGNING_SECRET" {
            Some("short".into())
        } else {
            base(n)
        }
    });
    assert!(matches!(
        weak,
        Err(ConfigError::Invalid {
            name: "SIGNING_SECRET",
            ..
        })
    ));
    let bad_number = Config::from_lookup(|n| match n {
        "SIGNING_SECRET" => Some(SIGNING_SECRET.into()),
        "ACCESS_TOKEN_TTL" => Some("ten minutes".into()),
        _ => base(n),
    });
    assert!(matches!(
        bad_number,
        Err(ConfigError::Invalid {
            name: "ACCESS_TOKEN_TTL",
            ..
        })
    ));
    // The error text never carries a secret's value.
    assert!(!format!("{weak:?}").contains("short"));
}

#[test]
fn a_redirect_allow_list_entry_that_does_not_parse_is_a_configuration_error() {
    use edgeauth::config::{Config, ConfigError};
    let with_redirects = |list: &'static str| {
        Config::from_lookup(move |n| match n {
            "PUBLIC_URL" => Some(PUBLIC_URL.to_owned()),
            "SIGNING_SECRET" => Some(SIGNING_SECRET.to_owned()),
            "ALLOWED_REDIRECTS" => Some(list.to_owned()),
            _ => None,
        })
    };
    for bad in [
        "app.example/dash",
        "https://app.example/dash?x=1",
        "https://app.example/a/../b",
        "javascript:alert(1)",
        "https://good.example, https://user@evil.example/",
    ] {
        assert!(
            matches!(
                with_redirects(bad),
                Err(ConfigError::Invalid {
                    name: "ALLOWED_REDIRECTS",
                    ..
                })
            ),
            "{bad} accepted"
        );
    }
    let good = with_redirects("https://app.example/dash, http://localhost:8080/").unwrap();
    assert_eq!(
        good.allowed_redirects,
        vec!["https://app.example/dash", "http://localhost:8080/"]
    );
}
