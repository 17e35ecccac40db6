//! The login pages without a server: security headers and CSP, escaping of everything interpolated,
//! no inline script or style (the CSP would block it, so it would be a silent breakage), the link
//! page's 404/200, the sign-up link switch and the two assets.

use edgeauth::config::Config;
use edgeauth::http::HttpResponse;
use edgeauth::magic_links::{LinkPreview, Purpose};
use edgeauth::pages::{
    account_page, asset, code_page, link_page, link_refused_page, sign_in_page, sign_up_page,
};

const HOSTILE: &str = r#"<script>"'&@x.example"#;

fn config(allow_signup: bool) -> Config {
    Config::from_lookup(|k| match k {
        "PUBLIC_URL" => Some("https://auth.example".into()),
        "SIGNING_SECRET" => Some("x".repeat(40)),
        "ALLOWED_REDIRECTS" => Some("https://app.example/dash, http://localhost:8080/cb".into()),
        "ALLOW_SIGNUP" => Some(allow_signup.to_string()),
        _ => None,
    })
    .expect("test config")
}

fn preview(purpose: Purpose) -> LinkPreview {
    LinkPreview {
        email: HOSTILE.into(),
        purpose,
    }
}

fn html(response: &HttpResponse) -> String {
    String::from_utf8(response.body.clone()).expect("utf-8 page")
}

/// Every HTML page the module can produce, named for assertion messages.
fn all_pages(config: &Config) -> Vec<(&'static str, HttpResponse)> {
    vec![
        ("sign-in", sign_in_page(config, None)),
        (
            "sign-in+redirect",
            sign_in_page(config, Some("https://app.example/dash")),
        ),
        ("sign-up", sign_up_page(config)),
        ("code", code_page(config, Some(HOSTILE))),
        ("code-empty", code_page(config, None)),
        ("account", account_page(config)),
        (
            "link-login",
            link_page(config, Some(&preview(Purpose::Login)), "tok"),
        ),
        (
            "link-verify",
            link_page(config, Some(&preview(Purpose::VerifyEmail)), "tok"),
        ),
        ("link-404", link_page(config, None, "tok")),
        ("link-refused", link_refused_page(config)),
    ]
}

#[test]
fn every_page_carries_the_security_headers_and_a_strict_csp() {
    let config = config(true);
    for (name, page) in all_pages(&config) {
        let header = |h: &str| {
            page.header_value(h)
                .unwrap_or_else(|| panic!("{name}: no {h}"))
        };
        assert_eq!(header("content-type"), "text/html; charset=utf-8", "{name}");
        assert_eq!(header("cache-control"), "no-store", "{name}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{name}");
        assert_eq!(header("x-frame-options"), "DENY", "{name}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{name}: {directive} missing in {csp}"
            );
        }
        assert!(!csp.contains("unsafe-inline"), "{name}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{name}: {csp}");
        // Chrome applies form-action to the 303 after the confirm form, which goes to redirect_to.
        let form_action = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("form-action "))
            .unwrap_or_else(|| panic!("{name}: no form-action in {csp}"));
        assert_eq!(
            form_action, "form-action 'self' https://app.example http://localhost:8080",
            "{name}"
        );
    }
}

#[test]
fn a_malformed_redirect_entry_cannot_add_a_csp_directive() {
    // Config refuses such entries; the page does not rely on that (the field is public).
    let mut config = config(false);
    config.allowed_redirects = vec![
        "https://a.example;script-src *".into(),
        "https://app.example/x".into(),
        "https://APP.example/y".into(),
    ];
    let page = sign_in_page(&config, None);
    let csp = page.header_value("content-security-policy").unwrap();
    assert!(!csp.contains("script-src *"), "{csp}");
    assert!(
        csp.contains("form-action 'self' https://app.example;"),
        "{csp}"
    );
}

#[test]
fn pages_are_well_formed_and_hold_no_inline_script_style_or_handlers() {
    let config = config(true);
    for (name, page) in all_pages(&config) {
        let body = html(&page);
        assert!(body.starts_with("<!doctype html>"), "{name}");
        assert!(body.contains(r#"<html lang="en">"#), "{name}");
        assert!(
            body.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            ),
            "{name}"
        );
        assert!(body.contains("<main>") && body.contains("<h1>"), "{name}");
        assert!(
            body.contains(r#"id="error""#) && body.contains(r#"role="alert""#),
            "{name}"
        );

        // The only script is the asset, with an empty body; the only stylesheet is the asset.
        assert_eq!(body.matches("<script").count(), 1, "{name}");
        assert!(
            body.contains(r#"<script src="/assets/app.js" defer></script>"#),
            "{name}"
        );
        assert!(body.contains(r#"<link rel="stylesheet" href="/assets/app.css">"#));
        assert!(!body.contains("<style"), "{name}");
        assert!(!body.contains("style="), "{name}");
        assert!(!body.contains("javascript:"), "{name}");
        assert!(!has_event_handler(&body), "{name}: an on* attribute");
        // Nothing loaded from elsewhere.
        for attr in ["src=\"", "href=\""] {
            for value in body.split(attr).skip(1) {
                assert!(value.starts_with('/'), "{name}: {attr}{value:.40}");
            }
        }

        // Every input except hidden ones has a real label.
        for input in body.split("<input").skip(1) {
            let tag = &input[..input.find('>').unwrap()];
            if tag.contains(r#"type="hidden""#) {
                continue;
            }
            let id = attr_value(tag, "id").unwrap_or_else(|| panic!("{name}: input without id"));
            assert!(
                body.contains(&format!(r#"<label for="{id}">"#)),
                "{name}: no label for #{id}"
            );
            assert!(
                tag.contains("autocomplete="),
                "{name}: #{id} without autocomplete"
            );
        }
    }
}

#[test]
fn pages_name_their_script_entry_and_the_ids_the_script_and_browser_tests_use() {
    let config = config(true);
    let expect = [
        (
            sign_in_page(&config, None),
            "sign-in",
            &[
                "email",
                "password",
                "password-submit",
                "link-email",
                "link-submit",
            ][..],
        ),
        (
            sign_up_page(&config),
            "sign-up",
            &[
                "signup-email",
                "signup-name",
                "signup-password",
                "signup-submit",
            ],
        ),
        (
            code_page(&config, None),
            "code",
            &["code-email", "code", "code-submit", "code-intro"],
        ),
        (
            account_page(&config),
            "account",
            &[
                "account-email",
                "sessions",
                "logout",
                "logout-all",
                "loading",
                "account",
            ],
        ),
        (
            link_page(&config, Some(&preview(Purpose::Login)), "t"),
            "link",
            &["link-confirm", "link-confirm-submit"],
        ),
    ];
    for (page, data_page, ids) in expect {
        let body = html(&page);
        assert!(
            body.contains(&format!(r#"<body data-page="{data_page}""#)),
            "{data_page}"
        );
        for id in ids {
            assert!(
                body.contains(&format!(r#"id="{id}""#)),
                "{data_page}: #{id}"
            );
        }
    }
    let sign_in = html(&sign_in_page(&config, None));
    assert!(sign_in.contains(r#"autocomplete="current-password""#));
    assert!(html(&sign_up_page(&config)).contains(r#"autocomplete="new-password""#));
    let code = html(&code_page(&config, None));
    assert!(
        code.contains(r#"autocomplete="one-time-code""#) && code.contains(r#"inputmode="numeric""#)
    );
}

#[test]
fn link_page_is_200_with_a_post_form_for_a_live_link_and_404_otherwise() {
    let config = config(false);
    let token = r#"abc"><script>x</script>'&"#;

    let live = link_page(&config, Some(&preview(Purpose::Login)), token);
    assert_eq!(live.status, 200);
    let body = html(&live);
    assert!(body
        .contains(r#"<form id="link-confirm" method="post" action="/v1/auth/magic-link/verify">"#));
    assert!(body.contains(
        r#"<input type="hidden" name="token" value="abc&quot;&gt;&lt;script&gt;x&lt;/script&gt;&#39;&amp;">"#
    ));
    assert!(body.contains(r#"<button id="link-confirm-submit" type="submit">Sign in</button>"#));
    assert!(
        body.contains("&lt;script&gt;&quot;&#39;&amp;@x.example"),
        "the email, escaped"
    );
    assert!(!body.contains(HOSTILE) && !body.contains(token));

    let verify = html(&link_page(
        &config,
        Some(&preview(Purpose::VerifyEmail)),
        "t",
    ));
    assert!(verify.contains(">Confirm email address</button>"));
    assert!(verify.contains("&lt;script&gt;&quot;&#39;&amp;@x.example"));
    assert!(!verify.contains(HOSTILE));

    let dead = link_page(&config, None, token);
    assert_eq!(dead.status, 404);
    let body = html(&dead);
    assert!(body.contains("invalid or has expired"));
    assert!(
        !body.contains("<form"),
        "a dead link offers nothing to submit"
    );
    assert!(!body.contains("abc"), "the token is not echoed");

    let refused = link_refused_page(&config);
    assert_eq!(refused.status, 401);
    assert!(html(&refused).contains("cannot be used in this browser"));
}

#[test]
fn interpolated_values_are_escaped() {
    let config = config(false);
    let code = html(&code_page(&config, Some(HOSTILE)));
    assert!(code.contains(r#"value="&lt;script&gt;&quot;&#39;&amp;@x.example""#));
    assert!(!code.contains(HOSTILE));

    // The caller checks redirect_to against the allow-list, but the page escapes it regardless.
    let sign_in = html(&sign_in_page(
        &config,
        Some(r#"https://app.example/dash?a="><b>&'"#),
    ));
    assert!(sign_in.contains(
        r#"<body data-page="sign-in" data-redirect-to="https://app.example/dash?a=&quot;&gt;&lt;b&gt;&amp;&#39;">"#
    ));
    assert!(!html(&sign_in_page(&config, None)).contains("data-redirect-to"));
}

#[test]
fn sign_up_link_only_when_sign_up_is_open() {
    assert!(html(&sign_in_page(&config(true), None)).contains(r#"href="/signup""#));
    assert!(!html(&sign_in_page(&config(false), None)).contains("/signup"));
}

#[test]
fn assets_are_the_script_and_stylesheet_and_nothing_else() {
    let js = asset("app.js").expect("app.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header_value("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        js.header_value("cache-control"),
        Some("public, max-age=300")
    );
    assert_eq!(js.header_value("x-content-type-options"), Some("nosniff"));
    let script = String::from_utf8(js.body).unwrap();
    assert!(script.contains("data-page") || script.contains("dataset.page"));
    assert!(
        !script.contains("innerHTML"),
        "data goes in with textContent only"
    );

    let css = asset("app.css").expect("app.css");
    assert_eq!(
        css.header_value("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        css.header_value("cache-control"),
        Some("public, max-age=300")
    );
    assert!(String::from_utf8(css.body)
        .unwrap()
        .contains(":focus-visible"));

    for name in [
        "",
        "app",
        "APP.JS",
        "app.js/",
        "./app.js",
        "../Cargo.toml",
        "../src/pages.rs",
        "%2e%2e/Cargo.toml",
        "pages/app.js",
    ] {
        assert!(asset(name).is_none(), "{name:?}");
    }
}

/// Whether `html` has an attribute named `on...=` (an inline event handler).
fn has_event_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    })
}

fn attr_value<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}
