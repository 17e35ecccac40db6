//! The HTML pages and their assets: thin wrappers that read the query and configuration and hand
//! them to [`crate::pages`], which renders.

use crate::app::App;
use crate::error::ApiError;
use crate::http::{HttpRequest, HttpResponse};
use crate::pages;
use crate::redirects::check_redirect;
use crate::store::{Database, FlagStore};

/// `GET /login[?redirect_to=]`. A `redirect_to` outside the allow-list is dropped (the page then
/// goes to the account page), never followed.
pub(super) fn sign_in<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> HttpResponse {
    let redirect_to = request
        .query_param("redirect_to")
        .and_then(|candidate| check_redirect(&candidate, &app.config.allowed_redirects).ok());
    pages::sign_in_page(&app.config, redirect_to.as_deref())
}

/// `GET /signup`: only while sign-up is open.
pub(super) fn sign_up<D: Database, F: FlagStore>(
    app: &App<D, F>,
) -> Result<HttpResponse, ApiError> {
    if !app.config.allow_signup {
        return Err(ApiError::NotFound);
    }
    Ok(pages::sign_up_page(&app.config))
}

/// `GET /login/code[?email=]`.
pub(super) fn code<D: Database, F: FlagStore>(
    app: &App<D, F>,
    request: &HttpRequest,
) -> HttpResponse {
    let email = request.query_param("email");
    pages::code_page(&app.config, email.as_deref())
}

/// `GET /assets/{name}`.
pub(super) fn asset(name: &str) -> Result<HttpResponse, ApiError> {
    pages::asset(name).ok_or(ApiError::NotFound)
}
