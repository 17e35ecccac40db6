//! The one place that decides what a client sees when something goes wrong. Handlers return
//! [`ApiError`]; internal errors convert into it here and their text goes to the log only.

use serde_json::json;

use crate::config::ConfigError;
use crate::http::{HttpResponse, Method};
use crate::store::BackendError;

/// An error as the client may learn of it (design.md section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Any authentication failure - unknown user, wrong password, disabled user, bad, expired or
    /// revoked token, reused refresh token, bad bootstrap token. One body for all, so a client
    /// cannot tell which (no user enumeration).
    AuthFailure,
    /// The request is malformed; `field` names the offending field when there is one.
    InvalidRequest {
        /// The offending field, if any.
        field: Option<String>,
        /// A message for the developer calling us.
        message: String,
    },
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// A cookie-authenticated state change without an allowed `Origin`.
    Csrf,
    /// No such route or resource (or one the caller may not know of).
    NotFound,
    /// The route exists, the method does not.
    MethodNotAllowed {
        /// The methods the route does take, for the `Allow` header.
        allow: Vec<Method>,
    },
    /// The change conflicts with existing state (e.g. a taken email).
    Conflict {
        /// What conflicts.
        message: String,
    },
    /// Body over 64 KiB.
    PayloadTooLarge,
    /// Body is not JSON (or the type the route takes).
    UnsupportedMediaType,
    /// Too many attempts; retry after the given seconds.
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// Storage down or configuration unusable: fail closed. `detail` is logged, never sent.
    Unavailable {
        /// Internal description for the log.
        detail: String,
    },
}

/// The message of every authentication failure.
pub const AUTH_FAILURE_MESSAGE: &str = "authentication failed";

impl ApiError {
    /// Shorthand for [`ApiError::InvalidRequest`].
    pub fn invalid(field: Option<&str>, message: &str) -> Self {
        ApiError::InvalidRequest {
            field: field.map(str::to_owned),
            message: message.to_owned(),
        }
    }

    /// The status code and machine-readable code.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            ApiError::AuthFailure => (401, "auth_failure"),
            ApiError::InvalidRequest { .. } => (400, "invalid_request"),
            ApiError::Forbidden => (403, "forbidden"),
            ApiError::Csrf => (403, "csrf"),
            ApiError::NotFound => (404, "not_found"),
            ApiError::MethodNotAllowed { .. } => (405, "method_not_allowed"),
            ApiError::Conflict { .. } => (409, "conflict"),
            ApiError::PayloadTooLarge => (413, "payload_too_large"),
            ApiError::UnsupportedMediaType => (415, "unsupported_media_type"),
            ApiError::RateLimited { .. } => (429, "rate_limited"),
            ApiError::Unavailable { .. } => (503, "unavailable"),
        }
    }

    /// The response the client gets.
    pub fn to_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        let message = match self {
            ApiError::AuthFailure => AUTH_FAILURE_MESSAGE.to_owned(),
            ApiError::InvalidRequest { message, .. } => message.clone(),
            ApiError::Forbidden => "not allowed".to_owned(),
            ApiError::Csrf => {
                "cookie-authenticated requests must come from an allowed Origin".to_owned()
            }
            ApiError::NotFound => "not found".to_owned(),
            ApiError::MethodNotAllowed { .. } => "method not allowed on this route".to_owned(),
            ApiError::Conflict { message } => message.clone(),
            ApiError::PayloadTooLarge => "request body exceeds 64 KiB".to_owned(),
            ApiError::UnsupportedMediaType => "request body must be application/json".to_owned(),
            ApiError::RateLimited { .. } => "too many requests".to_owned(),
            ApiError::Unavailable { .. } => "service unavailable".to_owned(),
        };
        let mut error = json!({ "code": code, "message": message });
        if let ApiError::InvalidRequest {
            field: Some(field), ..
        } = self
        {
            error["field"] = json!(field);
        }
        let mut response = HttpResponse::json(status, &json!({ "error": error }));
        if let ApiError::RateLimited { retry_after } = self {
            response.set_header("retry-after", &retry_after.to_string());
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            let names: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
            response.set_header("allow", &names.join(", "));
        }
        if let ApiError::Unavailable { detail } = self {
            log::error!("503 unavailable: {detail}");
        }
        response
    }
}

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        ApiError::Unavailable {
            detail: err.to_string(),
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(err: ConfigError) -> Self {
        ApiError::Unavailable {
            detail: err.to_string(),
        }
    }
}
