//! The flag store on Workers KV. KV is eventually consistent across locations (the README states
//! the bound) and its TTL must be at least 60 seconds.

use worker::KvStore;

use crate::store::{BackendError, FlagStore};

/// The KV binding.
pub struct Kv(pub KvStore);

impl FlagStore for Kv {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        self.0
            .get(key)
            .text()
            .await
            .map_err(|e| BackendError::Flags(format!("get {key}: {e}")))
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), BackendError> {
        self.0
            .put(key, value)
            .map_err(|e| BackendError::Flags(format!("put {key}: {e}")))?
            .expiration_ttl(ttl_seconds.max(60))
            .execute()
            .await
            .map_err(|e| BackendError::Flags(format!("put {key}: {e}")))
    }
}
