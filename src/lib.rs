//! edgeauth: identity at the edge. Password and magic-link login, rotating sessions, API keys and
//! authorisation decisions, compiled to WebAssembly and run as a Cloudflare Worker.
//!
//! Everything except [`edge`] is free of the Workers runtime: it reaches storage, time and randomness
//! through the small traits in [`store`], so `cargo test` on the host runs it against real SQLite.
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]
// The storage traits use `async fn` without a `Send` bound on purpose: wasm is single-threaded and
// D1/KV futures are not `Send`.
#![allow(async_fn_in_trait)]

#[cfg(feature = "server")]
pub mod api_keys;
#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod authz;
#[cfg(feature = "server")]
pub mod common_passwords;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod crypto;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod flag_cache;
#[cfg(feature = "server")]
pub mod flags;
#[cfg(feature = "server")]
pub mod handlers;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod identity;
#[cfg(feature = "server")]
pub mod magic_links;
#[cfg(feature = "server")]
pub mod mail;
#[cfg(feature = "server")]
pub mod pages;
#[cfg(feature = "server")]
pub mod passwords;
#[cfg(feature = "server")]
pub mod rate_limits;
#[cfg(feature = "server")]
pub mod redirects;
#[cfg(feature = "server")]
pub mod routes;
#[cfg(feature = "server")]
pub mod sessions;
#[cfg(feature = "server")]
pub mod signatures;
#[cfg(feature = "server")]
pub mod signing_keys;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod time;
#[cfg(feature = "server")]
pub mod tokens;
#[cfg(feature = "server")]
pub mod upkeep;
pub mod verifier;
#[cfg(feature = "server")]
pub mod workspaces;

// The runtime boundary (wasm only). With `server` it is the Worker itself (src/edge/mod.rs, which also
// declares `binding` when that feature is on); a consumer built without `server` gets only the
// service-binding helper, src/edge/binding.rs.
#[cfg(all(target_arch = "wasm32", feature = "server"))]
pub mod edge;
#[cfg(all(target_arch = "wasm32", feature = "binding", not(feature = "server")))]
pub mod edge {
    //! The Workers runtime boundary of a consumer: calling edgeauth through a service binding.
    pub mod binding;
}

/// The single organisation of this deployment (created by the first migration).
pub const ORG_ID: &str = "default";
