//! The flag store on Workers KV. KV is eventually consistent across locations (the README states
//! the bound) and its TTL must be at least 60 seconds.

use std::cell::OnceCell;

use worker::{Env, KvStore};

use crate::store::{BackendError, FlagStore};

/// The KV binding `REVOKED`, looked up at its first use in a request (most flag reads are answered
/// by the isolate's flag cache and need none).
pub struct Kv {
    env: Env,
    binding: OnceCell<KvStore>,
}

impl Kv {
    pub fn new(env: Env) -> Self {
        Kv {
            env,
            binding: OnceCell::new(),
        }
    }

    fn store(&self) -> Result<&KvStore, BackendError> {
        if let Some(store) = self.binding.get() {
            return Ok(store);
        }
        let store = self
            .env
            .kv("REVOKED")
            .map_err(|e| BackendError::Flags(format!("KV binding REVOKED: {e}")))?;
        Ok(self.binding.get_or_init(|| store))
    }
}

impl FlagStore for Kv {
    async fn get(&self, key: &str) -> Result<Option<String>, BackendError> {
        self.store()?
            .get(key)
            .text()
            .await
            .map_err(|e| BackendError::Flags(format!("get {key}: {e}")))
    }

    async fn put(&self, key: &str, value: &str, ttl_seconds: u64) -> Result<(), BackendError> {
        // The same UTF-8 bytes as `put(key, value)` stores (and `get().text()` reads back), without
        // its generic path: for a `&str` that goes through serde_wasm_bindgen and keeps float
        // formatting in the `.wasm`.
        self.store()?
            .put_bytes(key, value.as_bytes())
            .map_err(|e| BackendError::Flags(format!("put {key}: {e}")))?
            .expiration_ttl(ttl_seconds.max(60))
            .execute()
            .await
            .map_err(|e| BackendError::Flags(format!("put {key}: {e}")))
    }
}
