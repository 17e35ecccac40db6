//! Hostile input and HTTP hardening at the host level: CORS only for the configured origins (and
//! their preflights), `Cache-Control: no-store` on every credential-carrying response across the
//! route table, header-size limits, and oversized or malformed bodies on every body-taking route.

mod common;

use common::*;
use edgeauth::http::{
    check_header_sizes, HttpRequest, HttpResponse, Method, MAX_CREDENTIAL_HEADER_BYTES,
    MAX_HEADER_BYTES,
};
use edgeauth::routes::{Credential, RouteId};
use serde_json::json;

const APP_ORIGIN: &str = "https://app.example.test";
const EVIL_ORIGIN: &str = "https://evil.example";

/// An app whose allowed origins are the service's own and one web app.
fn cors_app() -> (TestApp, TestClock) {
    let origins = format!("{PUBLIC_URL}, {APP_ORIGIN}");
    app(&[("ALLOWED_ORIGINS", origins.as_str())])
}

/// `pattern` with every `{param}` replaced by `value`.
fn concrete(pattern: &str, value: &str) -> String {
    pattern
        .split('/')
        .map(|part| if part.starts_with('{') { value } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

fn cors_headers(response: &HttpResponse) -> Vec<(String, String)> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("access-control-"))
        .cloned()
        .collect()
}

fn preflight(path: &str, origin: &str, method: &str) -> HttpRequest {
    HttpRequest::new(Method::Options, path)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
}

#[test]
fn cors_answers_only_the_configured_origins_on_every_route() {
    let (app, _clock) = cors_app();
    let boot = bootstrap(&app);
    let key = text(&boot, "key");
    for id in RouteId::ALL {
        let spec = id.spec();
        let path = concrete(spec.pattern, "no-such-id");
        for origin in [None, Some(EVIL_ORIGIN), Some("null"), Some(APP_ORIGIN)] {
            let mut request = with_bearer(HttpRequest::new(spec.method, &path), &key);
            if let Some(origin) = origin {
                request = request
                    .header("origin", origin)
                    .header("sec-fetch-site", "same-origin");
            }
            if matches!(spec.method, Method::Post | Method::Put | Method::Patch) {
                request = request.json(&json!({}));
            }
            // Rotating keys or revoking the bootstrap key would change later cells: skip the
            // handlers that would, the CORS layer is the same for every response anyway.
            let response = if matches!(id, RouteId::RotateSigningKey) {
                send(
                    &app,
                    HttpRequest {
                        path: "/v1/nope".into(),
                        ..request
                    },
                )
            } else {
                send(&app, request)
            };
            let label = format!("{} {path} origin {origin:?}", spec.method.as_str());
            assert_eq!(response.header_value("vary"), Some("Origin"), "{label}");
            if origin == Some(APP_ORIGIN) {
                assert_eq!(
                    response.header_value("access-control-allow-origin"),
                    Some(APP_ORIGIN),
                    "{label}"
                );
                assert_eq!(
                    response.header_value("access-control-allow-credentials"),
                    Some("true"),
                    "{label}"
                );
            } else {
                assert_eq!(cors_headers(&response), vec![], "{label}: no CORS for it");
            }
        }
    }
}

#[test]
fn a_foreign_origin_is_never_reflected_nor_wildcarded() {
    let (app, _clock) = cors_app();
    bootstrap(&app);
    // Origins that only look like an allowed one.
    for origin in [
        "https://app.example.test.evil.example",
        "https://evil.example/https://app.example.test",
        "http://app.example.test",
        "https://APP.example.test",
        "https://app.example.test:443",
        "https://app.example.test/",
        "*",
        "",
    ] {
        for request in [
            HttpRequest::new(Method::Get, "/health"),
            post("/v1/verify", json!({ "token": "x" })),
            preflight("/v1/verify", origin, "POST"),
        ] {
            let response = send(&app, request.header("origin", origin));
            assert_eq!(cors_headers(&response), vec![], "origin {origin:?}");
            assert!(
                !response
                    .headers
                    .iter()
                    .any(|(_, v)| v == "*" || (!origin.is_empty() && v.contains(origin))),
                "origin {origin:?} echoed: {:?}",
                response.headers
            );
        }
    }
}

#[test]
fn preflights_are_204_for_allowed_origins_and_403_for_others() {
    let (app, _clock) = cors_app();
    let ok = send(&app, preflight("/v1/users/abc", APP_ORIGIN, "PATCH"));
    assert_eq!(ok.status, 204);
    assert!(ok.body.is_empty());
    assert_eq!(
        ok.header_value("access-control-allow-origin"),
        Some(APP_ORIGIN)
    );
    assert_eq!(
        ok.header_value("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        ok.header_value("access-control-allow-methods"),
        Some("GET, PATCH, DELETE, HEAD")
    );
    assert_eq!(
        ok.header_value("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(ok.header_value("access-control-max-age"), Some("600"));
    assert_eq!(ok.header_value("vary"), Some("Origin"));

    let foreign = send(&app, preflight("/v1/users/abc", EVIL_ORIGIN, "PATCH"));
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.json_value()["error"]["code"], "forbidden");
    assert_eq!(cors_headers(&foreign), vec![]);

    // A method the path does not take, and a path that does not exist: as for the real request.
    let wrong = send(&app, preflight("/v1/users/abc", APP_ORIGIN, "PUT"));
    assert_eq!(wrong.status, 405);
    assert_eq!(
        wrong.header_value("access-control-allow-methods"),
        None,
        "no methods granted"
    );
    assert_eq!(
        send(&app, preflight("/v1/nope", APP_ORIGIN, "GET")).status,
        404
    );
    assert_eq!(
        send(&app, preflight("/v1/verify", APP_ORIGIN, "TRACE")).status,
        405
    );
    // An OPTIONS that is not a preflight is an ordinary request: no route takes OPTIONS.
    let plain = send(&app, HttpRequest::new(Method::Options, "/v1/verify"));
    assert_eq!(plain.status, 405);
    assert_eq!(plain.header_value("allow"), Some("POST"));
}

#[test]
fn a_preflight_runs_no_handler() {
    let (app, _clock) = cors_app();
    bootstrap(&app);
    let login = login_token_mode(&app);
    let access = text(&login, "access_token");
    let request = with_bearer(
        preflight("/v1/auth/logout-all", APP_ORIGIN, "POST"),
        &access,
    );
    assert_eq!(send(&app, request).status, 204);
    assert!(is_active(&app, &access), "the preflight logged nobody out");
}

/// Every response of every route, walked as the org admin, carries `Cache-Control: no-store`,
/// except the public documents meant to be cached (JWKS, discovery, page assets), which carry no
/// credential.
#[test]
fn every_route_answers_no_store_except_the_public_cacheable_documents() {
    let (app, _clock) = app(&[]);
    let boot = bootstrap(&app);
    let key = text(&boot, "key");
    let login = login_token_mode(&app);
    let access = text(&login, "access_token");
    let cacheable = [RouteId::Jwks, RouteId::OpenIdConfiguration, RouteId::Asset];
    for id in RouteId::ALL {
        let spec = id.spec();
        let param = if id == RouteId::Asset {
            "app.js".to_owned()
        } else {
            "no-such-id".to_owned()
        };
        let path = concrete(spec.pattern, &param);
        let credential = if matches!(id, RouteId::LogoutAll | RouteId::Logout) {
            &access
        } else {
            &key
        };
        let mut request = with_bearer(HttpRequest::new(spec.method, &path), credential);
        if matches!(spec.method, Method::Post | Method::Put | Method::Patch) {
            let body = match id {
                RouteId::Login => {
                    json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "session": "token" })
                }
                RouteId::Verify => json!({ "token": access }),
                RouteId::CreateApiKey => json!({ "name": "cache check" }),
                _ => json!({}),
            };
            request = request.json(&body);
        }
        let response = send(&app, request);
        let cc = response.header_value("cache-control").unwrap_or_default();
        if cacheable.contains(&id) && response.status == 200 {
            assert!(!cc.contains("no-store"), "{id:?} should be cacheable: {cc}");
            let text = String::from_utf8_lossy(&response.body);
            assert!(
                !text.contains(&key) && !text.contains(&access),
                "{id:?} carries a credential"
            );
        } else {
            assert_eq!(cc, "no-store", "{id:?} -> {}", response.status);
        }
    }
}

#[test]
fn header_size_limits() {
    let header = |name: &str, len: usize| vec![(name.to_owned(), "a".repeat(len))];
    for name in ["cookie", "authorization"] {
        assert_eq!(
            check_header_sizes(&header(name, MAX_CREDENTIAL_HEADER_BYTES)),
            Ok(())
        );
        let refused = check_header_sizes(&header(name, MAX_CREDENTIAL_HEADER_BYTES + 1))
            .expect_err("over 8 KiB")
            .to_response();
        assert_eq!(refused.status, 400);
        assert_eq!(refused.json_value()["error"]["code"], "invalid_request");
        assert!(refused.json_value()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(name));
    }
    // Other headers may be larger one by one, but not beyond 32 KiB in all.
    assert_eq!(check_header_sizes(&header("x-big", 20 * 1024)), Ok(()));
    let many: Vec<(String, String)> = (0..5)
        .map(|i| (format!("x-h{i}"), "b".repeat(7 * 1024)))
        .collect();
    let refused = check_header_sizes(&many).expect_err("over 32 KiB in all");
    assert_eq!(refused.to_response().status, 400);
    // Exactly at the limit (name + value + 4 bytes per header) passes.
    let exact = vec![("x".to_owned(), "c".repeat(MAX_HEADER_BYTES - 5))];
    assert_eq!(check_header_sizes(&exact), Ok(()));
    let over = vec![("x".to_owned(), "c".repeat(MAX_HEADER_BYTES - 4))];
    assert!(check_header_sizes(&over).is_err());
}

/// Every POST, PUT and PATCH route. Those that take no body (logout, disable, rotate, ...) accept
/// none or `{}` and judge anything else like the routes that do.
fn json_body_routes() -> Vec<RouteId> {
    RouteId::ALL
        .into_iter()
        .filter(|id| matches!(id.spec().method, Method::Post | Method::Put | Method::Patch))
        .collect()
}

#[test]
fn every_body_taking_route_refuses_oversized_and_malformed_bodies() {
    let (app, _clock) = app(&[("ALLOW_SIGNUP", "true")]);
    let boot = bootstrap(&app);
    let key = text(&boot, "key");
    let access = text(&login_token_mode(&app), "access_token");
    let routes = json_body_routes();
    assert!(routes.len() >= 15, "{routes:?}");
    let bodies: [(&str, Vec<u8>, &str, u16); 6] = [
        (
            "oversized",
            format!("{{\"a\":\"{}\"}}", "x".repeat(64 * 1024)).into_bytes(),
            "application/json",
            413,
        ),
        ("text/plain", b"{}".to_vec(), "text/plain", 415),
        ("no JSON", b"{\"email\":".to_vec(), "application/json", 400),
        (
            "invalid UTF-8",
            b"{\"email\":\"\xff\xfe\"}".to_vec(),
            "application/json",
            400,
        ),
        // serde would read an all-optional struct from `[]`.
        ("empty array", b" []".to_vec(), "application/json", 400),
        (
            "trailing garbage",
            b"{} {}".to_vec(),
            "application/json",
            400,
        ),
    ];
    for id in routes {
        let spec = id.spec();
        // An unknown role is 404 before its body is read: name a real one (the bodies are all
        // refused, so nothing changes).
        let param = if id == RouteId::PutRole {
            "viewer"
        } else {
            "no-such-id"
        };
        let path = concrete(spec.pattern, param);
        for (label, body, content_type, status) in &bodies {
            // Routes of a person's session refuse API keys (403) before any body is read.
            let credential = if matches!(
                spec.credential,
                Credential::Session | Credential::SessionOrRefresh
            ) {
                &access
            } else {
                &key
            };
            let mut request = with_bearer(HttpRequest::new(spec.method, &path), credential)
                .header("content-type", content_type);
            request.body = body.clone();
            let response = send(&app, request);
            // Bootstrap answers every refusal with the one 401 (no bootstrap-token oracle); an
            // oversized body never reaches it on the edge, which answers 413 first.
            let want = if id == RouteId::Bootstrap {
                401
            } else {
                *status
            };
            assert_eq!(
                response.status,
                want,
                "{id:?} {label}: {:?}",
                response.json_value()
            );
        }
    }
}

#[test]
fn a_wrongly_typed_field_is_named() {
    let (app, _clock) = app(&[]);
    let boot = bootstrap(&app);
    let key = text(&boot, "key");
    for (path, body, field) in [
        (
            "/v1/auth/login",
            json!({ "email": [], "password": "x" }),
            "email",
        ),
        ("/v1/verify", json!({ "token": { "a": 1 } }), "token"),
        ("/v1/workspaces", json!({ "name": 5 }), "name"),
        (
            "/v1/api-keys",
            json!({ "name": "k", "expires_at": true }),
            "expires_at",
        ),
        (
            "/v1/authorize/batch",
            json!({ "checks": [{ "capability": 1 }] }),
            "checks[0].capability",
        ),
    ] {
        let response = send(&app, with_bearer(post(path, body), &key));
        assert_eq!(response.status, 400, "{path}");
        assert_eq!(response.json_value()["error"]["field"], field, "{path}");
    }
}
