//! Outgoing mail: the messages edgeauth writes (sign-in link, address confirmation, "you already have
//! an account"), the outbox a request fills, and the transport that delivers them.
//!
//! Handlers never send: they put messages in the request's [`Outbox`]. The edge drains it after the
//! response is built and delivers in the background (`ctx.wait_until`), so the answer does not wait
//! for the provider, and an address that gets mail answers as fast as one that gets none.

use std::cell::RefCell;
use std::fmt;

use serde::Serialize;

use crate::config::Config;
use crate::http::escape_html;
use crate::store::BackendError;

/// One message, in the shape Resend's HTTP API takes (`from` is added at delivery).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Mail {
    /// Recipients (always one).
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// A mail may hold a one-time link and code: `Debug` shows only who it is for and what it is.
impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The request body posted to `MAIL_ENDPOINT`.
#[derive(Debug, Serialize)]
pub struct MailRequest<'a> {
    /// `MAIL_FROM`.
    pub from: &'a str,
    /// The message.
    #[serde(flatten)]
    pub mail: &'a Mail,
}

/// The messages one request wants sent, in order.
#[derive(Debug, Default)]
pub struct Outbox(RefCell<Vec<Mail>>);

impl Outbox {
    /// Queues `mail` for delivery after the response.
    pub fn push(&self, mail: Mail) {
        self.0.borrow_mut().push(mail);
    }

    /// Takes every queued message, leaving the outbox empty.
    pub fn drain(&self) -> Vec<Mail> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

/// Delivers mail. The edge posts to `MAIL_ENDPOINT`; without one, [`LogTransport`] writes to the log.
pub trait MailTransport {
    /// Delivers one message.
    async fn deliver(&self, mail: &Mail) -> Result<(), BackendError>;
}

/// Local development without a mail provider: the message goes to the log, so the developer can
/// click the link from the `wrangler dev` output. A deployment whose public URL is not a loopback
/// address never logs a message's body, because a link in a log is a login for whoever reads it.
#[derive(Debug)]
pub struct LogTransport {
    /// Whether bodies may be logged (the public URL is a loopback address).
    pub local: bool,
}

impl LogTransport {
    /// The log transport for `config`.
    pub fn for_config(config: &Config) -> Self {
        LogTransport {
            local: is_loopback_url(&config.public_url),
        }
    }
}

impl MailTransport for LogTransport {
    async fn deliver(&self, mail: &Mail) -> Result<(), BackendError> {
        if self.local {
            log::info!(
                "mail (MAIL_ENDPOINT not set) to {}: {}\n{}",
                mail.to.join(", "),
                mail.subject,
                mail.text
            );
        } else {
            log::warn!(
                "mail to {} not sent: MAIL_ENDPOINT is not set ({})",
                mail.to.join(", "),
                mail.subject
            );
        }
        Ok(())
    }
}

/// Whether `url`'s host is `localhost` or a loopback address.
fn is_loopback_url(url: &str) -> bool {
    let Some(origin) = crate::config::origin_of(url) else {
        return false;
    };
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host.starts_with("127.")
        || host == "[::1]"
}

/// What a link mail is for (the wording differs; the mechanism does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMailKind {
    /// Sign in.
    SignIn,
    /// Confirm the address of a new account.
    ConfirmAddress,
}

/// The mail with a one-time link and its code.
pub fn link_mail(config: &Config, to: &str, kind: LinkMailKind, token: &str, code: &str) -> Mail {
    let link = format!(
        "{}/v1/auth/magic-link/verify?token={token}",
        config.public_url
    );
    let minutes = (config.magic_link_ttl + 59) / 60;
    // `label` is `action` capitalised, spelled out: a Unicode `to_uppercase` would bring its case
    // tables into the `.wasm` for two constant strings.
    let (subject, intro, action, label) = match kind {
        LinkMailKind::SignIn => (
            "Your sign-in link",
            "Someone asked to sign in to your account with this address.",
            "sign in",
            "Sign in",
        ),
        LinkMailKind::ConfirmAddress => (
            "Confirm your email address",
            "Someone created an account with this address.",
            "confirm your address",
            "Confirm your address",
        ),
    };
    let text = format!(
        "{intro}\n\nTo {action}, open this link in the browser where you asked for it:\n{link}\n\n\
         Or enter this code there:\nCode: {code}\n\n\
         The link and the code work once, within {minutes} minutes. \
         If this was not you, ignore this mail: nothing happens without the link or the code.\n"
    );
    let html = format!(
        "<p>{intro}</p><p>To {action}, open this link in the browser where you asked for it:</p>\
         <p><a href=\"{href}\">{label}</a></p><p>Or enter this code there: <strong>{code}</strong></p>\
         <p>The link and the code work once, within {minutes} minutes. If this was not you, ignore \
         this mail: nothing happens without the link or the code.</p>",
        href = escape_html(&link),
        code = escape_html(code),
    );
    Mail {
        to: vec![to.to_owned()],
        subject: subject.to_owned(),
        text,
        html,
    }
}

/// The mail to an address that tried to register again: no link and no code, so it changes nothing
/// whoever asked; it tells the owner how to get in instead.
pub fn already_registered_mail(config: &Config, to: &str) -> Mail {
    let sign_in = format!("{}/login", config.public_url);
    let text = format!(
        "Someone tried to create an account with this address, but you already have one.\n\n\
         Sign in here (use \"Email me a link\" if you have forgotten your password):\n{sign_in}\n\n\
         If this was not you, ignore this mail: nothing about your account has changed.\n"
    );
    let html = format!(
        "<p>Someone tried to create an account with this address, but you already have one.</p>\
         <p><a href=\"{href}\">Sign in</a> (use \"Email me a link\" if you have forgotten your \
         password).</p><p>If this was not you, ignore this mail: nothing about your account has \
         changed.</p>",
        href = escape_html(&sign_in),
    );
    Mail {
        to: vec![to.to_owned()],
        subject: "You already have an account".to_owned(),
        text,
        html,
    }
}
