//! Form bodies and percent-decoding: `HttpRequest::form_fields` (the HTML pages' POSTs) over an
//! arbitrary body, `http::percent_decode` and `HttpRequest::query_param` over the same text. Must
//! never panic; `percent_decode` must agree with a plain reference decoder (`%` and exactly two
//! hex digits, `+` is a space, UTF-8 after decoding), and the fields must be distinct and decoded.
#![no_main]

use edgeauth::http::{percent_decode, HttpRequest, Method};
use edgeauth_fuzz::text;
use libfuzzer_sys::fuzz_target;

/// application/x-www-form-urlencoded decoding, written out plainly.
fn reference_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = (*bytes.get(i + 1)? as char).to_digit(16)?;
                let lo = (*bytes.get(i + 2)? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fuzz_target!(|data: &[u8]| {
    let body = text(data);
    assert_eq!(
        percent_decode(&body),
        reference_decode(&body),
        "percent_decode disagrees with the reference on {body:?}"
    );

    let mut request = HttpRequest::new(Method::Post, "/login")
        .header("content-type", "application/x-www-form-urlencoded");
    request.body = data.to_vec();
    if let Ok(fields) = request.form_fields() {
        assert!(std::str::from_utf8(data).is_ok());
        for (i, (name, _)) in fields.iter().enumerate() {
            assert!(
                !fields[i + 1..].iter().any(|(n, _)| n == name),
                "{name:?} twice"
            );
        }
        // The same text as a query string: query_param finds each (non-empty) name's one value.
        let query = HttpRequest::new(Method::Get, &format!("/?{body}"));
        for (name, value) in fields.iter().filter(|(name, _)| !name.is_empty()) {
            assert_eq!(query.query_param(name).as_ref(), Some(value));
        }
    }
    let query = HttpRequest::new(Method::Get, &format!("/?{body}"));
    let _ = query.query_param("email");
});
