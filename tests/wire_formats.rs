//! Small hand-written wire-format helpers that replace crates in the `.wasm` (for its size) must
//! answer exactly as those crates did; the crates stay here, as dev-dependencies, to compare with.

use edgeauth::http::{clear_cookie, host_cookie, split_url, HttpRequest, Method, SameSite};

/// Every combination of a few awkward authorities, paths, queries and fragments, as the runtime
/// would hand them over: serialised by a WHATWG parser (the `url` crate here).
fn serialised_urls() -> Vec<url::Url> {
    let authorities = [
        "http://example.com",
        "https://auth.example.com:8443",
        "http://127.0.0.1:8787",
        "http://[::1]:8787",
        "https://user:p%40ss@example.com",
        "https://xn--bcher-kva.example",
        "https://bücher.example",
        "HTTPS://EXAMPLE.COM:443",
    ];
    let paths = [
        "",
        "/",
        "/v1/verify",
        "/v1/users/abc/",
        "//double//slashes",
        "/a/./b/../c",
        "/%7Euser/%2F/caf%C3%A9",
        "/café space",
        "/v1/auth/magic/confirm;x=1",
        "/a:b@c",
    ];
    let queries = [
        "",
        "?",
        "?token=abc&redirect_to=https%3A%2F%2Fapp.example%2F",
        "?a=1?b=2",
        "?q=é ü&x=/y",
        "??",
    ];
    let fragments = ["", "#", "#frag?x=1"];
    let mut urls = Vec::new();
    for authority in authorities {
        for path in paths {
            for query in queries {
                for fragment in fragments {
                    let text = format!("{authority}{path}{query}{fragment}");
                    let url = url::Url::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                    urls.push(url);
                }
            }
        }
    }
    urls
}

#[test]
fn split_url_agrees_with_the_url_crate() {
    let urls = serialised_urls();
    assert_eq!(urls.len(), 8 * 10 * 6 * 3);
    for url in urls {
        let serialised = url.as_str();
        assert_eq!(
            split_url(serialised),
            Some((url.path(), url.query())),
            "{serialised}"
        );
    }
    // The shapes that matter most, spelled out.
    assert_eq!(split_url("http://h/v1/me"), Some(("/v1/me", None)));
    assert_eq!(split_url("http://h/?"), Some(("/", Some(""))));
    assert_eq!(split_url("http://h:1?a=b"), Some(("/", Some("a=b"))));
    assert_eq!(split_url("https://h/p?q=1#f"), Some(("/p", Some("q=1"))));
    assert_eq!(split_url("no scheme"), None);
}

/// What `HttpRequest::cookie` answered when it was built on `cookie::Cookie::split_parse`.
fn cookie_crate_lookup(headers: &[&str], name: &str) -> Option<String> {
    headers
        .iter()
        .flat_map(|v| cookie::Cookie::split_parse(*v).filter_map(Result::ok))
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

#[test]
fn cookie_lookup_agrees_with_the_cookie_crate() {
    let pieces = [
        "",
        " ",
        ";",
        "a=1",
        "a = 1 ",
        "a=",
        "=a",
        "a",
        "a==b",
        "a=\"quoted\"",
        "a=x%20y",
        "\u{a0}a=1\u{a0}",
        "__Host-edgeauth-access=tok.en",
        " __Host-edgeauth-access=other",
        "__Host-edgeauth-accessX=no",
        "__host-edgeauth-access=case",
        "__Host-edgeauth-refresh=r; Path=/",
        "__Host-edgeauth-link=l;HttpOnly",
        "b=2;;c=3",
        "d=é;e=\t4\t",
    ];
    let names = [
        "a",
        "b",
        "c",
        "d",
        "e",
        "",
        "Path",
        "HttpOnly",
        edgeauth::http::ACCESS_COOKIE,
        edgeauth::http::REFRESH_COOKIE,
        edgeauth::http::LINK_COOKIE,
    ];
    let mut checked = 0;
    for first in pieces {
        for second in pieces {
            let joined = format!("{first};{second}");
            for headers in [vec![joined.as_str()], vec![first, second]] {
                let mut request = HttpRequest::new(Method::Get, "/v1/me");
                for value in &headers {
                    request = request.header("Cookie", value);
                }
                for name in names {
                    assert_eq!(
                        request.cookie(name),
                        cookie_crate_lookup(&headers, name),
                        "{headers:?} {name}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 20 * 20 * 2 * 11);
    // And it does find what it should.
    let request = HttpRequest::new(Method::Get, "/").header("cookie", "x=1; a = 2 ;a=3");
    assert_eq!(request.cookie("a").as_deref(), Some("2"));
}

#[test]
fn host_cookie_agrees_with_the_cookie_crate() {
    for (same_site, theirs) in [
        (SameSite::Strict, cookie::SameSite::Strict),
        (SameSite::Lax, cookie::SameSite::Lax),
    ] {
        for max_age in [i64::MIN, -1, 0, 1, 600, 1_209_600, i64::MAX] {
            for (name, value) in [("__Host-edgeauth-access", "a.b.c"), ("n", "")] {
                let expected = cookie::Cookie::build((name, value))
                    .http_only(true)
                    .secure(true)
                    .path("/")
                    .same_site(theirs)
                    .max_age(cookie::time::Duration::seconds(max_age.max(0)))
                    .build()
                    .to_string();
                assert_eq!(host_cookie(name, value, same_site, max_age), expected);
            }
            assert_eq!(
                clear_cookie("n", same_site),
                host_cookie("n", "", same_site, 0)
            );
        }
    }
    assert_eq!(
        host_cookie("n", "v", SameSite::Lax, 600),
        "n=v; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=600"
    );
}

/// `decode_json`'s refusals: the field named where serde knows it, serde's reason without its
/// position, and our own words for what is not JSON at all.
#[test]
fn decode_json_names_the_field_and_the_reason() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        inner: Option<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }
    let refusal = |body: &[u8]| {
        let error = edgeauth::http::decode_json::<Body>(body)
            .unwrap_err()
            .to_response()
            .json_value()["error"]
            .clone();
        (
            error["field"].clone(),
            error["message"].as_str().unwrap().to_owned(),
        )
    };
    let cases: [(&[u8], serde_json::Value, &str); 6] = [
        (
            br#"{"email": 5}"#,
            "email".into(),
            "invalid type: integer `5`, expected a string",
        ),
        (br#"{}"#, "email".into(), "missing field `email`"),
        (
            br#"{"email": "a", "x": 1}"#,
            "x".into(),
            "unknown field `x`, expected `email` or `inner`",
        ),
        (
            br#"{"email": "a", "inner": {"n": 300}}"#,
            "inner.n".into(),
            "invalid value: integer `300`, expected u8",
        ),
        (
            b"{\"email\":",
            "email".into(),
            "request body is not valid JSON",
        ),
        (
            b"{\"email\": \"a\"} {}",
            serde_json::Value::Null,
            "trailing characters after the JSON body",
        ),
    ];
    for (body, field, message) in cases {
        assert_eq!(
            refusal(body),
            (field, message.to_owned()),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        refusal(b"{\"email\":\"\xff\"}").1,
        "request body is not valid UTF-8"
    );
}
