//! Mail delivery from the Worker: `POST MAIL_ENDPOINT` with the provider's Bearer key and the
//! Resend-shaped JSON body, or the log when no endpoint is configured.

use worker::{Fetch, Headers, Method, Request, RequestInit};

use crate::config::Config;
use crate::mail::{LogTransport, Mail, MailRequest, MailTransport};
use crate::store::BackendError;

/// Posts mail to an HTTP mail API.
pub struct HttpTransport {
    endpoint: String,
    from: String,
    api_key: Option<String>,
}

impl MailTransport for HttpTransport {
    async fn deliver(&self, mail: &Mail) -> Result<(), BackendError> {
        let failed = |what: &str| BackendError::Mail(format!("{what} (to {})", mail.to.join(", ")));
        let body = serde_json::to_string(&MailRequest {
            from: &self.from,
            mail,
        })
        .map_err(|_| failed("could not encode the mail"))?;
        let headers = Headers::new();
        headers
            .set("content-type", "application/json")
            .map_err(|_| failed("bad header"))?;
        if let Some(key) = &self.api_key {
            headers
                .set("authorization", &format!("Bearer {key}"))
                .map_err(|_| failed("bad header"))?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let request = Request::new_with_init(&self.endpoint, &init)
            .map_err(|_| failed("bad MAIL_ENDPOINT"))?;
        let response = Fetch::Request(request)
            .send()
            .await
            .map_err(|_| failed("mail endpoint unreachable"))?;
        let status = response.status_code();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(failed(&format!("mail endpoint answered {status}")))
        }
    }
}

/// Delivers `mails` one after another with the transport `config` asks for, logging failures (the
/// response has long gone; there is nobody else to tell).
pub async fn deliver_all(config: &Config, mails: Vec<Mail>) {
    match &config.mail_endpoint {
        Some(endpoint) => {
            let transport = HttpTransport {
                endpoint: endpoint.clone(),
                from: config.mail_from.clone(),
                api_key: config
                    .mail_api_key
                    .as_ref()
                    .map(|k| String::from_utf8_lossy(k.expose()).into_owned()),
            };
            deliver_each(&transport, &mails).await;
        }
        None => deliver_each(&LogTransport::for_config(config), &mails).await,
    }
}

async fn deliver_each(transport: &impl MailTransport, mails: &[Mail]) {
    for mail in mails {
        if let Err(error) = transport.deliver(mail).await {
            log::error!("{error}");
        }
    }
}
