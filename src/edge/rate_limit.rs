//! The per-IP limits on the edge: the Workers Rate Limiting binding (`[[ratelimits]]` in
//! wrangler.toml, one per [`IpScope::binding`]). Counted in the location's memory, so a request
//! costs no D1 write; the counts are per location and approximate, which is what a coarse per-IP
//! ceiling needs (the per-account lockout, which must be exact, stays in D1).

use std::future::Future;
use std::pin::Pin;

use worker::Env;

use crate::rate_limits::{IpLimiter, IpScope};

/// [`IpLimiter`] over this Worker's Rate Limiting bindings.
pub(super) struct BindingLimiter(pub(super) Env);

impl IpLimiter for BindingLimiter {
    fn allow<'a>(
        &'a self,
        scope: IpScope,
        key: &'a str,
        _now: i64,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + 'a>> {
        Box::pin(async move {
            let limiter = self
                .0
                .rate_limiter(scope.binding())
                .map_err(|e| e.to_string())?;
            let outcome = limiter
                .limit(key.to_owned())
                .await
                .map_err(|e| e.to_string())?;
            Ok(outcome.success)
        })
    }
}
