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
        // The same UTF-8 bytes as `put(key, value)` stores (and `get().text()` reads back), without
        // its generic path: for a `&str` that goes through serde_wasm_bindgen and keeps float
        // formatting in the `.wasm`.
        self.0
            .put_bytes(key, value.as_bytes())
            .map_err(|e| BackendError::Flags(format!("put {key}: {e}")))?
            .expiration_ttl(ttl_seconds.max(60))
            .execute()
            .await
            .map_err(|e| BackendError::Flags(format!("put {key}: {e}")))
    }
}
