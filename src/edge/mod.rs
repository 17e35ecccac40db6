//! The Workers runtime boundary: the only code that touches `worker`, `js_sys` or `web_sys`. It turns
//! a Worker request into an [`HttpRequest`], builds an [`App`] over D1, KV, the JS clock and
//! `crypto.getRandomValues`, and turns the answer back into a Worker response.

#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "binding")]
pub mod binding;
mod d1;
mod kv;
mod mail;
mod rate_limit;
pub mod webcrypto;
mod wire;

use std::cell::RefCell;
use std::rc::Rc;

#[cfg(feature = "bench")]
use worker::Request;
use worker::{event, Context, Env, ScheduledEvent};

use crate::app::App;
use crate::config::Config;
use crate::error::ApiError;
use crate::flag_cache::{CachedFlags, FlagCache};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;

use crate::http::{check_header_sizes, HttpRequest, HttpResponse, Method, MAX_BODY_BYTES};
use crate::mail::Outbox;
use crate::store::{BackendError, Clock, Random};
use crate::tokens::KeyCache;

thread_local! {
    /// The signing keys this isolate keeps between its requests (see [`KeyCache`]).
    static KEY_CACHE: Rc<KeyCache> = Rc::default();
    /// The revocation-flag reads this isolate keeps between its requests (see [`FlagCache`]).
    static FLAG_CACHE: Rc<FlagCache> = Rc::default();
    /// See [`isolate_config`].
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

/// `Date.now()`: wall-clock time in the isolate.
struct JsClock;

impl Clock for JsClock {
    fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    fn now_millis(&self) -> i64 {
        #[allow(clippy::cast_possible_truncation)]
        let millis = js_sys::Date::now().floor() as i64;
        millis
    }
}

/// `crypto.getRandomValues`, through getrandom's `wasm_js` backend.
struct JsRandom;

impl Random for JsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), BackendError> {
        getrandom::fill(buf).map_err(|e| BackendError::Random(e.to_string()))
    }
}

/// Sends `log` records to the Workers console (visible in `wrangler dev` and `wrangler tail`).
struct ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            worker::console_error!("[{}] {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

#[event(fetch)]
async fn fetch(
    request: web_sys::Request,
    env: Env,
    ctx: Context,
) -> worker::Result<web_sys::Response> {
    // Ignoring the error is right: it only says a logger is already installed in this isolate.
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Info));
    #[cfg(feature = "bench")]
    if crate::http::split_url(&request.url()).is_some_and(|(path, _)| path.starts_with("/__bench/"))
    {
        return bench::handle(&Request::from(request)).await.map(Into::into);
    }
    let response = match handle(&request, &env, &ctx).await {
        Ok(response) => response,
        Err(error) => error.to_response(),
    };
    wire::to_js_response(&response)
}

/// The [`App`] over this Worker's configuration, D1, KV (read through this isolate's
/// [`FlagCache`]), clock and randomness (fetch and scheduled alike). The error is for the log only.
fn build_app(env: &Env) -> Result<App<d1::D1, CachedFlags<kv::Kv>>, String> {
    let config = isolate_config(env)?;
    let flags = CachedFlags::new(
        kv::Kv::new(env.clone()),
        FLAG_CACHE.with(Rc::clone),
        Box::new(JsClock),
        config.flag_cache_seconds,
    );
    Ok(App {
        db: d1::D1::new(env.clone()),
        flags,
        clock: Box::new(JsClock),
        random: Box::new(JsRandom),
        config,
        outbox: Outbox::default(),
        ip_limiter: Box::new(rate_limit::BindingLimiter(env.clone())),
        ed25519: Box::new(webcrypto::WebCrypto),
        key_cache: KEY_CACHE.with(Rc::clone),
    })
}

/// How long mail waits after the answer (see [`handle`]).
const MAIL_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// The configuration, parsed from the vars and secrets once per isolate: they are fixed for an
/// isolate's life (changing one deploys a new version, which runs in new isolates). A failed parse
/// is not kept: it is reported again on every request, as before.
fn isolate_config(env: &Env) -> Result<Config, String> {
    if let Some(config) = CONFIG.with(|kept| kept.borrow().clone()) {
        return Ok(config);
    }
    let config = Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
        .map_err(|e| e.to_string())?;
    CONFIG.with(|kept| *kept.borrow_mut() = Some(config.clone()));
    Ok(config)
}

async fn handle(
    request: &web_sys::Request,
    env: &Env,
    ctx: &Context,
) -> Result<HttpResponse, ApiError> {
    let mut http_request = wire::request_head(request)?;
    let app = build_app(env).map_err(|detail| ApiError::Unavailable { detail })?;
    // A refusal here (absurd headers, a body over 64 KiB) gets the headers of any other answer,
    // CORS included, so a page of an allowed origin can read why.
    if let Err(error) = read_body_within_limits(request, &mut http_request).await {
        return Ok(app.finish(&http_request, Err(error)));
    }
    let response = app.handle(&http_request).await;
    // Mail goes out after the answer: the client does not wait for the provider, and an address
    // that gets mail is answered as fast as one that gets none. The short wait first lets the
    // answer leave before the delivery starts competing with it for the isolate (measured: without
    // it, a known address's magic-link answer was ~3 ms slower locally; scripts/timing.mjs). A
    // timer costs no CPU time.
    let mails = app.outbox.drain();
    if !mails.is_empty() {
        let config = app.config;
        ctx.wait_until(async move {
            worker::Delay::from(MAIL_DELAY).await;
            mail::deliver_all(&config, mails).await;
        });
    }
    Ok(response)
}

/// The cron trigger (`[triggers]` in wrangler.toml; `/__scheduled` under `wrangler dev
/// --test-scheduled`): one run of [`crate::upkeep`]. A failure is logged and returned, so the
/// invocation ends in an exception rather than passing for a successful run.
async fn scheduled(event: ScheduledEvent, env: Env) -> Result<(), String> {
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Info));
    let app = build_app(&env).map_err(|e| {
        log::error!("upkeep ({}) not run: {e}", event.cron());
        format!("upkeep not run: {e}")
    })?;
    match crate::upkeep::run(&app).await {
        Ok(report) => {
            log::info!("upkeep ({}): {report}", event.cron());
            Ok(())
        }
        Err(error) => {
            log::error!("upkeep ({}): {error}", event.cron());
            Err(error.to_string())
        }
    }
}

/// The `scheduled` export, written out instead of `#[event(scheduled)]`: that macro's glue ignores
/// the handler's outcome and always resolves, so a failed upkeep would be reported to the platform
/// (the Cron Triggers log, `/__scheduled`) as a success. Here a failure rejects the promise.
/// worker-build wires an export named `scheduled` into the entrypoint exactly as the macro's.
mod scheduled_export {
    use worker::js_sys;
    use worker::wasm_bindgen::prelude::wasm_bindgen;
    use worker::wasm_bindgen::JsValue;

    #[wasm_bindgen(
        wasm_bindgen = ::worker::wasm_bindgen,
        wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
        js_sys = ::worker::js_sys
    )]
    pub async fn scheduled(
        event: worker::worker_sys::ScheduledEvent,
        env: worker::Env,
        _ctx: worker::worker_sys::ScheduleContext,
    ) -> Result<JsValue, JsValue> {
        super::scheduled(worker::ScheduledEvent::from(event), env)
            .await
            .map(|()| JsValue::UNDEFINED)
            .map_err(|message| js_sys::Error::new(&message).into())
    }
}

/// Checks the header sizes, then reads the body into `head` (not for `GET`/`HEAD`), refusing one
/// that declares or turns out to be over [`MAX_BODY_BYTES`].
async fn read_body_within_limits(
    request: &web_sys::Request,
    head: &mut HttpRequest,
) -> Result<(), ApiError> {
    check_header_sizes(&head.headers)?;
    // Refuse oversized bodies before reading them when the client declares the size.
    let declared = head
        .header_value("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    if !matches!(head.method, Method::Get | Method::Head) {
        head.body = match declared {
            Some(len) => read_declared_body(request, len).await?,
            None => read_body(request).await?,
        };
    }
    Ok(())
}

/// Reads a body whose length the client declared (at most [`MAX_BODY_BYTES`]; HTTP framing holds
/// it to that length) in one `arrayBuffer()`: one promise instead of a reader and a read per chunk.
async fn read_declared_body(
    request: &web_sys::Request,
    declared: usize,
) -> Result<Vec<u8>, ApiError> {
    let unreadable = |_| ApiError::invalid(None, "could not read the request body");
    if declared == 0 {
        return Ok(Vec::new());
    }
    let buffer = JsFuture::from(request.array_buffer().map_err(unreadable)?)
        .await
        .map_err(unreadable)?;
    let bytes = js_sys::Uint8Array::new(&buffer);
    if usize::try_from(bytes.length()).unwrap_or(usize::MAX) > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(bytes.to_vec())
}

/// Reads the body chunk by chunk and keeps at most [`MAX_BODY_BYTES`] of it: a body without
/// `Content-Length` (chunked) or with a false one is never buffered beyond the limit. The rest is
/// read and dropped (not cancelled), so the client gets its `413` as an answer rather than a reset
/// connection; the platform bounds how long a body can be.
async fn read_body(request: &web_sys::Request) -> Result<Vec<u8>, ApiError> {
    let unreadable = |_| ApiError::invalid(None, "could not read the request body");
    let Some(stream) = request.body() else {
        return Ok(Vec::new());
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::new();
    let mut too_large = false;
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(unreadable)?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .map_err(unreadable)?
            .as_bool()
            .unwrap_or(true);
        if done {
            return if too_large {
                Err(ApiError::PayloadTooLarge)
            } else {
                Ok(body)
            };
        }
        if too_large {
            continue;
        }
        let bytes: js_sys::Uint8Array = js_sys::Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(unreadable)?
            .dyn_into()
            .map_err(unreadable)?;
        let len = usize::try_from(bytes.length()).unwrap_or(usize::MAX);
        if body.len().saturating_add(len) > MAX_BODY_BYTES {
            too_large = true;
            body = Vec::new();
            continue;
        }
        body.extend_from_slice(&bytes.to_vec());
    }
}
