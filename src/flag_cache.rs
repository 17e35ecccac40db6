//! A per-isolate cache of revocation-flag reads: [`CachedFlags`] wraps any [`FlagStore`] so that an
//! isolate checking the same tokens over and over reads each flag from KV at most once per
//! `FLAG_CACHE_SECONDS`, and sees its own revocations at once.
//!
//! What it costs (README, "Revocation bound"): a revocation written by another isolate is seen here
//! up to `FLAG_CACHE_SECONDS` after KV itself shows it to this location. What it keeps:
//! - every entry, present or absent, expires after the TTL, counted from when its read *started*
//!   (a user flag's value is a timestamp that a later revocation replaces with a newer one, so a
//!   present flag must be read again too);
//! - a `put` through the wrapper writes the store first and, once that succeeded, the entry, so the
//!   isolate that revokes answers "revoked" on the very next check; a read that was already in
//!   flight when the put landed cannot overwrite it afterwards (entries carry a sequence number and
//!   older knowledge never replaces newer);
//! - a failed read is returned as the error and leaves nothing behind (fail closed, as without the
//!   cache); a failed put forgets the entry, so the next check asks the store;
//! - at most [`MAX_ENTRIES`] entries: a full cache first drops its expired entries, and is cleared
//!   if that is not enough, so a flood of distinct session ids cannot grow it without bound;
//! - in the last fifth of an entry's TTL, the first request to need it reads the store again
//!   while the requests that come meanwhile are still answered from the entry (within its TTL, as
//!   any hit). Under steady load, then, an entry is renewed before it expires, instead of every
//!   request in flight at the moment of expiry reading KV at once. (The requests cannot share one
//!   read: workerd cancels a request that waits on I/O another request started.) If the refresh
//!   fails, that request is answered from the entry too, and the next one tries again;
//! - a TTL of 0 turns it off: every read and write goes straight to the store.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::store::{BackendError, Clock, FlagStore};

/// The most entries one isolate keeps (about 100 bytes each: key, value, time).
pub const MAX_ENTRIES: usize = 10_000;

/// One flag as last known: its value (`None`: not set) and when that was read or written.
#[derive(Debug, Clone)]
struct Entry {
    value: Option<String>,
    /// Clock milliseconds at the start of the read, or at the end of the write.
    at_millis: i64,
    /// Order of knowledge: an entry only replaces one with a smaller number.
    seq: u64,
    /// Whether a request is reading the store to renew this entry (see [`FlagCache::lookup`]).
    refreshing: bool,
}

impl Entry {
    /// Whether the entry may still be served at `now_millis`. An entry from the future (the clock
    /// went back) is not: it could otherwise be served for as long as the clock lags.
    fn is_fresh(&self, now_millis: i64, ttl_millis: i64) -> bool {
        let age = now_millis.saturating_sub(self.at_millis);
        (0..ttl_millis).contains(&age)
    }
}

/// The flag reads one isolate keeps across its requests (the edge keeps one per isolate, like the
/// key ring; each host-test app has its own). Used through [`CachedFlags`].
#[derive(Debug, Default)]
pub struct FlagCache {
    entries: RefCell<HashMap<String, Entry>>,
    next_seq: Cell<u64>,
}

impl FlagCache {
    /// How many entries are kept (fresh or not).
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.borrow_mut().clear();
    }

    /// The next sequence number: taken when a read starts, or when a write has succeeded.
    fn ticket(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq.wrapping_add(1));
        seq
    }

    /// What is kept for `key` at `now_millis`. An entry at least `refresh_from_millis` old that no
    /// request is refreshing is handed out as [`Lookup::Refresh`], and marked, so that exactly one
    /// request refreshes it while the others are answered from it.
    fn lookup(
        &self,
        key: &str,
        now_millis: i64,
        ttl_millis: i64,
        refresh_from_millis: i64,
    ) -> Lookup {
        let mut entries = self.entries.borrow_mut();
        let Some(entry) = entries
            .get_mut(key)
            .filter(|entry| entry.is_fresh(now_millis, ttl_millis))
        else {
            return Lookup::Miss;
        };
        if entry.refreshing || now_millis - entry.at_millis < refresh_from_millis {
            return Lookup::Fresh(entry.value.clone());
        }
        entry.refreshing = true;
        Lookup::Refresh {
            value: entry.value.clone(),
            seq: entry.seq,
        }
    }

    /// Clears the refresh mark of `key`'s entry if it is still the entry numbered `seq`.
    fn end_refresh(&self, key: &str, seq: u64) {
        if let Some(entry) = self.entries.borrow_mut().get_mut(key) {
            if entry.seq == seq {
                entry.refreshing = false;
            }
        }
    }

    /// Keeps `entry` for `key` unless what is kept is newer knowledge (a write that landed while
    /// this entry's read was in flight).
    fn offer(&self, key: &str, entry: Entry, ttl_millis: i64) {
        let mut entries = self.entries.borrow_mut();
        match entries.get(key) {
            Some(kept) if kept.seq > entry.seq => return,
            Some(_) => {}
            None if entries.len() >= MAX_ENTRIES => {
                let now = entry.at_millis;
                entries.retain(|_, kept| kept.is_fresh(now, ttl_millis));
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            None => {}
        }
        entries.insert(key.to_owned(), entry);
    }

    fn forget(&self, key: &str) {
        self.entries.borrow_mut().remove(key);
    }
}

/// What [`FlagCache::lookup`] found.
enum Lookup {
    /// Nothing fresh: read the store.
    Miss,
    /// A fresh value to answer with.
    Fresh(Option<String>),
    /// A fresh value, which this request is to renew (the entry numbered `seq` is marked).
    Refresh { value: Option<String>, seq: u64 },
}

/// Clears a refresh mark when the refreshing request is done with it, however it ends (a Worker
/// request can be cancelled mid-read): another request may then refresh the entry.
struct RefreshMark<'a> {
    cache: &'a FlagCache,
    key: &'a str,
    seq: u64,
}

impl Drop for RefreshMark<'_> {
    fn drop(&mut self) {
        self.cache.end_refresh(self.key, self.seq);
    }
}

/// A [`FlagStore`] that serves reads from a [`FlagCache`] while they are younger than the TTL and
/// writes through to the store it wraps (the edge: KV). See the module documentation for the rules.
pub struct CachedFlags<F> {
    inner: F,
    cache: Rc<FlagCache>,
    clock: Box<dyn Clock>,
    ttl_millis: i64,
}

impl<F> CachedFlags<F> {
    /// Wraps `inner`, keeping reads in `cache` for `ttl_seconds` (0: no caching) by `clock`.
    pub fn new(inner: F, cache: Rc<FlagCache>, clock: Box<dyn Clock>, ttl_seconds: i64) -> Self {
        CachedFlags {
            inner,
            cache,
            clock,
            ttl_millis: ttl_seconds.max(0).saturating_mul(1000),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    /// The cache this wrapper uses.
    pub fn cache(&self) -> &FlagCache {
        &self.cache
    }

    fn enabled(&self) -> bool {
        self.ttl_millis > 0
    }

    /// The age from which an entry is refreshed: the last fifth of the TTL.
    fn refresh_from_millis(&self) -> i64 {
        crate::time::renewal_age(self.ttl_millis)
    }

    /// Reads `key` from the store and offers the answer to the cache as knowledge from `started`.
    async fn read_through(&self, key: &str, started: i64) -> Result<Option<String>, BackendError>
    where
        F: FlagStore,
    {
        let seq = self.cache.ticket();
        // An error returns here: nothing is kept.
        let value = self.inner.get(key).await?;
        let entry = Entry {
            value: value.clone(),
            at_millis: started,
            seq,
            refreshing: false,
        };
        self.cache.offer(key, entry, self.ttl_millis);
        Ok(value)
    }
}

impl<F> fmt::Debug for CachedFlags<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedFlags")
            .field("ttl_millis", &self.ttl_millis)
            .field("entries", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl<F: FlagStore> FlagStore for CachedFlags<F> {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        if !self.enabled() {
            return self.inner.get(key).await;
        }
        // The time before the read: the entry then ages from the earliest moment its value could
        // describe, so it is never served as fresher than it is.
        let started = self.clock.now_millis();
        match self
            .cache
            .lookup(key, started, self.ttl_millis, self.refresh_from_millis())
        {
            Lookup::Fresh(value) => Ok(value),
            // A failed read leaves nothing behind, and the next check reads again.
            Lookup::Miss => self.read_through(key, started).await,
            Lookup::Refresh { value, seq } => {
                let _mark = RefreshMark {
                    cache: &self.cache,
                    key,
                    seq,
                };
                // The entry was fresh when this check started, as for any hit; a failed refresh
                // is answered from it, and the mark's drop lets the next request try again.
                Ok(self.read_through(key, started).await.unwrap_or(value))
            }
        }
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), BackendError> {
        let written = self.inner.put(key, value, ttl_seconds).await;
        if !self.enabled() {
            return written;
        }
        match written {
            Ok(()) => {
                let entry = Entry {
                    value: Some(value.to_owned()),
                    at_millis: self.clock.now_millis(),
                    seq: self.cache.ticket(),
                    refreshing: false,
                };
                self.cache.offer(key, entry, self.ttl_millis);
                Ok(())
            }
            Err(error) => {
                // The store may or may not hold the value now: let the next check ask it.
                self.cache.forget(key);
                Err(error)
            }
        }
    }
}
