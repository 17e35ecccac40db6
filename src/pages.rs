//! The HTML login pages (sign-in, sign-up, code entry, account, magic-link confirm) and their one
//! script and stylesheet, built as plain strings without the runtime so host tests can read every byte.
//!
//! The CSP forbids inline script and style, so pages are static markup: behaviour lives in
//! `/assets/app.js` (dispatching on `<body data-page>`), and whatever the server interpolates (an
//! email, a link token, a redirect) goes through [`escape_html`]. Pages are never cached (the link page
//! holds a one-time token), never framed, and send no referrer (its URL holds that token too).

use crate::config::{origin_of, Config};
use crate::http::{escape_html, HttpResponse};
use crate::magic_links::{LinkPreview, Purpose};

const APP_JS: &str = include_str!("pages/app.js");
const APP_CSS: &str = include_str!("pages/app.css");

/// The one element every page shows its errors in (`app.js` writes to it).
const ERROR: &str = r#"<p id="error" class="error" role="alert"></p>"#;

/// GET /login. `redirect_to` is already checked against the allow-list by the caller (or None).
pub fn sign_in_page(config: &Config, redirect_to: Option<&str>) -> HttpResponse {
    // app.js reads the target from the body: after a password login it goes there, and the link
    // form passes it on so the mailed link ends there too.
    let attrs = redirect_to
        .map(|r| format!(r#" data-redirect-to="{}""#, escape_html(r)))
        .unwrap_or_default();
    let signup = if config.allow_signup {
        r#"<p class="alt"><a href="/signup">Create an account</a></p>"#
    } else {
        ""
    };
    let main = format!(
        r#"<h1>Sign in</h1>
{ERROR}
<form id="password-form" method="post">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="email" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="password-submit" type="submit">Sign in</button>
</form>
<h2>Or sign in without a password</h2>
<form id="link-form" method="post">
<label for="link-email">Email</label>
<input id="link-email" name="email" type="email" autocomplete="email" required>
<button id="link-submit" type="submit">Email me a sign-in link</button>
</form>
{signup}"#
    );
    page(config, 200, "Sign in", "sign-in", &attrs, &main)
}

/// GET /signup (only called when sign-up is enabled).
pub fn sign_up_page(config: &Config) -> HttpResponse {
    let main = format!(
        r#"<h1>Create an account</h1>
{ERROR}
<form id="signup-form" method="post">
<label for="signup-email">Email</label>
<input id="signup-email" name="email" type="email" autocomplete="email" required>
<label for="signup-name">Name</label>
<input id="signup-name" name="name" type="text" autocomplete="name">
<label for="signup-password">Password (at least 8 characters)</label>
<input id="signup-password" name="password" type="password" autocomplete="new-password" minlength="8" maxlength="1024" required>
<button id="signup-submit" type="submit">Create account</button>
</form>
<p class="alt">We will email you a link and a code to confirm the address. <a href="/login">Sign in instead</a></p>"#
    );
    page(config, 200, "Create an account", "sign-up", "", &main)
}

/// GET /login/code. `email` (from `?email=`) prefills the address; without it app.js still reads the
/// query itself, so either way works.
pub fn code_page(config: &Config, email: Option<&str>) -> HttpResponse {
    let email = escape_html(email.unwrap_or(""));
    let main = format!(
        r#"<h1>Check your mail</h1>
<p id="code-intro">We sent a sign-in link and a 6-digit code. Open the link in this browser, or enter the code here.</p>
{ERROR}
<form id="code-form" method="post">
<label for="code-email">Email</label>
<input id="code-email" name="email" type="email" autocomplete="email" value="{email}" required>
<label for="code">6-digit code</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" maxlength="6" required>
<button id="code-submit" type="submit">Continue</button>
</form>
<p class="alt">After 5 wrong codes, or 10 minutes, <a href="/login">ask for a new link</a>.</p>"#
    );
    page(config, 200, "Enter your code", "code", "", &main)
}

/// GET /account. Everything shown is fetched by app.js from `/v1/me` and `/v1/auth/sessions`, so the
/// page itself is the same for everyone (and for no one: without a session app.js goes to /login).
pub fn account_page(config: &Config) -> HttpResponse {
    let main = format!(
        r#"<h1>Your account</h1>
{ERROR}
<p id="loading">Loading…</p>
<div id="account" hidden>
<p>Signed in as <strong id="account-email"></strong></p>
<h2>Sessions</h2>
<ul id="sessions"></ul>
<div class="actions">
<button id="logout" type="button">Sign out</button>
<button id="logout-all" type="button" class="secondary">Sign out everywhere</button>
</div>
</div>"#
    );
    page(config, 200, "Your account", "account", "", &main)
}

/// GET|HEAD /v1/auth/magic-link/verify?token=... The page consumes nothing (mail scanners fetch
/// links): a live link gets a confirm form whose POST does the work; `None` is the 404 page.
pub fn link_page(config: &Config, preview: Option<&LinkPreview>, token: &str) -> HttpResponse {
    let Some(preview) = preview else {
        let main = format!(
            r#"<h1>This link is invalid or has expired</h1>
{ERROR}
<p>A sign-in link works once, for a short time. <a href="/login">Ask for a new one</a>.</p>"#
        );
        return page(config, 404, "Link invalid or expired", "link", "", &main);
    };
    let email = escape_html(&preview.email);
    let (title, heading, text, button) = match preview.purpose {
        Purpose::Login => (
            "Sign in",
            format!("Sign in as {email}?"),
            "Press the button to finish signing in in this browser.".to_owned(),
            "Sign in",
        ),
        Purpose::VerifyEmail => (
            "Confirm your email address",
            "Confirm your email address".to_owned(),
            format!("Confirm <strong>{email}</strong> as the address of your account."),
            "Confirm email address",
        ),
    };
    let main = format!(
        r#"<h1>{heading}</h1>
{ERROR}
<p>{text}</p>
<form id="link-confirm" method="post" action="/v1/auth/magic-link/verify">
<input type="hidden" name="token" value="{token}">
<button id="link-confirm-submit" type="submit">{button}</button>
</form>
<p class="alt">Did not ask for this? Close this page: nothing happens until the button is pressed.</p>"#,
        token = escape_html(token),
    );
    page(config, 200, title, "link", "", &main)
}

/// 401 page for a form POST of the link that was refused (no or wrong browser binding, dead token).
pub fn link_refused_page(config: &Config) -> HttpResponse {
    let main = format!(
        r#"<h1>This link cannot be used in this browser</h1>
{ERROR}
<p>Open it in the browser where you asked for it, or <a href="/login/code">enter the code</a> from the same mail.</p>
<p class="alt"><a href="/login">Ask for a new link</a></p>"#
    );
    page(config, 401, "Link refused", "link", "", &main)
}

/// GET /assets/{name}: the script and the stylesheet, `None` for anything else. Only the two exact
/// names match, so no path (`../Cargo.toml`) can reach a file.
pub fn asset(name: &str) -> Option<HttpResponse> {
    let (body, content_type) = match name {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    Some(HttpResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), content_type.into()),
            // Short: a deploy reaches every browser within five minutes.
            ("cache-control".into(), "public, max-age=300".into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body: body.as_bytes().to_vec(),
    })
}

/// The page frame and the security headers shared by every HTML response.
fn page(
    config: &Config,
    status: u16,
    title: &str,
    name: &str,
    body_attrs: &str,
    main: &str,
) -> HttpResponse {
    // The link pages work as plain forms; the others cannot do anything without the script.
    let noscript = if name == "link" {
        ""
    } else {
        "<noscript><p class=\"error\">This page needs JavaScript.</p></noscript>\n"
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · edgeauth</title>
<link rel="stylesheet" href="/assets/app.css">
<script src="/assets/app.js" defer></script>
</head>
<body data-page="{name}"{body_attrs}>
<main>
{main}
{noscript}</main>
</body>
</html>
"#
    );
    HttpResponse {
        status,
        headers: vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
            ("referrer-policy".into(), "no-referrer".into()),
            ("x-frame-options".into(), "DENY".into()),
            ("x-content-type-options".into(), "nosniff".into()),
            ("content-security-policy".into(), csp(config)),
        ],
        body: html.into_bytes(),
    }
}

/// The page CSP. `form-action` lists the origin of every allowed redirect because Chrome applies it
/// to the 303 that follows the link's confirm form, which lands on `redirect_to`.
fn csp(config: &Config) -> String {
    let mut form_action = String::from("'self'");
    let mut seen: Vec<String> = Vec::new();
    for origin in config.allowed_redirects.iter().filter_map(|r| origin_of(r)) {
        // origin_of does not reject `;` or quotes; a typo in the config must not add a directive.
        let clean = origin
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:/[]".contains(&b));
        if clean && !seen.contains(&origin) {
            form_action.push(' ');
            form_action.push_str(&origin);
            seen.push(origin);
        }
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
    )
}
