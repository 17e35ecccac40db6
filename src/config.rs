//! Deployment configuration: plain vars and secrets, parsed and checked once per isolate (the edge
//! keeps the result; vars and secrets cannot change under a running isolate). A missing or
//! malformed setting is a [`ConfigError`] (logged, `503` to the client), never a weaker default.

use std::fmt;

use crate::crypto::Secret;

/// The settings of one deployment (design.md section 4).
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of this service, without a trailing slash; used in links and as the default issuer.
    pub public_url: String,
    /// `iss` of the access tokens we issue and accept.
    pub issuer: String,
    /// `aud` of the access tokens we issue and accept.
    pub audience: String,
    /// Origins allowed to make cookie-authenticated state changes (exact `scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Allowed magic-link `redirect_to` prefixes.
    pub allowed_redirects: Vec<String>,
    /// Access-token lifetime, seconds.
    pub access_token_ttl: i64,
    /// A session ends after this many seconds without a refresh.
    pub refresh_idle_ttl: i64,
    /// A session ends this many seconds after login, however active.
    pub refresh_absolute_ttl: i64,
    /// How long after a rotation the immediate parent token may still be retried.
    pub refresh_grace_seconds: i64,
    /// PBKDF2-HMAC-SHA256 iterations for new password hashes.
    pub pbkdf2_iterations: u32,
    /// Magic-link lifetime, seconds.
    pub magic_link_ttl: i64,
    /// Live sessions per user; a new login evicts the least recently active one beyond this.
    pub max_sessions_per_user: i64,
    /// Whether self-registration (and sign-up through a magic link) is open.
    pub allow_signup: bool,
    /// Scheduled upkeep makes a new current signing key once the current one is this old, seconds.
    pub signing_key_rotation_seconds: i64,
    /// Audit events older than this many days are deleted by scheduled upkeep.
    pub audit_retention_days: i64,
    /// How long an isolate may answer from its own earlier read of a revocation flag, seconds
    /// (0: read KV on every check). See [`crate::flag_cache`].
    pub flag_cache_seconds: i64,
    /// Where mail is posted; `None` writes mail to the log (local development).
    pub mail_endpoint: Option<String>,
    /// Sender address of mail.
    pub mail_from: String,
    /// The root secret from which signing keys and the refresh-token key are derived.
    pub signing_secret: Secret,
    /// One-time token that allows creating the first admin; `None` disables bootstrap.
    pub bootstrap_token: Option<Secret>,
    /// Bearer key of the mail provider.
    pub mail_api_key: Option<Secret>,
}

/// Why the configuration could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A required setting is absent.
    Missing {
        /// The setting's name.
        name: &'static str,
    },
    /// A setting is present but unusable.
    Invalid {
        /// The setting's name.
        name: &'static str,
        /// What is wrong with it (never the value of a secret).
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing { name } => write!(f, "configuration: {name} is not set"),
            ConfigError::Invalid { name, reason } => write!(f, "configuration: {name}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Shortest accepted `SIGNING_SECRET`: 32 bytes, as many as the keys derived from it.
pub const MIN_SIGNING_SECRET_LEN: usize = 32;

impl Config {
    /// Reads the configuration through `lookup` (the Worker env on the edge, a map in tests).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let public_url = get("PUBLIC_URL").ok_or(ConfigError::Missing { name: "PUBLIC_URL" })?;
        let public_url = public_url.trim_end_matches('/').to_owned();
        let public_origin = origin_of(&public_url).ok_or_else(|| ConfigError::Invalid {
            name: "PUBLIC_URL",
            reason: "must be an absolute http(s) URL".into(),
        })?;

        let allowed_origins = match get("ALLOWED_ORIGINS") {
            Some(list) => split_list(&list)
                .into_iter()
                .map(|o| {
                    origin_of(&o)
                        .filter(|parsed| *parsed == o.trim_end_matches('/'))
                        .ok_or_else(|| ConfigError::Invalid {
                            name: "ALLOWED_ORIGINS",
                            reason: format!("`{o}` is not an origin (scheme://host[:port])"),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![public_origin],
        };

        let signing_secret = get("SIGNING_SECRET").ok_or(ConfigError::Missing {
            name: "SIGNING_SECRET",
        })?;
        if signing_secret.len() < MIN_SIGNING_SECRET_LEN {
            return Err(ConfigError::Invalid {
                name: "SIGNING_SECRET",
                reason: format!("must be at least {MIN_SIGNING_SECRET_LEN} characters"),
            });
        }
        let bootstrap_token = get("BOOTSTRAP_TOKEN");
        if bootstrap_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid {
                name: "BOOTSTRAP_TOKEN",
                reason: "must be at least 16 characters".into(),
            });
        }

        let allowed_redirects = get("ALLOWED_REDIRECTS")
            .map(|l| split_list(&l))
            .unwrap_or_default();
        for entry in &allowed_redirects {
            if let Some(problem) = crate::redirects::allow_entry_problem(entry) {
                return Err(ConfigError::Invalid {
                    name: "ALLOWED_REDIRECTS",
                    reason: format!("`{entry}`: {problem}"),
                });
            }
        }

        let access_token_ttl = number(&get, "ACCESS_TOKEN_TTL", 600, 60, 86_400)?;
        let refresh_idle_ttl = number(&get, "REFRESH_IDLE_TTL", 1_209_600, 60, 31_536_000)?;
        let refresh_absolute_ttl = number(&get, "REFRESH_ABSOLUTE_TTL", 2_592_000, 60, 31_536_000)?;
        let pbkdf2_iterations = number(&get, "PBKDF2_ITERATIONS", 600_000, 1_000, 10_000_000)?;

        Ok(Config {
            issuer: get("ISSUER").unwrap_or_else(|| public_url.clone()),
            audience: get("AUDIENCE").unwrap_or_else(|| public_url.clone()),
            allowed_origins,
            allowed_redirects,
            access_token_ttl,
            refresh_idle_ttl,
            refresh_absolute_ttl,
            refresh_grace_seconds: number(&get, "REFRESH_GRACE_SECONDS", 10, 0, 300)?,
            pbkdf2_iterations: u32::try_from(pbkdf2_iterations).unwrap_or(u32::MAX),
            magic_link_ttl: number(&get, "MAGIC_LINK_TTL", 600, 60, 3_600)?,
            max_sessions_per_user: number(&get, "MAX_SESSIONS_PER_USER", 20, 1, 1_000)?,
            allow_signup: boolean(&get, "ALLOW_SIGNUP")?,
            signing_key_rotation_seconds: number(
                &get,
                "SIGNING_KEY_ROTATION_SECONDS",
                2_592_000,
                60,
                315_360_000,
            )?,
            audit_retention_days: number(&get, "AUDIT_RETENTION_DAYS", 365, 1, 36_500)?,
            flag_cache_seconds: number(&get, "FLAG_CACHE_SECONDS", 10, 0, 60)?,
            mail_endpoint: get("MAIL_ENDPOINT"),
            mail_from: get("MAIL_FROM").unwrap_or_else(|| "edgeauth <no-reply@localhost>".into()),
            signing_secret: Secret::new(signing_secret.into_bytes()),
            bootstrap_token: bootstrap_token.map(|t| Secret::new(t.into_bytes())),
            mail_api_key: get("MAIL_API_KEY").map(|t| Secret::new(t.into_bytes())),
            public_url,
        })
    }

    /// Whether `origin` (an `Origin` header value) may make cookie-authenticated state changes.
    pub fn is_allowed_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `scheme://host[:port]` of an absolute http(s) URL, lower-cased; `None` if it is not one.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains(['@', '\\', ' ']) {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    let value: i64 = raw.parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: "must be a whole number".into(),
    })?;
    if !(min..=max).contains(&value) {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("must be between {min} and {max}"),
        });
    }
    Ok(value)
}

fn boolean(get: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<bool, ConfigError> {
    match get(name).as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(ConfigError::Invalid {
            name,
            reason: "must be true or false".into(),
        }),
    }
}
