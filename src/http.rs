//! HTTP as the domain sees it: a request and response that need no runtime, JSON bodies with size and
//! content-type checks, cookies, and the client facts (IP, user agent) we record.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::de::StrRead;

use crate::error::ApiError;

/// Request bodies above this are refused before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Request headers above this size in all (names and values) are refused.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// A single `Cookie` or `Authorization` header above this size is refused: our own cookies and
/// credentials are far smaller (an access token is refused above 8 KiB anyway).
pub const MAX_CREDENTIAL_HEADER_BYTES: usize = 8 * 1024;

/// Refuses absurd request headers before anything reads them: more than [`MAX_HEADER_BYTES`] in
/// all, or a `Cookie` or `Authorization` header over [`MAX_CREDENTIAL_HEADER_BYTES`]. The answer is
/// a `400 invalid_request` naming the header (no new error code: it is a malformed request).
/// `headers` have lower-case names, as in [`HttpRequest::headers`].
pub fn check_header_sizes(headers: &[(String, String)]) -> Result<(), ApiError> {
    let mut total = 0usize;
    for (name, value) in headers {
        if matches!(name.as_str(), "cookie" | "authorization")
            && value.len() > MAX_CREDENTIAL_HEADER_BYTES
        {
            let message = format!("the {name} header exceeds 8 KiB");
            return Err(ApiError::invalid(None, &message));
        }
        // Name, value, ": " and CRLF, as on the wire.
        total = total.saturating_add(name.len() + value.len() + 4);
    }
    if total > MAX_HEADER_BYTES {
        return Err(ApiError::invalid(None, "request headers exceed 32 KiB"));
    }
    Ok(())
}

/// Cookie that carries the access token.
pub const ACCESS_COOKIE: &str = "__Host-edgeauth-access";
/// Cookie that carries the refresh token.
pub const REFRESH_COOKIE: &str = "__Host-edgeauth-refresh";
/// Cookie that binds magic-link attempts to the browser that asked for them.
pub const LINK_COOKIE: &str = "__Host-edgeauth-link";

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD (answered like GET, without a body)
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// Anything else
    Other,
}

impl Method {
    /// Parses a method name.
    pub fn parse(name: &str) -> Method {
        match name.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    /// Whether the method changes state (and so needs the CSRF check when cookie-authenticated).
    pub fn is_state_changing(self) -> bool {
        !matches!(self, Method::Get | Method::Head | Method::Options)
    }
}

/// An incoming request.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// Path, without query.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body bytes (already capped at [`MAX_BODY_BYTES`] by the caller).
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request with no headers and no body (tests and internal use).
    pub fn new(method: Method, path: &str) -> Self {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (path.to_owned(), None),
        };
        HttpRequest {
            method,
            path,
            query,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Sets a JSON body and its content type (builder style).
    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = body.to_string().into_bytes();
        self.header("content-type", "application/json")
    }

    /// The first value of a header.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a cookie, if sent: the first `name=value` pair of the `Cookie` header(s) with
    /// this name, both trimmed, the value as sent (no quote stripping, no percent-decoding).
    ///
    /// Hand-written rather than the `cookie` crate's `split_parse` (whose date parsing pulled the
    /// `time` crate into the `.wasm`); it answers exactly as `split_parse` did (host test
    /// `cookie_lookup_agrees_with_the_cookie_crate`).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .map(|(n, v)| (n.trim(), v.trim()))
            .find(|(n, _)| !n.is_empty() && *n == name)
            .map(|(_, v)| v.to_owned())
    }

    /// The bearer credential of the `Authorization` header, if any.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header_value("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }

    /// The client's IP. Only `CF-Connecting-IP` is trusted: Cloudflare sets it and clients cannot;
    /// `X-Forwarded-For` is client-controlled and ignored.
    pub fn client_ip(&self) -> Option<String> {
        self.header_value("cf-connecting-ip")
            .map(|ip| ip.chars().take(64).collect())
    }

    /// The user agent, truncated for storage.
    pub fn user_agent(&self) -> Option<String> {
        self.header_value("user-agent")
            .map(|ua| ua.chars().take(512).collect())
    }

    /// Decodes a JSON body into `T`. An empty body decodes as `{}` so all-optional bodies may be
    /// omitted. Errors name the offending field.
    pub fn json_body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        if self.body.is_empty() {
            return decode_json(b"{}");
        }
        if !self.has_content_type("application/json") {
            return Err(ApiError::UnsupportedMediaType);
        }
        // Every body is an object: serde would also read a struct from an array (`[]` as an
        // all-optional body), which no client means.
        let first = self
            .body
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first != Some(&b'{') {
            return Err(ApiError::invalid(
                None,
                "request body must be a JSON object",
            ));
        }
        decode_json(&self.body)
    }

    /// For routes that take no body: nothing, or an empty JSON object (`{}`), else the same `400`,
    /// `413` or `415` as any body route.
    pub fn expect_no_body(&self) -> Result<(), ApiError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Empty {}
        self.json_body::<Empty>().map(|_| ())
    }

    /// The percent-decoded value of query parameter `name` (the first one, if repeated). `None` when
    /// absent or not valid UTF-8 after decoding.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .as_deref()?
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(key, _)| percent_decode(key).as_deref() == Some(name))
            .and_then(|(_, value)| percent_decode(value))
    }

    /// Decodes an `application/x-www-form-urlencoded` body (what an HTML form posts) into its
    /// fields, in order. A broken escape, invalid UTF-8 or a repeated field is a `400`, so a value
    /// is never silently chosen from two.
    pub fn form_fields(&self) -> Result<Vec<(String, String)>, ApiError> {
        if self.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        if !self.has_content_type("application/x-www-form-urlencoded") {
            return Err(ApiError::UnsupportedMediaType);
        }
        let text = std::str::from_utf8(&self.body)
            .map_err(|_| ApiError::invalid(None, "form body is not valid UTF-8"))?;
        let mut fields: Vec<(String, String)> = Vec::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || ApiError::invalid(None, "form body is not valid url-encoding");
            let name = percent_decode(raw_name).ok_or_else(bad)?;
            let value = percent_decode(raw_value).ok_or_else(bad)?;
            if fields.iter().any(|(n, _)| *n == name) {
                return Err(ApiError::invalid(Some(&name), "field given more than once"));
            }
            fields.push((name, value));
        }
        Ok(fields)
    }

    /// Whether the `Content-Type` is `mime` (parameters such as charset ignored).
    pub fn has_content_type(&self, mime: &str) -> bool {
        self.header_value("content-type")
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
    }
}

/// The path and raw query of an absolute `http(s)` URL as the runtime serialises a request's URL
/// (WHATWG: authority percent-encoded, path at least `/`); `None` if it has no `scheme://`.
///
/// We split the string instead of parsing it with the `url` crate: the runtime has already parsed
/// and normalised it, and `url` (with its IDNA and Unicode tables) cost ~25 KB of gzip in the
/// `.wasm` for this one call. For every already serialised URL the answer equals `url`'s
/// `path()` and `query()` (host test `split_url_agrees_with_the_url_crate`).
pub fn split_url(url: &str) -> Option<(&str, Option<&str>)> {
    let (_scheme, rest) = url.split_once("://")?;
    // The authority ends at the first `/`, `?` or `#`: none can appear inside it unescaped.
    let start = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let rest = &rest[start..];
    let rest = rest
        .split_once('#')
        .map_or(rest, |(before, _fragment)| before);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    // A special URL always has a path; its serialisation has at least `/`.
    Some((if path.is_empty() { "/" } else { path }, query))
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space); `None` on a broken escape or
/// invalid UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                // Exactly two hex digits: `from_str_radix` alone would also take a sign (`%+1`).
                let hi = char::from(*bytes.get(i + 1)?).to_digit(16)?;
                let lo = char::from(*bytes.get(i + 2)?).to_digit(16)?;
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

/// Decodes JSON into `T`, reporting the path of the offending field.
///
/// Only the deserialisation itself is generic: there is one copy of this function per body type
/// (about twenty), so the rest lives in the non-generic helpers below, each kept out of line once.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = json_deserializer(bytes)?;
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    json_end(&mut de)?;
    Ok(value)
}

#[inline(never)]
fn json_deserializer(bytes: &[u8]) -> Result<serde_json::Deserializer<StrRead<'_>>, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::invalid(None, "request body is not valid UTF-8"))?;
    Ok(serde_json::Deserializer::from_str(text))
}

#[inline(never)]
fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let message = match inner.classify() {
        serde_json::error::Category::Data => inner.to_string(),
        _ => "request body is not valid JSON".to_owned(),
    };
    // serde reports a missing or unknown field at the parent's path; name it from the message.
    let field = field_from_message(&message).or(if path == "." { None } else { Some(path) });
    ApiError::invalid(field.as_deref(), &strip_position(&message))
}

#[inline(never)]
fn json_end(de: &mut serde_json::Deserializer<StrRead<'_>>) -> Result<(), ApiError> {
    de.end()
        .map_err(|_| ApiError::invalid(None, "trailing characters after the JSON body"))
}

fn field_from_message(message: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

/// serde_json appends " at line L column C"; the client needs the reason, not our parser's position.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// An outgoing response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers; `set-cookie` may repeat.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A JSON response.
    pub fn json<T: Serialize>(status: u16, body: &T) -> Self {
        HttpResponse {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            // Serialising our own plain structs cannot fail.
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    /// `204 No Content`.
    pub fn no_content() -> Self {
        HttpResponse {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets or replaces a header.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// The first value of a header.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie` value.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body parsed as JSON (tests).
    pub fn json_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Escapes text for HTML element content and (double- or single-quoted) attribute values: the one
/// escaper of the pages and the mails.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The `SameSite` attribute of a cookie we set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Also sent with top-level cross-site navigations (a magic link opened from a mail).
    Lax,
}

/// A `__Host-` cookie as design.md requires: HttpOnly, Secure, Path=/, no Domain.
///
/// The attributes are in the order the `cookie` crate wrote them (host test
/// `host_cookie_agrees_with_the_cookie_crate`): written by hand, since that crate's `Expires`
/// formatting pulled the `time` crate into the `.wasm`.
pub fn host_cookie(name: &str, value: &str, same_site: SameSite, max_age_seconds: i64) -> String {
    let same_site = match same_site {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
    };
    let max_age = max_age_seconds.max(0);
    format!("{name}={value}; HttpOnly; SameSite={same_site}; Secure; Path=/; Max-Age={max_age}")
}

/// A `Set-Cookie` that deletes a `__Host-` cookie.
pub fn clear_cookie(name: &str, same_site: SameSite) -> String {
    host_cookie(name, "", same_site, 0)
}
