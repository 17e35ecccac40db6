//! The per-isolate cache of revocation-flag reads (src/flag_cache.rs) and the concurrent reads of
//! `flags::is_access_revoked`: what is served from the cache and for how long, what always reaches
//! the store, the bound on its size, and logout through an app seen at once.

mod common;

use std::cell::Cell;

use common::*;
use edgeauth::config::ConfigError;
use edgeauth::flag_cache::{CachedFlags, MAX_ENTRIES};
use edgeauth::flags;
use edgeauth::store::{BackendError, FlagStore};
use serde_json::json;

const TTL: i64 = 10;
/// The age (seconds) from which an entry is refreshed: the last fifth of [`TTL`].
const REFRESH_FROM: i64 = 8;
const SID: &str = "session-1";
const UID: &str = "user-1";

fn session_key(sid: &str) -> String {
    format!("revoked:session:{sid}")
}

fn user_key(uid: &str) -> String {
    format!("revoked:user:{uid}")
}

/// A fresh cache of [`TTL`] seconds over an empty store, and its clock at [`T0`].
fn fixture(ttl: i64) -> (CachedFlags<MemoryFlags>, TestClock) {
    let clock = TestClock(std::rc::Rc::new(Cell::new(T0)));
    (cached_flags(&clock, ttl), clock)
}

fn reads(flags: &CachedFlags<MemoryFlags>) -> u64 {
    flags.inner().reads.get()
}

/// What another isolate's revocation looks like from here: the store has it, this cache does not.
fn write_behind_the_cache(flags: &CachedFlags<MemoryFlags>, key: &str, value: &str) {
    flags
        .inner()
        .values
        .borrow_mut()
        .insert(key.to_owned(), (value.to_owned(), 670));
}

/// `is_access_revoked` for a token of [`SID`] / [`UID`] issued at `issued_at`.
fn revoked<F: FlagStore>(flags: &F, issued_at: i64) -> bool {
    block_on(flags::is_access_revoked(flags, SID, UID, issued_at)).expect("flags readable")
}

#[test]
fn a_second_read_before_the_refresh_age_does_not_reach_the_store() {
    let (flags, clock) = fixture(TTL);
    assert!(!revoked(&flags, T0));
    assert_eq!(reads(&flags), 2, "the session flag and the user flag");
    clock.advance(REFRESH_FROM - 1);
    assert!(!revoked(&flags, T0));
    assert_eq!(reads(&flags), 2, "both answered from the cache");
}

#[test]
fn in_the_last_fifth_of_the_ttl_one_request_refreshes_while_the_others_are_answered_from_the_entry()
{
    let (flags, clock) = fixture(TTL);
    assert_eq!(block_on(flags.get("k")).unwrap(), None);
    write_behind_the_cache(&flags, "k", "new");
    clock.advance(REFRESH_FROM);
    // Three requests at once; each read yields once, as a KV read in flight does.
    flags.inner().interleave.set(true);
    let (first, second, third) =
        block_on(async { futures::join!(flags.get("k"), flags.get("k"), flags.get("k")) });
    assert_eq!(first.unwrap().as_deref(), Some("new"), "the refresh");
    assert_eq!(second.unwrap(), None, "answered from the entry meanwhile");
    assert_eq!(third.unwrap(), None, "answered from the entry meanwhile");
    assert_eq!(reads(&flags), 2, "one read for the three");
    // The refreshed entry counts from its own read: fresh for another REFRESH_FROM seconds.
    clock.advance(REFRESH_FROM - 1);
    assert_eq!(block_on(flags.get("k")).unwrap().as_deref(), Some("new"));
    assert_eq!(reads(&flags), 2);
}

#[test]
fn a_failed_refresh_is_answered_from_the_entry_and_the_next_request_tries_again() {
    let (flags, clock) = fixture(TTL);
    assert_eq!(block_on(flags.get("k")).unwrap(), None);
    clock.advance(REFRESH_FROM);
    flags.inner().fail.set(true);
    assert_eq!(
        block_on(flags.get("k")),
        Ok(None),
        "the entry is still within its TTL"
    );
    assert_eq!(reads(&flags), 2, "the refresh was tried");
    flags.inner().fail.set(false);
    write_behind_the_cache(&flags, "k", "new");
    assert_eq!(block_on(flags.get("k")).unwrap().as_deref(), Some("new"));
    assert_eq!(reads(&flags), 3, "and tried again by the next request");
    // Past the TTL a failure is an error again, as without the cache.
    clock.advance(TTL);
    flags.inner().fail.set(true);
    assert!(block_on(flags.get("k")).is_err());
}

#[test]
fn a_refresh_abandoned_mid_read_lets_the_next_request_refresh() {
    let (flags, clock) = fixture(TTL);
    assert_eq!(block_on(flags.get("k")).unwrap(), None);
    clock.advance(REFRESH_FROM);
    flags.inner().interleave.set(true);
    // Polled once, the refresh is waiting on its read; then the request is cancelled.
    assert!(futures::FutureExt::now_or_never(flags.get("k")).is_none());
    assert_eq!(reads(&flags), 2);
    write_behind_the_cache(&flags, "k", "new");
    assert_eq!(block_on(flags.get("k")).unwrap().as_deref(), Some("new"));
    assert_eq!(reads(&flags), 3, "the next request refreshed");
}

#[test]
fn a_read_after_the_ttl_reaches_the_store_again() {
    let (flags, clock) = fixture(TTL);
    assert_eq!(block_on(flags.get("k")).unwrap(), None);
    assert_eq!(reads(&flags), 1);
    clock.advance(TTL);
    assert_eq!(block_on(flags.get("k")).unwrap(), None);
    assert_eq!(reads(&flags), 2, "an entry TTL seconds old is not served");
    assert_eq!(block_on(flags.get("k")).unwrap(), None);
    assert_eq!(reads(&flags), 2, "the new read is kept in turn");
}

#[test]
fn a_revocation_through_the_cache_is_seen_at_once_without_a_read() {
    let (flags, _clock) = fixture(TTL);
    let config = config(&[]);
    assert!(!revoked(&flags, T0), "the negative answer is now cached");
    let before = reads(&flags);
    block_on(flags::revoke_session(&flags, &config, SID, "logout")).unwrap();
    assert!(revoked(&flags, T0), "the very next check says revoked");
    assert_eq!(reads(&flags), before, "from the cache, not the store");
    assert_eq!(
        flags.inner().values.borrow()[&session_key(SID)].0,
        "logout",
        "and the store holds the flag for every other isolate"
    );

    // The same for a user's tokens.
    let other = "session-2";
    assert!(!block_on(flags::is_access_revoked(&flags, other, UID, T0)).unwrap());
    block_on(flags::revoke_user_tokens(&flags, &config, UID, T0)).unwrap();
    let before = reads(&flags);
    assert!(block_on(flags::is_access_revoked(&flags, other, UID, T0)).unwrap());
    assert_eq!(reads(&flags), before);
}

#[test]
fn another_isolates_revocation_is_seen_after_at_most_the_ttl_and_not_before_the_refresh_age() {
    let (flags, clock) = fixture(TTL);
    assert!(!revoked(&flags, T0), "caches the negative answers");
    write_behind_the_cache(&flags, &session_key(SID), "logout");
    // The documented bound: up to FLAG_CACHE_SECONDS after this location's KV shows the flag.
    assert!(!revoked(&flags, T0), "still the cached answer at once");
    clock.advance(REFRESH_FROM - 1);
    assert!(!revoked(&flags, T0), "and before the refresh age");
    clock.advance(TTL - REFRESH_FROM + 1);
    assert!(
        revoked(&flags, T0),
        "seen once the entry is TTL seconds old"
    );

    // With a check in the last fifth of the TTL, it is seen from there.
    let (flags, clock) = fixture(TTL);
    assert!(!revoked(&flags, T0));
    write_behind_the_cache(&flags, &session_key(SID), "logout");
    clock.advance(REFRESH_FROM);
    assert!(revoked(&flags, T0), "the refresh read it");
}

#[test]
fn a_user_flag_revoked_again_later_is_seen_after_the_ttl() {
    // Disabled at T0 (tokens up to T0 revoked), enabled again, a new token at T0 + 100, disabled
    // again by another isolate at T0 + 105: the cached positive entry (T0) must expire too.
    let (flags, clock) = fixture(TTL);
    write_behind_the_cache(&flags, &user_key(UID), &T0.to_string());
    clock.advance(100);
    let issued = clock.now();
    assert!(!revoked(&flags, issued), "issued after the first disable");
    clock.advance(5);
    write_behind_the_cache(&flags, &user_key(UID), &clock.now().to_string());
    assert!(
        !revoked(&flags, issued),
        "the entry read at T0 + 100 is served"
    );
    clock.advance(TTL - 5);
    assert!(
        revoked(&flags, issued),
        "the newer timestamp is read once the entry expires"
    );
}

#[test]
fn a_store_error_is_returned_and_not_cached() {
    let (flags, _clock) = fixture(TTL);
    flags.inner().fail.set(true);
    assert_eq!(
        block_on(flags.get("k")),
        Err(BackendError::Flags("injected failure".into()))
    );
    assert!(
        block_on(flags::is_access_revoked(&flags, SID, UID, T0)).is_err(),
        "unknown revocation state is an error, never \"not revoked\""
    );
    assert!(flags.cache().is_empty(), "nothing kept from a failed read");
    flags.inner().fail.set(false);
    write_behind_the_cache(&flags, &session_key(SID), "logout");
    let before = reads(&flags);
    assert!(revoked(&flags, T0), "the next check reads the store");
    assert_eq!(reads(&flags), before + 2);
}

#[test]
fn a_failed_write_forgets_the_entry() {
    let (flags, _clock) = fixture(TTL);
    let config = config(&[]);
    assert!(!revoked(&flags, T0));
    flags.inner().fail.set(true);
    assert!(block_on(flags::revoke_session(&flags, &config, SID, "logout")).is_err());
    flags.inner().fail.set(false);
    // Whether the store took the value is unknown (here it did not): the next check asks it.
    let before = reads(&flags);
    assert!(!revoked(&flags, T0));
    assert_eq!(reads(&flags), before + 1, "the session flag is read again");
}

#[test]
fn a_ttl_of_zero_reads_the_store_every_time() {
    let (flags, _clock) = fixture(0);
    let config = config(&[]);
    for round in 1..=3 {
        assert!(!revoked(&flags, T0));
        assert_eq!(reads(&flags), 2 * round);
    }
    block_on(flags::revoke_session(&flags, &config, SID, "logout")).unwrap();
    assert!(revoked(&flags, T0));
    assert_eq!(
        reads(&flags),
        8,
        "a revocation is read back from the store too"
    );
    assert!(flags.cache().is_empty(), "nothing is ever kept");
}

#[test]
fn the_cache_never_holds_more_than_its_bound() {
    let (flags, clock) = fixture(TTL);
    for i in 0..MAX_ENTRIES + 500 {
        block_on(flags.get(&session_key(&format!("flood-{i}")))).unwrap();
        assert!(flags.cache().len() <= MAX_ENTRIES, "after {i}");
    }
    assert_eq!(
        flags.cache().len(),
        500,
        "a full cache of fresh entries is cleared, then fills again"
    );

    // When full, expired entries go first and fresh ones stay.
    flags.cache().clear();
    let half = MAX_ENTRIES / 2;
    for i in 0..half {
        block_on(flags.get(&format!("old-{i}"))).unwrap();
    }
    clock.advance(TTL);
    for i in 0..MAX_ENTRIES - half {
        block_on(flags.get(&format!("new-{i}"))).unwrap();
    }
    assert_eq!(flags.cache().len(), MAX_ENTRIES);
    block_on(flags.get("one-more")).unwrap();
    assert_eq!(flags.cache().len(), MAX_ENTRIES - half + 1);
    let before = reads(&flags);
    block_on(flags.get("new-0")).unwrap();
    assert_eq!(reads(&flags), before, "a fresh entry survived");
}

#[test]
fn a_read_in_flight_when_a_revocation_lands_does_not_hide_it() {
    // A verification's KV read is on its way (it saw no flag) while a logout in the same isolate
    // writes the flag; the read answers afterwards. Its stale "absent" must not replace the flag.
    let (flags, _clock) = fixture(TTL);
    let config = config(&[]);
    flags.inner().interleave.set(true);
    let key = session_key(SID);
    let (read, written) = block_on(async {
        futures::join!(
            flags.get(&key),
            flags::revoke_session(&flags, &config, SID, "logout")
        )
    });
    assert_eq!(read.unwrap(), None, "the read started before the write");
    written.unwrap();
    let before = reads(&flags);
    assert!(
        revoked(&flags, T0),
        "the revoking isolate still sees it at once"
    );
    assert_eq!(reads(&flags), before + 1, "only the user flag was read");
}

#[test]
fn a_clock_that_goes_back_does_not_extend_an_entry() {
    let (flags, clock) = fixture(TTL);
    block_on(flags.get("k")).unwrap();
    clock.advance(-3600);
    block_on(flags.get("k")).unwrap();
    assert_eq!(reads(&flags), 2, "an entry from the future is not served");
}

/// A flag store that counts the reads in flight at once; each read yields once before answering.
#[derive(Default)]
struct Overlap {
    in_flight: Cell<u32>,
    most: Cell<u32>,
    user_flag: Option<String>,
    fail_session: bool,
    fail_user: bool,
}

impl FlagStore for Overlap {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        self.in_flight.set(self.in_flight.get() + 1);
        self.most.set(self.most.get().max(self.in_flight.get()));
        YieldOnce::default().await;
        self.in_flight.set(self.in_flight.get() - 1);
        let failure = || Err(BackendError::Flags("down".into()));
        if key.starts_with("revoked:session:") {
            return if self.fail_session {
                failure()
            } else {
                Ok(None)
            };
        }
        if self.fail_user {
            return failure();
        }
        Ok(self.user_flag.clone())
    }

    async fn put(&self, _: &str, _: &str, _: u64) -> Result<(), BackendError> {
        unreachable!("not written here")
    }
}

#[test]
fn the_session_and_user_flags_are_read_at_the_same_time() {
    let store = Overlap::default();
    assert!(!revoked(&store, T0));
    assert_eq!(store.most.get(), 2, "both reads were in flight together");
}

#[test]
fn concurrent_reads_keep_the_fail_closed_answers() {
    let check = |store: Overlap| block_on(flags::is_access_revoked(&store, SID, UID, T0));
    let user = |value: &str| Overlap {
        user_flag: Some(value.to_owned()),
        ..Overlap::default()
    };
    assert_eq!(check(user(&T0.to_string())), Ok(true), "issued at the flag");
    assert_eq!(
        check(user(&(T0 - 1).to_string())),
        Ok(false),
        "issued after"
    );
    assert_eq!(
        check(user("garbage")),
        Ok(true),
        "an unreadable value revokes"
    );
    let failing_user = Overlap {
        fail_user: true,
        ..Overlap::default()
    };
    assert!(check(failing_user).is_err(), "user flag unreadable: error");
    let failing_session = Overlap {
        fail_session: true,
        ..Overlap::default()
    };
    assert!(
        check(failing_session).is_err(),
        "session flag unreadable: error"
    );
}

#[test]
fn logout_through_the_app_is_seen_by_the_next_verification() {
    let (app, _clock) = app(&[]);
    assert_eq!(app.config.flag_cache_seconds, 10, "the default is on");
    bootstrap(&app);
    let login = login_token_mode(&app);
    let access = text(&login, "access_token");
    assert!(is_active(&app, &access));
    let before = app.flags.inner().reads.get();
    assert!(is_active(&app, &access));
    assert_eq!(
        app.flags.inner().reads.get(),
        before,
        "the second verification read no flag from the store"
    );
    let logout = send(
        &app,
        post(
            "/v1/auth/logout",
            json!({ "refresh_token": text(&login, "refresh_token") }),
        ),
    );
    assert_eq!(logout.status, 204);
    assert!(!is_active(&app, &access), "inactive on the first check");
}

#[test]
fn disabling_a_user_through_the_app_is_seen_at_once() {
    let (app, _clock) = app(&[]);
    bootstrap(&app);
    let admin = text(&login_token_mode(&app), "access_token");
    let id = insert_user(&app, "someone@example.test", ADMIN_PASSWORD, false);
    let access = access_token_for(&app, "someone@example.test", ADMIN_PASSWORD, None);
    assert!(is_active(&app, &access), "caches the negative user flag");
    let disable = send(
        &app,
        with_bearer(post(&format!("/v1/users/{id}/disable"), json!({})), &admin),
    );
    assert_eq!(disable.status, 200, "{:?}", disable.json_value());
    assert!(!is_active(&app, &access));
}

#[test]
fn flag_cache_seconds_is_validated() {
    let with = |value: &str| {
        let vars = [
            ("PUBLIC_URL", PUBLIC_URL),
            ("SIGNING_SECRET", SIGNING_SECRET),
            ("FLAG_CACHE_SECONDS", value),
        ];
        edgeauth::config::Config::from_lookup(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    assert_eq!(with("0").unwrap().flag_cache_seconds, 0);
    assert_eq!(with("60").unwrap().flag_cache_seconds, 60);
    assert_eq!(with("").unwrap().flag_cache_seconds, 10, "empty is unset");
    for value in ["61", "-1", "ten", "1.5"] {
        assert!(
            matches!(
                with(value),
                Err(ConfigError::Invalid {
                    name: "FLAG_CACHE_SECONDS",
                    ..
                })
            ),
            "{value}"
        );
    }
}
