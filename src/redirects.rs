//! The `redirect_to` allow-list of magic links (design.md section 3).
//!
//! An open redirect on a login flow hands a freshly signed-in browser to an attacker, so the check is
//! deliberately narrow: the candidate must be an absolute `http`/`https` URL whose scheme, host and
//! effective port equal an allow-list entry's exactly, and whose path starts with the entry's path on
//! a segment boundary. The URL is parsed by hand, strictly, and anything a browser or a server might
//! read differently from us (backslashes, userinfo, encoded separators, dot segments, whitespace,
//! non-ASCII) is refused rather than normalised, so there is no parser differential to exploit.

use std::fmt;

/// Longest accepted `redirect_to`, in bytes: generous for real URLs, small enough for a header.
pub const MAX_REDIRECT_LEN: usize = 2048;

/// Why a `redirect_to` was refused. Every variant maps to `400 invalid_request` on `redirect_to`;
/// the variants exist for logs and tests, not for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectError {
    /// Longer than [`MAX_REDIRECT_LEN`].
    TooLong,
    /// A character that has no business in a URL we emit: a backslash (browsers read it as `/`),
    /// a control character, whitespace, non-ASCII, or one of `"<>^`{|}`.
    ForbiddenCharacter,
    /// A `%` not followed by two hex digits.
    BadPercentEncoding,
    /// Not an absolute URL: relative, protocol-relative (`//host`), or `scheme:` without `//`.
    NotAbsolute,
    /// A scheme other than `http` or `https` (`javascript:`, `data:`, ...).
    UnsupportedScheme,
    /// Userinfo (`user@host`) in the authority: it makes `https://app.example@evil.example` look
    /// like our host while going to another.
    Userinfo,
    /// An empty or malformed host (only ASCII letters, digits, `-` and `.`-separated non-empty
    /// labels; no IP-literal brackets, no percent-encoding).
    InvalidHost,
    /// A port that is empty, not a number, or outside 1-65535.
    InvalidPort,
    /// `%2e`, `%2f` or `%5c` in the path: an encoded dot or separator that a server may decode
    /// after our prefix check and so climb out of the allowed path.
    EncodedSeparator,
    /// A `.` or `..` path segment, which would resolve outside the checked prefix.
    DotSegment,
    /// An empty path segment (`//`), which some applications turn into a protocol-relative URL.
    EmptySegment,
    /// Well-formed, but no allow-list entry matches its scheme, host, port and path prefix.
    NotAllowed,
}

impl fmt::Display for RedirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            RedirectError::TooLong => "redirect_to is too long",
            RedirectError::ForbiddenCharacter => "redirect_to contains a forbidden character",
            RedirectError::BadPercentEncoding => "redirect_to has malformed percent-encoding",
            RedirectError::NotAbsolute => "redirect_to must be an absolute http(s) URL",
            RedirectError::UnsupportedScheme => "redirect_to must use http or https",
            RedirectError::Userinfo => "redirect_to must not contain userinfo",
            RedirectError::InvalidHost => "redirect_to has an invalid host",
            RedirectError::InvalidPort => "redirect_to has an invalid port",
            RedirectError::EncodedSeparator => "redirect_to path has an encoded dot or slash",
            RedirectError::DotSegment => "redirect_to path has a dot segment",
            RedirectError::EmptySegment => "redirect_to path has an empty segment",
            RedirectError::NotAllowed => "redirect_to is not in the allowed list",
        };
        f.write_str(text)
    }
}

impl std::error::Error for RedirectError {}

/// Checks `candidate` against the allow-list and returns it in canonical form (lower-case scheme and
/// host, default port dropped, empty path as `/`), which is what the caller should store and
/// redirect to, so the URL used is exactly the URL checked.
///
/// An allow-list entry that does not itself parse, or carries a query or fragment, matches nothing:
/// a misconfigured entry must not widen the list.
pub fn check_redirect(candidate: &str, allowed: &[String]) -> Result<String, RedirectError> {
    let url = parse(candidate)?;
    let admitted = allowed.iter().any(|entry| {
        parse(entry).is_ok_and(|base| {
            base.rest.is_empty()
                && base.scheme == url.scheme
                && base.host == url.host
                && base.port == url.port
                && path_within(url.path, base.path)
        })
    });
    if admitted {
        Ok(url.canonical())
    } else {
        Err(RedirectError::NotAllowed)
    }
}

/// Why `entry` cannot be an allow-list entry, or `None` if it can: an absolute http(s) URL that passes
/// every rule a candidate must pass, without query or fragment. Config checks each entry with this,
/// so a typo is a startup error instead of an entry that silently matches nothing.
pub fn allow_entry_problem(entry: &str) -> Option<String> {
    match parse(entry) {
        Err(error) => Some(error.to_string().replacen("redirect_to", "entry", 1)),
        Ok(url) if !url.rest.is_empty() => Some("entry must not have a query or fragment".into()),
        Ok(_) => None,
    }
}

/// Whether `path` lies under `base` on a segment boundary: `/dash` admits `/dash` and `/dash/x` but
/// not `/dashboard`; `/dash/` and `/` admit everything below them.
fn path_within(path: &str, base: &str) -> bool {
    if base.ends_with('/') {
        path.starts_with(base)
    } else {
        path.strip_prefix(base)
            .is_some_and(|after| after.is_empty() || after.starts_with('/'))
    }
}

/// A URL that passed every syntactic rule.
struct ParsedUrl<'a> {
    scheme: &'static str,
    host: String,
    /// The effective port (the scheme's default when none was written).
    port: u16,
    /// Never empty; starts with `/`.
    path: &'a str,
    /// `?query` and/or `#fragment`, verbatim (possibly empty).
    rest: &'a str,
}

impl ParsedUrl<'_> {
    fn canonical(&self) -> String {
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        let port = if self.port == default_port {
            String::new()
        } else {
            format!(":{}", self.port)
        };
        format!(
            "{}://{}{port}{}{}",
            self.scheme, self.host, self.path, self.rest
        )
    }
}

fn parse(input: &str) -> Result<ParsedUrl<'_>, RedirectError> {
    if input.len() > MAX_REDIRECT_LEN {
        return Err(RedirectError::TooLong);
    }
    // Characters are checked over the whole input first, so no later step has to think about them.
    if input.chars().any(|c| {
        !c.is_ascii()
            || c.is_ascii_control()
            || c.is_ascii_whitespace()
            || "\\\"<>^`{|}".contains(c)
    }) {
        return Err(RedirectError::ForbiddenCharacter);
    }
    let bytes = input.as_bytes();
    for (i, _) in input.match_indices('%') {
        let hex_pair = bytes.get(i + 1..i + 3);
        if !hex_pair.is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit)) {
            return Err(RedirectError::BadPercentEncoding);
        }
    }

    let (scheme, rest) = input.split_once(':').ok_or(RedirectError::NotAbsolute)?;
    // RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). Anything else before the first `:` means
    // there is no scheme at all (a relative reference such as `/a:b`).
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !is_scheme {
        return Err(RedirectError::NotAbsolute);
    }
    let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "https" => ("https", 443),
        "http" => ("http", 80),
        _ => return Err(RedirectError::UnsupportedScheme),
    };
    let after_slashes = rest.strip_prefix("//").ok_or(RedirectError::NotAbsolute)?;

    // With backslashes refused above, the authority ends where WHATWG and RFC 3986 agree it does.
    let authority_end = after_slashes
        .find(['/', '?', '#'])
        .unwrap_or(after_slashes.len());
    let (authority, tail) = after_slashes.split_at(authority_end);
    if authority.contains('@') {
        return Err(RedirectError::Userinfo);
    }
    // No IP-literal brackets: nobody needs `[::1]` in a redirect allow-list, and `:` inside them
    // would confuse the port split.
    if authority.contains(['[', ']']) {
        return Err(RedirectError::InvalidHost);
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, parse_port(port)?),
        None => (authority, default_port),
    };
    let host = host.to_ascii_lowercase();
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !host_ok {
        return Err(RedirectError::InvalidHost);
    }

    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, rest) = tail.split_at(path_end);
    let path = if path.is_empty() { "/" } else { path };
    check_path(path)?;

    Ok(ParsedUrl {
        scheme,
        host,
        port,
        path,
        rest,
    })
}

fn parse_port(text: &str) -> Result<u16, RedirectError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RedirectError::InvalidPort);
    }
    match text.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(RedirectError::InvalidPort),
    }
}

/// The path rules: nothing that resolves, once decoded or normalised by someone else, to a place
/// other than where the prefix check saw it.
fn check_path(path: &str) -> Result<(), RedirectError> {
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"].iter().any(|enc| lower.contains(enc)) {
        return Err(RedirectError::EncodedSeparator);
    }
    // `path` starts with `/`; a trailing `/` leaves one empty last segment, which is fine.
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if *segment == "." || *segment == ".." {
            return Err(RedirectError::DotSegment);
        }
        if segment.is_empty() && i != last {
            return Err(RedirectError::EmptySegment);
        }
    }
    Ok(())
}
