//! Small hand-written wire-format helpers that replace crates in the `.wasm` (for its size) must
//! answer exactly as those crates did; the crates stay here, as dev-dependencies, to compare with.

use edgeauth::http::split_url;

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
