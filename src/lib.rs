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

pub mod api_keys;
pub mod app;
pub mod audit;
pub mod authz;
pub mod config;
pub mod crypto;
pub mod error;
pub mod flags;
pub mod handlers;
pub mod http;
pub mod identity;
pub mod magic_links;
pub mod mail;
pub mod pages;
pub mod passwords;
pub mod rate_limits;
pub mod redirects;
pub mod routes;
pub mod sessions;
pub mod store;
pub mod time;
pub mod tokens;
pub mod workspaces;

#[cfg(target_arch = "wasm32")]
mod edge;

/// The single organisation of this deployment (created by the first migration).
pub const ORG_ID: &str = "default";
