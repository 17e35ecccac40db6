//! Magic links and self-registration through the HTTP layer: what the request routes answer and
//! mail, the scanner-safe link page, consumption by link or code with the asking browser's binding,
//! the mail limit, `redirect_to`, CSRF, registration, and storage failure.

mod common;

use common::*;
use edgeauth::crypto::{b64url_decode, sha256_hex};
use edgeauth::http::{HttpRequest, HttpResponse, Method, LINK_COOKIE};
use edgeauth::mail::Mail;
use edgeauth::store::{Database, Row, SqlValue};
use serde_json::{json, Value};

const EMAIL: &str = "ann@example.test";
const OTHER: &str = "bob@example.test";
const REQUEST: &str = "/v1/auth/magic-link";
const VERIFY: &str = "/v1/auth/magic-link/verify";
const CODE: &str = "/v1/auth/magic-link/code";
const REGISTER: &str = "/v1/auth/register";
const SIGNUP: (&str, &str) = ("ALLOW_SIGNUP", "true");
const REDIRECTS: (&str, &str) = ("ALLOWED_REDIRECTS", "https://app.example/dash");
const PASSWORD: &str = "a long enough password";

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

fn link_request(email: &str) -> HttpRequest {
    post(REQUEST, json!({ "email": email }))
}

/// `request` as sent by the browser that holds `binding` in its link cookie.
fn with_link_cookie(request: HttpRequest, binding: &str) -> HttpRequest {
    request.header("cookie", &format!("{LINK_COOKIE}={binding}"))
}

fn maybe_cookie(request: HttpRequest, binding: Option<&str>) -> HttpRequest {
    match binding {
        Some(binding) => with_link_cookie(request, binding),
        None => request,
    }
}

fn verify_json(token: &str, binding: Option<&str>) -> HttpRequest {
    maybe_cookie(post(VERIFY, json!({ "token": token })), binding)
}

fn verify_form(token: &str, binding: Option<&str>) -> HttpRequest {
    let mut request = HttpRequest::new(Method::Post, VERIFY)
        .header("content-type", "application/x-www-form-urlencoded");
    request.body = format!("token={token}").into_bytes();
    maybe_cookie(request, binding)
}

fn code_request(email: &str, code: &str, binding: Option<&str>) -> HttpRequest {
    maybe_cookie(post(CODE, json!({ "email": email, "code": code })), binding)
}

fn register_request(email: &str, password: &str) -> HttpRequest {
    post(
        REGISTER,
        json!({ "email": email, "password": password, "name": "Ann Example" }),
    )
}

fn page(app: &TestApp, method: Method, token: &str) -> HttpResponse {
    send(
        app,
        HttpRequest::new(method, &format!("{VERIFY}?token={token}")),
    )
}

/// Status of a token-mode password login.
fn password_login(app: &TestApp, email: &str, password: &str) -> u16 {
    send(
        app,
        post(
            "/v1/auth/login",
            json!({ "email": email, "password": password, "session": "token" }),
        ),
    )
    .status
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn is_base64url(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The value of the one link cookie `response` sets, after checking its every attribute.
fn link_cookie_of(response: &HttpResponse) -> String {
    let prefix = format!("{LINK_COOKIE}=");
    let cookies: Vec<&str> = response
        .set_cookies()
        .into_iter()
        .filter(|c| c.starts_with(&prefix))
        .collect();
    assert_eq!(cookies.len(), 1, "one link cookie: {:?}", response.headers);
    let mut parts = cookies[0].split(';').map(str::trim);
    let value = parts.next().unwrap()[prefix.len()..].to_owned();
    let mut attributes: Vec<String> = parts.map(str::to_ascii_lowercase).collect();
    attributes.sort();
    assert_eq!(
        attributes,
        [
            "httponly",
            "max-age=600",
            "path=/",
            "samesite=lax",
            "secure"
        ],
        "{}",
        cookies[0]
    );
    assert!(
        value.len() == 43 && is_base64url(&value),
        "binding shape: {value}"
    );
    value
}

/// Whether `response` deletes the link cookie.
fn clears_link_cookie(response: &HttpResponse) -> bool {
    let prefix = format!("{LINK_COOKIE}=;");
    response.set_cookies().iter().any(|c| {
        c.starts_with(&prefix)
            && c.split(';')
                .any(|a| a.trim().eq_ignore_ascii_case("Max-Age=0"))
    })
}

/// A request answer with the binding (cookie value or `attempt`) blanked out: two answers that
/// reveal nothing about the address have equal shapes.
fn shape(response: &HttpResponse, binding: &str) -> (u16, String, Vec<(String, String)>) {
    let body = String::from_utf8(response.body.clone())
        .unwrap()
        .replace(binding, "<binding>");
    let mut headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.replace(binding, "<binding>")))
        .collect();
    headers.sort();
    (response.status, body, headers)
}

fn assert_sent(response: &HttpResponse) {
    assert_eq!(response.status, 202, "{:?}", response.json_value());
    assert_eq!(response.json_value(), json!({ "status": "sent" }));
}

fn assert_auth_failure(response: &HttpResponse, what: &str) {
    assert_eq!(response.status, 401, "{what}: {:?}", response.json_value());
    assert_eq!(response.json_value(), auth_failure_body(), "{what}");
}

fn error_code(response: &HttpResponse) -> Value {
    response.json_value()["error"]["code"].clone()
}

/// The claims of an access token (the payload is not checked here, only read).
fn claims(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&b64url_decode(payload).expect("base64url payload")).unwrap()
}

/// Checks a successful JSON sign-in: `amr: ["email"]`, and `/v1/me` knows the user.
fn assert_signed_in_by_email(app: &TestApp, response: &HttpResponse, email: &str) -> Value {
    assert_eq!(response.status, 200, "{:?}", response.json_value());
    let body = response.json_value();
    let access = text(&body, "access_token");
    assert_eq!(claims(&access)["amr"], json!(["email"]));
    assert_eq!(body["user"]["email"], json!(email));
    let me = send(
        app,
        with_bearer(HttpRequest::new(Method::Get, "/v1/me"), &access),
    );
    assert_eq!(me.status, 200, "{:?}", me.json_value());
    assert_eq!(
        me.json_value()["user"]["email"],
        json!(email),
        "{:?}",
        me.json_value()
    );
    body
}

// ---------------------------------------------------------------------------------------------
// Mail
// ---------------------------------------------------------------------------------------------

struct Secrets {
    token: String,
    code: String,
}

/// The link token and the code of a link mail.
fn secrets_of(mail: &Mail) -> Secrets {
    let prefix = format!("{PUBLIC_URL}/v1/auth/magic-link/verify?token=");
    let start = mail
        .text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no link in {:?}", mail.text))
        + prefix.len();
    let token: String = mail.text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "token in {:?}", mail.text);
    let code = mail
        .text
        .lines()
        .find_map(|line| line.strip_prefix("Code: "))
        .unwrap_or_else(|| panic!("no code line in {:?}", mail.text))
        .to_owned();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "code {code:?}"
    );
    Secrets { token, code }
}

/// The one mail the last request queued, to `to` with `subject`.
fn one_mail(app: &TestApp, to: &str, subject: &str) -> Mail {
    let mut mails = app.outbox.drain();
    assert_eq!(mails.len(), 1, "one mail expected: {mails:?}");
    let mail = mails.remove(0);
    assert_eq!(mail.to, vec![to.to_owned()]);
    assert_eq!(mail.subject, subject);
    mail
}

fn no_mail(app: &TestApp, what: &str) {
    let mails = app.outbox.drain();
    assert!(mails.is_empty(), "{what}: no mail expected, got {mails:?}");
}

/// A sign-in link asked for in cookie mode (by a browser holding `held`, if given): the binding
/// the answer set, and the mailed secrets.
struct Asked {
    binding: String,
    token: String,
    code: String,
}

fn ask_with(app: &TestApp, request: HttpRequest, to: &str, subject: &str) -> Asked {
    let response = send(app, request);
    assert_sent(&response);
    let binding = link_cookie_of(&response);
    let Secrets { token, code } = secrets_of(&one_mail(app, to, subject));
    Asked {
        binding,
        token,
        code,
    }
}

fn ask(app: &TestApp, email: &str) -> Asked {
    ask_with(app, link_request(email), email, "Your sign-in link")
}

// ---------------------------------------------------------------------------------------------
// Stored state
// ---------------------------------------------------------------------------------------------

fn count(app: &TestApp, sql: &str, params: &[SqlValue]) -> i64 {
    app.db.rows(sql, params)[0].int("n").unwrap()
}

fn attempts_for(app: &TestApp, email: &str) -> i64 {
    count(
        app,
        "SELECT COUNT(*) AS n FROM magic_link_attempts WHERE email = ?1",
        &[SqlValue::from(email)],
    )
}

/// `consumed_at` of the attempt of `token` (which must exist).
fn consumed_at(app: &TestApp, token: &str) -> Option<i64> {
    let rows = app.db.rows(
        "SELECT consumed_at FROM magic_link_attempts WHERE token_hash = ?1",
        &[SqlValue::from(sha256_hex(token.as_bytes()))],
    );
    assert_eq!(rows.len(), 1, "no attempt for this token");
    rows[0].opt_int("consumed_at").unwrap()
}

fn user_row(app: &TestApp, email: &str) -> Option<Row> {
    app.db
        .rows(
            "SELECT * FROM users WHERE email = ?1",
            &[SqlValue::from(email)],
        )
        .pop()
}

fn status_of(app: &TestApp, email: &str) -> String {
    user_row(app, email)
        .expect("user exists")
        .text("status")
        .unwrap()
}

fn password_records(app: &TestApp, email: &str) -> Vec<Row> {
    app.db.rows(
        "SELECT p.* FROM password_credentials p JOIN users u ON u.id = p.user_id WHERE u.email = ?1",
        &[SqlValue::from(email)],
    )
}

fn sessions_of(app: &TestApp, email: &str) -> i64 {
    count(
        app,
        "SELECT COUNT(*) AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = ?1",
        &[SqlValue::from(email)],
    )
}

fn disable(app: &TestApp, email: &str) {
    block_on(app.db.execute(edgeauth::stmt!(
        "UPDATE users SET status = 'disabled' WHERE email = ?1",
        email
    )))
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Requesting a link
// ---------------------------------------------------------------------------------------------

#[test]
fn a_known_address_gets_one_mail_and_a_bound_cookie_but_no_secret_in_the_answer() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let response = send(&app, link_request(EMAIL));
    assert_sent(&response);
    assert_eq!(response.set_cookies().len(), 1, "{:?}", response.headers);
    let binding = link_cookie_of(&response);

    let mail = one_mail(&app, EMAIL, "Your sign-in link");
    assert!(mail.html.contains("\">Sign in</a>"), "{}", mail.html);
    let Secrets { token, code } = secrets_of(&mail);
    assert_ne!(token, binding);
    // The binding is random and may contain six digits in a row by chance; nothing else may.
    for (name, value) in &response.headers {
        assert!(!value.contains(&token), "token in header {name}");
        assert!(
            !value.replace(&binding, "").contains(&code),
            "code in header {name}"
        );
    }
    let body = String::from_utf8(response.body.clone()).unwrap();
    assert!(!body.contains(&token) && !body.contains(&code), "{body}");
    assert_eq!(attempts_for(&app, EMAIL), 1);
}

#[test]
fn unknown_and_disabled_addresses_get_the_same_answer_and_no_mail() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    insert_user(&app, "dis@example.test", PASSWORD, false);
    disable(&app, "dis@example.test");

    let known = send(&app, link_request(EMAIL));
    let reference = shape(&known, &link_cookie_of(&known));
    one_mail(&app, EMAIL, "Your sign-in link");

    for email in ["nobody@example.test", "dis@example.test"] {
        let response = send(&app, link_request(email));
        let binding = link_cookie_of(&response);
        assert_eq!(shape(&response, &binding), reference, "{email}");
        no_mail(&app, email);
        assert_eq!(attempts_for(&app, email), 0, "{email}");
    }
    assert!(user_row(&app, "nobody@example.test").is_none());

    // Token mode: the same `attempt`-shaped body whoever the address is.
    let token_mode = |email: &str| {
        let response = send(
            &app,
            post(REQUEST, json!({ "email": email, "session": "token" })),
        );
        assert_eq!(response.status, 202);
        assert!(response.set_cookies().is_empty(), "{:?}", response.headers);
        let attempt = text(&response.json_value(), "attempt");
        assert!(attempt.len() == 43 && is_base64url(&attempt), "{attempt}");
        shape(&response, &attempt)
    };
    let reference = token_mode(EMAIL);
    app.outbox.drain();
    for email in ["nobody@example.test", "dis@example.test"] {
        assert_eq!(token_mode(email), reference, "{email}");
        no_mail(&app, email);
    }
}

#[test]
fn a_browser_that_already_holds_a_link_cookie_gets_it_back_whatever_the_address() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    insert_user(&app, "dis@example.test", PASSWORD, false);
    disable(&app, "dis@example.test");
    let first = ask(&app, EMAIL);

    // Known, unknown and disabled alike echo the held value: a fresh one for some addresses only
    // would tell which exist.
    for email in [EMAIL, "nobody@example.test", "dis@example.test"] {
        let response = send(&app, with_link_cookie(link_request(email), &first.binding));
        assert_sent(&response);
        assert_eq!(link_cookie_of(&response), first.binding, "{email}");
    }
    let second = secrets_of(&one_mail(&app, EMAIL, "Your sign-in link"));

    // Both links asked for from this browser work in it.
    let response = send(&app, verify_json(&first.token, Some(&first.binding)));
    assert_signed_in_by_email(&app, &response, EMAIL);
    let response = send(&app, verify_json(&second.token, Some(&first.binding)));
    assert_signed_in_by_email(&app, &response, EMAIL);
}

#[test]
fn with_sign_up_open_an_unknown_address_gets_a_link_that_creates_an_active_account() {
    let (app, _) = app(&[SIGNUP]);
    let asked = ask(&app, "new@example.test");
    assert!(
        user_row(&app, "new@example.test").is_none(),
        "no user before the link is used"
    );

    let response = send(&app, verify_json(&asked.token, Some(&asked.binding)));
    let body = assert_signed_in_by_email(&app, &response, "new@example.test");
    assert_eq!(body["user"]["status"], json!("active"));
    assert_eq!(status_of(&app, "new@example.test"), "active");
    assert_eq!(sessions_of(&app, "new@example.test"), 1);
    assert!(password_records(&app, "new@example.test").is_empty());
}

// ---------------------------------------------------------------------------------------------
// The mail limit
// ---------------------------------------------------------------------------------------------

#[test]
fn an_address_gets_five_mails_per_fifteen_minutes_and_the_sixth_request_looks_the_same() {
    let (app, clock) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    insert_user(&app, OTHER, PASSWORD, false);

    let mut mails = 0;
    let mut reference = None;
    for i in 1..=6 {
        let response = send(&app, link_request(EMAIL));
        let binding = link_cookie_of(&response);
        let this = shape(&response, &binding);
        assert_eq!(reference.get_or_insert(this.clone()), &this, "request {i}");
        assert_sent(&response);
        let sent = app.outbox.drain();
        mails += sent.len();
        if i == 6 {
            assert!(sent.is_empty(), "sixth request mailed: {sent:?}");
        }
    }
    assert_eq!(mails, 5);
    assert_eq!(attempts_for(&app, EMAIL), 5);

    // Per address: another one is not affected.
    ask(&app, OTHER);

    clock.advance(15 * 60 - 1);
    send(&app, link_request(EMAIL));
    no_mail(&app, "still within the window");
    clock.advance(1);
    ask(&app, EMAIL);
}

#[test]
fn registration_mails_count_against_the_same_limit() {
    let (app, _) = app(&[SIGNUP]);
    // 1: the confirmation mail.
    let response = send(&app, register_request(EMAIL, PASSWORD));
    assert_sent(&response);
    let mail = one_mail(&app, EMAIL, "Confirm your email address");
    assert!(
        mail.html.contains("\">Confirm your address</a>"),
        "{}",
        mail.html
    );
    // 2-5: sign-in links (a pending account may ask for one).
    for _ in 0..4 {
        ask(&app, EMAIL);
    }
    // 6: nothing, by either route.
    assert_sent(&send(&app, link_request(EMAIL)));
    no_mail(&app, "sixth mail by magic link");
    let response = send(&app, register_request(EMAIL, PASSWORD));
    assert_sent(&response);
    link_cookie_of(&response);
    no_mail(&app, "sixth mail by registration");

    // And the other way round: five sign-in links leave no "already registered" mail.
    insert_user(&app, OTHER, PASSWORD, false);
    for _ in 0..5 {
        ask(&app, OTHER);
    }
    assert_sent(&send(&app, register_request(OTHER, PASSWORD)));
    no_mail(&app, "registration after five links");
}

// ---------------------------------------------------------------------------------------------
// The link page
// ---------------------------------------------------------------------------------------------

fn assert_page_headers(response: &HttpResponse) {
    let header = |name: &str| {
        response
            .header_value(name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", response.headers))
            .to_owned()
    };
    assert!(header("content-type").starts_with("text/html"));
    let csp = header("content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("x-frame-options"), "DENY");
}

#[test]
fn opening_the_link_with_get_or_head_consumes_nothing() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let asked = ask(&app, EMAIL);

    let response = page(&app, Method::Get, &asked.token);
    assert_eq!(response.status, 200);
    assert_page_headers(&response);
    let html = String::from_utf8(response.body.clone()).unwrap();
    assert!(html.contains(&format!("Sign in as {EMAIL}?")), "{html}");
    assert!(
        html.contains(
            r#"<form id="link-confirm" method="post" action="/v1/auth/magic-link/verify">"#
        ),
        "{html}"
    );
    assert!(html.contains(&format!(r#"name="token" value="{}""#, asked.token)));
    assert_eq!(consumed_at(&app, &asked.token), None);

    let response = page(&app, Method::Head, &asked.token);
    assert_eq!(response.status, 200);
    assert_page_headers(&response);
    assert!(response.body.is_empty());
    assert_eq!(consumed_at(&app, &asked.token), None);

    // Scanners fetched it twice; the browser that asked still signs in with it.
    let response = send(&app, verify_json(&asked.token, Some(&asked.binding)));
    assert_signed_in_by_email(&app, &response, EMAIL);

    // A used link, or one never issued, is a 404 page.
    let unknown = "A".repeat(43);
    for token in [asked.token.as_str(), unknown.as_str(), ""] {
        let response = page(&app, Method::Get, token);
        assert_eq!(response.status, 404, "token {token:?}");
        assert_page_headers(&response);
    }
}

// ---------------------------------------------------------------------------------------------
// Consuming a link (JSON and form)
// ---------------------------------------------------------------------------------------------

#[test]
fn posting_the_link_needs_the_binding_of_the_browser_that_asked_and_works_once() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let asked = ask(&app, EMAIL);
    // Another browser asks too, and so holds a real binding of the same shape.
    let other_browser = ask(&app, EMAIL);

    let response = send(&app, verify_json(&asked.token, None));
    assert_auth_failure(&response, "no binding");
    assert_eq!(consumed_at(&app, &asked.token), None);

    let response = send(
        &app,
        verify_json(&asked.token, Some(&other_browser.binding)),
    );
    assert_auth_failure(&response, "another browser's binding");
    assert_eq!(consumed_at(&app, &asked.token), None);

    let response = send(
        &app,
        post(
            VERIFY,
            json!({ "token": asked.token, "attempt": other_browser.binding }),
        ),
    );
    assert_auth_failure(&response, "another browser's binding as attempt");
    assert_eq!(consumed_at(&app, &asked.token), None);
    assert_eq!(sessions_of(&app, EMAIL), 0);

    let response = send(&app, verify_json(&asked.token, Some(&asked.binding)));
    let body = assert_signed_in_by_email(&app, &response, EMAIL);
    assert!(body.get("refresh_token").is_none(), "cookie mode: {body}");
    let cookies = response.set_cookies();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-edgeauth-access=")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-edgeauth-refresh=")),
        "{cookies:?}"
    );
    assert!(clears_link_cookie(&response), "{cookies:?}");
    assert!(consumed_at(&app, &asked.token).is_some());
    assert_eq!(sessions_of(&app, EMAIL), 1);

    let response = send(&app, verify_json(&asked.token, Some(&asked.binding)));
    assert_auth_failure(&response, "second use");
    assert_eq!(sessions_of(&app, EMAIL), 1);
}

#[test]
fn a_form_post_redirects_to_the_requested_page_or_the_account_page() {
    let (app, _) = app(&[REDIRECTS]);
    insert_user(&app, EMAIL, PASSWORD, false);

    let with_target = ask_with(
        &app,
        post(
            REQUEST,
            json!({ "email": EMAIL, "redirect_to": "https://app.example/dash/x" }),
        ),
        EMAIL,
        "Your sign-in link",
    );
    let without = ask(&app, EMAIL);

    for (asked, location) in [
        (&with_target, "https://app.example/dash/x".to_owned()),
        (&without, format!("{PUBLIC_URL}/account")),
    ] {
        let response = send(&app, verify_form(&asked.token, Some(&asked.binding)));
        assert_eq!(response.status, 303, "{:?}", response.headers);
        assert_eq!(response.header_value("location"), Some(location.as_str()));
        let cookies = response.set_cookies();
        let access = cookies
            .iter()
            .find_map(|c| c.strip_prefix("__Host-edgeauth-access="))
            .unwrap_or_else(|| panic!("no access cookie: {cookies:?}"));
        let access = access.split(';').next().unwrap();
        assert_eq!(claims(access)["amr"], json!(["email"]));
        assert!(cookies
            .iter()
            .any(|c| c.starts_with("__Host-edgeauth-refresh=")));
        assert!(clears_link_cookie(&response), "{cookies:?}");
        assert!(consumed_at(&app, &asked.token).is_some());
    }
}

#[test]
fn a_form_post_without_the_binding_gets_an_html_refusal_and_the_link_still_works() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let asked = ask(&app, EMAIL);
    let other_browser = ask(&app, EMAIL);

    for binding in [None, Some(other_browser.binding.as_str())] {
        let response = send(&app, verify_form(&asked.token, binding));
        assert_eq!(response.status, 401, "{binding:?}");
        assert!(
            response
                .header_value("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{:?}",
            response.headers
        );
        assert_page_headers(&response);
        assert!(response.set_cookies().is_empty(), "{:?}", response.headers);
        assert_eq!(consumed_at(&app, &asked.token), None);
    }

    let response = send(&app, verify_form(&asked.token, Some(&asked.binding)));
    assert_eq!(response.status, 303, "{:?}", response.headers);
    assert_eq!(sessions_of(&app, EMAIL), 1);
}

// ---------------------------------------------------------------------------------------------
// Token mode and codes
// ---------------------------------------------------------------------------------------------

#[test]
fn token_mode_hands_the_binding_to_the_client_and_returns_a_refresh_token() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let token_request = || post(REQUEST, json!({ "email": EMAIL, "session": "token" }));

    let response = send(&app, token_request());
    assert_eq!(response.status, 202);
    assert!(response.set_cookies().is_empty(), "{:?}", response.headers);
    let first_attempt = text(&response.json_value(), "attempt");
    assert_eq!(
        response.json_value(),
        json!({ "status": "sent", "attempt": first_attempt })
    );
    let first = secrets_of(&one_mail(&app, EMAIL, "Your sign-in link"));

    let response = send(&app, token_request());
    let second_attempt = text(&response.json_value(), "attempt");
    assert_ne!(first_attempt, second_attempt);
    let second = secrets_of(&one_mail(&app, EMAIL, "Your sign-in link"));

    // The token without its attempt is refused.
    assert_auth_failure(&send(&app, verify_json(&first.token, None)), "no attempt");

    let response = send(
        &app,
        post(
            VERIFY,
            json!({ "token": first.token, "attempt": first_attempt }),
        ),
    );
    let body = assert_signed_in_by_email(&app, &response, EMAIL);
    assert!(!text(&body, "refresh_token").is_empty());
    assert!(response.set_cookies().is_empty(), "{:?}", response.headers);

    let response = send(
        &app,
        post(
            CODE,
            json!({ "email": EMAIL, "code": second.code, "attempt": second_attempt }),
        ),
    );
    let body = assert_signed_in_by_email(&app, &response, EMAIL);
    assert!(!text(&body, "refresh_token").is_empty());
    assert!(response.set_cookies().is_empty(), "{:?}", response.headers);
    assert!(consumed_at(&app, &second.token).is_some());
}

#[test]
fn the_code_signs_in_the_browser_that_asked_once() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let asked = ask(&app, EMAIL);

    assert_auth_failure(
        &send(&app, code_request(EMAIL, &asked.code, None)),
        "code without binding",
    );
    let response = send(&app, code_request(EMAIL, &asked.code, Some(&asked.binding)));
    let body = assert_signed_in_by_email(&app, &response, EMAIL);
    assert!(body.get("refresh_token").is_none());
    assert!(clears_link_cookie(&response));
    assert_auth_failure(
        &send(&app, code_request(EMAIL, &asked.code, Some(&asked.binding))),
        "code again",
    );
    assert_auth_failure(
        &send(&app, verify_json(&asked.token, Some(&asked.binding))),
        "link after the code",
    );
}

#[test]
fn the_fifth_wrong_code_ends_the_attempt_for_the_code_and_the_link() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let asked = ask(&app, EMAIL);
    let right: u32 = asked.code.parse().unwrap();

    for i in 1..=5 {
        let wrong = format!("{:06}", (right + i) % 1_000_000);
        let response = send(&app, code_request(EMAIL, &wrong, Some(&asked.binding)));
        assert_auth_failure(&response, &format!("wrong code {i}"));
    }
    assert_auth_failure(
        &send(&app, code_request(EMAIL, &asked.code, Some(&asked.binding))),
        "right code after five wrong ones",
    );
    assert_auth_failure(
        &send(&app, verify_json(&asked.token, Some(&asked.binding))),
        "link after five wrong codes",
    );
    assert_eq!(page(&app, Method::Get, &asked.token).status, 404);
    assert_eq!(sessions_of(&app, EMAIL), 0);
}

#[test]
fn links_and_codes_expire_after_ten_minutes() {
    let (app, clock) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let early = ask(&app, EMAIL);
    let late = ask_with(
        &app,
        with_link_cookie(link_request(EMAIL), &early.binding),
        EMAIL,
        "Your sign-in link",
    );
    assert_eq!(late.binding, early.binding);

    clock.advance(599);
    let response = send(&app, verify_json(&early.token, Some(&early.binding)));
    assert_signed_in_by_email(&app, &response, EMAIL);

    clock.advance(2);
    assert_eq!(page(&app, Method::Get, &late.token).status, 404);
    assert_auth_failure(
        &send(&app, verify_json(&late.token, Some(&late.binding))),
        "expired link",
    );
    assert_auth_failure(
        &send(&app, code_request(EMAIL, &late.code, Some(&late.binding))),
        "expired code",
    );
    assert_eq!(consumed_at(&app, &late.token), None);
}

// ---------------------------------------------------------------------------------------------
// redirect_to and CSRF
// ---------------------------------------------------------------------------------------------

#[test]
fn a_redirect_outside_the_allow_list_is_refused_and_nothing_is_sent() {
    let (app, _) = app(&[REDIRECTS]);
    insert_user(&app, EMAIL, PASSWORD, false);
    for target in [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://app.example.evil.example/dash",
        "https://app.example/dashboard",
        "javascript:alert(1)",
    ] {
        let response = send(
            &app,
            post(REQUEST, json!({ "email": EMAIL, "redirect_to": target })),
        );
        assert_eq!(response.status, 400, "{target}");
        assert_eq!(error_code(&response), json!("invalid_request"), "{target}");
        assert_eq!(
            response.json_value()["error"]["field"],
            json!("redirect_to"),
            "{target}"
        );
        assert!(response.set_cookies().is_empty(), "{target}");
        no_mail(&app, target);
    }
    assert_eq!(attempts_for(&app, EMAIL), 0);

    // An allowed target is stored (and later used) in canonical form.
    let asked = ask_with(
        &app,
        post(
            REQUEST,
            json!({ "email": EMAIL, "redirect_to": "HTTPS://App.Example:443/dash/x?y=1" }),
        ),
        EMAIL,
        "Your sign-in link",
    );
    let stored = app.db.rows(
        "SELECT redirect_to FROM magic_link_attempts WHERE token_hash = ?1",
        &[SqlValue::from(sha256_hex(asked.token.as_bytes()))],
    );
    assert_eq!(
        stored[0].opt_text("redirect_to").unwrap().as_deref(),
        Some("https://app.example/dash/x?y=1")
    );
    let response = send(&app, verify_form(&asked.token, Some(&asked.binding)));
    assert_eq!(response.status, 303);
    assert_eq!(
        response.header_value("location"),
        Some("https://app.example/dash/x?y=1")
    );
}

#[test]
fn cookie_mode_requests_from_a_foreign_origin_are_refused() {
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let foreign = "https://evil.example";

    let response = send(&app, link_request(EMAIL).header("origin", foreign));
    assert_eq!(response.status, 403);
    assert_eq!(error_code(&response), json!("csrf"));
    assert!(response.set_cookies().is_empty());
    no_mail(&app, "foreign request");
    assert_eq!(attempts_for(&app, EMAIL), 0);

    // Our own origin may ask.
    let asked = ask_with(
        &app,
        link_request(EMAIL).header("origin", PUBLIC_URL),
        EMAIL,
        "Your sign-in link",
    );

    let response = send(
        &app,
        verify_json(&asked.token, Some(&asked.binding)).header("origin", foreign),
    );
    assert_eq!(response.status, 403);
    assert_eq!(error_code(&response), json!("csrf"));
    let response = send(
        &app,
        verify_form(&asked.token, Some(&asked.binding)).header("origin", foreign),
    );
    assert_eq!(response.status, 403);
    assert_eq!(consumed_at(&app, &asked.token), None);

    let response = send(
        &app,
        code_request(EMAIL, &asked.code, Some(&asked.binding)).header("origin", foreign),
    );
    assert_eq!(response.status, 403);
    assert_eq!(error_code(&response), json!("csrf"));
    assert_eq!(consumed_at(&app, &asked.token), None);
    assert_eq!(sessions_of(&app, EMAIL), 0);

    let response = send(
        &app,
        code_request(EMAIL, &asked.code, Some(&asked.binding)).header("origin", PUBLIC_URL),
    );
    assert_signed_in_by_email(&app, &response, EMAIL);

    let again = ask(&app, EMAIL);
    let response = send(
        &app,
        verify_json(&again.token, Some(&again.binding)).header("origin", PUBLIC_URL),
    );
    assert_signed_in_by_email(&app, &response, EMAIL);
}

#[test]
fn a_form_post_with_origin_null_is_ours_only_if_the_browser_says_same_origin() {
    // Under `Referrer-Policy: no-referrer` browsers post forms with `Origin: null`; the confirm
    // page's own form must still work, and a null origin from anywhere else must not.
    let (app, _) = app(&[]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let asked = ask(&app, EMAIL);
    for sec_fetch_site in [None, Some("cross-site"), Some("same-site"), Some("none")] {
        let mut request = verify_form(&asked.token, Some(&asked.binding)).header("origin", "null");
        if let Some(site) = sec_fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        let response = send(&app, request);
        assert_eq!(response.status, 403, "Sec-Fetch-Site {sec_fetch_site:?}");
        assert_eq!(error_code(&response), json!("csrf"));
        assert_eq!(consumed_at(&app, &asked.token), None);
    }
    let response = send(
        &app,
        verify_form(&asked.token, Some(&asked.binding))
            .header("origin", "null")
            .header("sec-fetch-site", "same-origin"),
    );
    assert_eq!(response.status, 303);
    assert!(consumed_at(&app, &asked.token).is_some());
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

#[test]
fn a_registered_account_stays_pending_and_its_password_unusable_until_the_mail_is_confirmed() {
    let (app, _) = app(&[SIGNUP]);
    let asked = ask_with(
        &app,
        register_request(EMAIL, PASSWORD),
        EMAIL,
        "Confirm your email address",
    );
    let user = user_row(&app, EMAIL).expect("user created");
    assert_eq!(user.text("status").unwrap(), "pending");
    assert_eq!(user.text("name").unwrap(), "Ann Example");
    assert_eq!(password_records(&app, EMAIL).len(), 1);
    assert_eq!(password_login(&app, EMAIL, PASSWORD), 401);

    let response = page(&app, Method::Get, &asked.token);
    assert_eq!(response.status, 200);
    assert_eq!(consumed_at(&app, &asked.token), None);

    // Without the registering browser's binding, nothing is confirmed.
    assert_auth_failure(&send(&app, verify_json(&asked.token, None)), "no binding");
    assert_eq!(status_of(&app, EMAIL), "pending");
    assert_eq!(password_login(&app, EMAIL, PASSWORD), 401);

    let response = send(&app, verify_json(&asked.token, Some(&asked.binding)));
    let body = assert_signed_in_by_email(&app, &response, EMAIL);
    assert_eq!(body["user"]["status"], json!("active"));
    assert_eq!(status_of(&app, EMAIL), "active");
    // The password chosen at registration is kept and now works.
    assert_eq!(password_records(&app, EMAIL).len(), 1);
    assert_eq!(password_login(&app, EMAIL, PASSWORD), 200);
}

#[test]
fn registering_an_existing_address_mails_no_secret_and_changes_nothing() {
    let (app, _) = app(&[SIGNUP]);
    // A new address, for the reference answer.
    let fresh = send(&app, register_request("new@example.test", PASSWORD));
    let reference = shape(&fresh, &link_cookie_of(&fresh));
    app.outbox.drain();

    insert_user(&app, EMAIL, "the old password", false);
    let user_before = user_row(&app, EMAIL).unwrap();
    let password_before = password_records(&app, EMAIL);

    let response = send(&app, register_request(EMAIL, PASSWORD));
    let binding = link_cookie_of(&response);
    assert_eq!(shape(&response, &binding), reference);
    let mail = one_mail(&app, EMAIL, "You already have an account");
    for body in [&mail.text, &mail.html] {
        assert!(!body.contains("token="), "{body}");
        assert!(!body.contains("Code:"), "{body}");
    }
    assert_eq!(user_row(&app, EMAIL).unwrap(), user_before);
    assert_eq!(password_records(&app, EMAIL), password_before);
    assert_eq!(attempts_for(&app, EMAIL), 0);
    assert_eq!(password_login(&app, EMAIL, "the old password"), 200);
    assert_eq!(password_login(&app, EMAIL, PASSWORD), 401);

    // The same for a pending account: registering again does not replace its password.
    let pending_before = password_records(&app, "new@example.test");
    assert_sent(&send(
        &app,
        register_request("new@example.test", "another password"),
    ));
    one_mail(&app, "new@example.test", "You already have an account");
    assert_eq!(password_records(&app, "new@example.test"), pending_before);
    assert_eq!(attempts_for(&app, "new@example.test"), 1);
}

#[test]
fn registration_is_not_found_while_sign_up_is_closed() {
    let (app, _) = app(&[]);
    let response = send(&app, register_request(EMAIL, PASSWORD));
    assert_eq!(response.status, 404);
    assert_eq!(error_code(&response), json!("not_found"));
    assert!(user_row(&app, EMAIL).is_none());
    no_mail(&app, "closed sign-up");
}

#[test]
fn a_short_password_is_refused_before_anything_is_created() {
    let (app, _) = app(&[SIGNUP]);
    let response = send(&app, register_request(EMAIL, "1234567"));
    assert_eq!(response.status, 400);
    assert_eq!(error_code(&response), json!("invalid_request"));
    assert_eq!(response.json_value()["error"]["field"], json!("password"));
    assert!(response.set_cookies().is_empty());
    assert!(user_row(&app, EMAIL).is_none());
    assert_eq!(attempts_for(&app, EMAIL), 0);
    no_mail(&app, "weak password");
}

#[test]
fn a_pending_account_signed_in_by_a_login_link_is_activated_without_the_registration_password() {
    let (app, _) = app(&[SIGNUP]);
    // Someone registers the address (and so chose its password) but never confirms.
    assert_sent(&send(&app, register_request(EMAIL, PASSWORD)));
    one_mail(&app, EMAIL, "Confirm your email address");
    assert_eq!(status_of(&app, EMAIL), "pending");

    // The owner of the mailbox signs in with a login link instead.
    let asked = ask(&app, EMAIL);
    let response = send(&app, verify_json(&asked.token, Some(&asked.binding)));
    let body = assert_signed_in_by_email(&app, &response, EMAIL);
    assert_eq!(body["user"]["status"], json!("active"));
    assert_eq!(status_of(&app, EMAIL), "active");
    // Only the mail was proven: the registering party's password must not open the account.
    assert!(password_records(&app, EMAIL).is_empty());
    assert_eq!(password_login(&app, EMAIL, PASSWORD), 401);
}

// ---------------------------------------------------------------------------------------------
// Storage failure
// ---------------------------------------------------------------------------------------------

#[test]
fn a_storage_failure_is_a_503_and_sends_no_mail() {
    let (app, _) = app(&[SIGNUP]);
    insert_user(&app, EMAIL, PASSWORD, false);
    let asked = ask(&app, EMAIL);

    app.db.fail.set(true);
    for request in [
        link_request(EMAIL),
        link_request("new@example.test"),
        register_request("new@example.test", PASSWORD),
        register_request(EMAIL, PASSWORD),
    ] {
        let response = send(&app, request.clone());
        assert_eq!(response.status, 503, "{} {:?}", request.path, request.body);
        assert_eq!(error_code(&response), json!("unavailable"));
        assert!(response.set_cookies().is_empty());
        no_mail(&app, &request.path);
    }
    // A failing store is not a bad link: 503, not 401, and the link survives.
    let response = send(&app, verify_json(&asked.token, Some(&asked.binding)));
    assert_eq!(response.status, 503);
    let response = send(&app, code_request(EMAIL, &asked.code, Some(&asked.binding)));
    assert_eq!(response.status, 503);
    assert_eq!(page(&app, Method::Get, &asked.token).status, 503);

    app.db.fail.set(false);
    assert_eq!(consumed_at(&app, &asked.token), None);
    let response = send(&app, verify_json(&asked.token, Some(&asked.binding)));
    assert_signed_in_by_email(&app, &response, EMAIL);
}
