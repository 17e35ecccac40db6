//! Cookie and bearer parsing: an `HttpRequest` whose `Cookie` header(s) and `Authorization` header
//! come from the input (newline-separated: cookie header, a second cookie header, authorization,
//! a cookie name to look up), then `.cookie(name)` for our three cookies and the fuzzed name, and
//! `.bearer()`. Must never panic; what comes back must be a plausible piece of the header.
#![no_main]

use edgeauth::http::{HttpRequest, Method, ACCESS_COOKIE, LINK_COOKIE, REFRESH_COOKIE};
use edgeauth_fuzz::{fields, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parts: Vec<String> = fields(data, b'\n', 4).into_iter().map(text).collect();
    let (cookie, cookie2, authorization, name) = (&parts[0], &parts[1], &parts[2], &parts[3]);
    let mut request = HttpRequest::new(Method::Get, "/v1/me")
        .header("Cookie", cookie)
        .header("authorization", authorization);
    if !cookie2.is_empty() {
        request = request.header("cookie", cookie2);
    }

    for name in [ACCESS_COOKIE, REFRESH_COOKIE, LINK_COOKIE, name.as_str()] {
        if let Some(value) = request.cookie(name) {
            assert!(!value.contains(';'), "cookie value {value:?} spans a `;`");
            assert!(
                cookie.contains(&value) || cookie2.contains(&value),
                "cookie value {value:?} is not in the header"
            );
        }
    }

    if let Some(token) = request.bearer() {
        assert!(!token.is_empty());
        assert_eq!(token, token.trim());
        assert!(authorization.contains(token));
        assert!(authorization[..7].eq_ignore_ascii_case("bearer "));
    }
});
