//! `redirects::check_redirect`: the input is a candidate `redirect_to` and up to four allow-list
//! entries, one per line. Must never panic. What it accepts must be canonical (checking the result
//! again gives the result), made only of the characters it allows, and, read by the WHATWG URL
//! parser that browsers use, must go to the scheme, host and port of an allow-list entry (as that
//! parser reads the entry) under the entry's path: no parser differential can widen the list.
#![no_main]

use edgeauth::redirects::{allow_entry_problem, check_redirect};
use edgeauth_fuzz::{fields, text};
use libfuzzer_sys::fuzz_target;
use url::Url;

/// Whether `path` lies under `base` on a segment boundary.
fn within(path: &str, base: &str) -> bool {
    base.ends_with('/') && path.starts_with(base)
        || path
            .strip_prefix(base)
            .is_some_and(|after| after.is_empty() || after.starts_with('/'))
}

fuzz_target!(|data: &[u8]| {
    let parts: Vec<String> = fields(data, b'\n', 5).into_iter().map(text).collect();
    let candidate = &parts[0];
    let allowed: Vec<String> = parts[1..]
        .iter()
        .filter(|entry| !entry.is_empty())
        .cloned()
        .collect();
    for entry in &allowed {
        let _ = allow_entry_problem(entry);
    }

    let Ok(canonical) = check_redirect(candidate, &allowed) else {
        return;
    };
    assert_eq!(
        check_redirect(&canonical, &allowed).as_ref(),
        Ok(&canonical),
        "the canonical form is not stable"
    );
    assert!(canonical.starts_with("https://") || canonical.starts_with("http://"));
    assert!(canonical
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"\\\"<>^`{|}".contains(&b)));
    let admitting: Vec<&String> = allowed
        .iter()
        .filter(|entry| allow_entry_problem(entry).is_none())
        .collect();
    assert!(!admitting.is_empty(), "accepted with no valid entry");

    // What a browser does with it. A URL the browser cannot parse goes nowhere: safe.
    let Ok(target) = Url::parse(&canonical) else {
        return;
    };
    assert_eq!(target.username(), "");
    assert_eq!(target.password(), None);
    let admitted = admitting.iter().any(|entry| {
        Url::parse(entry).is_ok_and(|base| {
            base.scheme() == target.scheme()
                && base.host() == target.host()
                && base.port_or_known_default() == target.port_or_known_default()
                && within(target.path(), base.path())
        })
    });
    assert!(
        admitted,
        "the browser reads {canonical:?} as {target} which no entry of {allowed:?} admits"
    );
});
