//! Magic-link (and email-verification) attempts over the `magic_link_attempts` table.
//!
//! One attempt is one mail: a link token, a 6-digit code, and a binding value that stays with the
//! browser that asked (the `__Host-edgeauth-link` cookie, or the `attempt` value in token mode).
//! Mail scanners fetch, and now even click, links; so opening a link consumes nothing
//! ([`peek_by_token`]) and consuming it needs the binding ([`consume_by_token`]), which a scanner
//! never has. A wrong binding changes nothing, so the link still works for the right browser.
//!
//! Nothing usable is stored: the token as SHA-256 (it has 256 bits, a plain hash is enough), the
//! binding and the code as HMAC under a key derived from `SIGNING_SECRET`, because a 6-digit code
//! hashed without a key would fall to a million guesses against a database dump.
//!
//! D1 has no interactive transactions, so every decision that can race is ONE conditional `UPDATE`
//! whose `WHERE` holds the whole rule (unconsumed, unexpired, fewer than five wrong codes): two
//! concurrent requests cannot both consume an attempt, and failures are counted atomically.
//!
//! Callers pass email addresses already normalised (`identity::normalize_email`) and `redirect_to`
//! already checked (`redirects::check_redirect`): this module stores and compares them as given.

use std::fmt;

use zeroize::Zeroizing;

use crate::app::App;
use crate::config::Config;
use crate::crypto::{b64url, derive_key, hex, hmac_sha256, new_id, random_array, sha256_hex};
use crate::rate_limits::{self, Limit};
pub use crate::sessions::SessionMode;
use crate::store::{BackendError, Database, FlagStore, Random, Row, SqlValue, Statement};
use crate::{stmt, ORG_ID};

/// Wrong codes an attempt survives: the fifth ends it, for the code and the link alike. Five
/// guesses at a 6-digit code succeed with probability 5 in a million.
pub const MAX_CODE_FAILURES: i64 = 5;

/// Random bytes in a link token and in a binding value (256 bits; the contract asks for >= 128).
const SECRET_BYTES: usize = 32;

/// Longest token or binding we bother hashing: ours are 43 characters; anything much longer is not
/// ours, and refusing it early keeps a hostile client from making us hash large inputs.
const MAX_PRESENTED_LEN: usize = 128;

/// The largest multiple of 1,000,000 that fits in a `u32`: random values at or above it are drawn
/// again, so `value % 1_000_000` is uniform (no modulo bias).
const CODE_SAMPLE_LIMIT: u32 = 4_294_000_000;

/// Redraws allowed for one code. Each redraw happens with probability ~0.02%, so running out
/// means the randomness source is broken, and that must fail closed rather than loop forever.
const CODE_MAX_DRAWS: usize = 16;

/// What an attempt is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Sign in (or, with sign-up open, create the account on first sign-in).
    Login,
    /// Confirm the address of a pending self-registered account.
    VerifyEmail,
}

impl Purpose {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::VerifyEmail => "verify_email",
        }
    }

    fn parse(text: &str) -> Result<Self, BackendError> {
        match text {
            "login" => Ok(Purpose::Login),
            "verify_email" => Ok(Purpose::VerifyEmail),
            other => Err(BackendError::Decode(format!("unknown purpose `{other}`"))),
        }
    }
}

/// What a new attempt is about.
#[derive(Debug, Clone, Copy)]
pub struct NewAttempt<'a> {
    /// The normalised address the mail goes to.
    pub email: &'a str,
    /// The existing user, if any (`None` for a sign-up on first sign-in).
    pub user_id: Option<&'a str>,
    /// Login or email verification.
    pub purpose: Purpose,
    /// Where to send the browser afterwards, already passed through `check_redirect`.
    pub redirect_to: Option<&'a str>,
    /// Cookie or token delivery of the resulting session.
    pub session_mode: SessionMode,
    /// A binding the browser already holds (its link cookie), to bind this attempt to as well, so
    /// that every link one browser asked for works in it; `None` draws a new one.
    pub binding: Option<&'a str>,
}

/// The plaintexts of a new attempt: they exist only in this value, the mail and the client. `Debug`
/// prints none of them and memory is wiped on drop, so a stray log line cannot leak a login.
pub struct AttemptSecrets {
    token: Zeroizing<String>,
    code: Zeroizing<String>,
    binding: Zeroizing<String>,
}

impl AttemptSecrets {
    /// The link token (base64url, 256 bits), for `.../magic-link/verify?token=` in the mail.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The 6-digit code for the mail.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The binding value (base64url, 256 bits): the cookie value, or the `attempt` in token mode.
    pub fn binding(&self) -> &str {
        &self.binding
    }
}

impl fmt::Debug for AttemptSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttemptSecrets(_)")
    }
}

/// A consumed attempt: what the caller needs to finish the sign-in or the verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Id.
    pub id: String,
    /// The address the mail went to (whoever consumes the attempt has proven control of it).
    pub email: String,
    /// The user it was created for, if one existed then.
    pub user_id: Option<String>,
    /// Login or email verification.
    pub purpose: Purpose,
    /// The checked redirect target given at request time.
    pub redirect_to: Option<String>,
    /// Cookie or token delivery.
    pub session_mode: SessionMode,
    /// Creation time.
    pub created_at: i64,
    /// Expiry time.
    pub expires_at: i64,
}

/// The columns [`Attempt::from_row`] reads, for `SELECT` and `RETURNING`.
macro_rules! attempt_columns {
    () => {
        "id, email, user_id, purpose, redirect_to, session_mode, created_at, expires_at"
    };
}

impl Attempt {
    fn from_row(row: &Row) -> Result<Self, BackendError> {
        Ok(Attempt {
            id: row.text("id")?,
            email: row.text("email")?,
            user_id: row.opt_text("user_id")?,
            purpose: Purpose::parse(&row.text("purpose")?)?,
            redirect_to: row.opt_text("redirect_to")?,
            session_mode: SessionMode::parse(&row.text("session_mode")?).ok_or_else(|| {
                BackendError::Decode("unknown session mode in magic_link_attempts".into())
            })?,
            created_at: row.int("created_at")?,
            expires_at: row.int("expires_at")?,
        })
    }
}

/// What the link's `GET` page may show: enough to say "sign in as ann@example.com?", nothing that
/// would let the page act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPreview {
    /// The address the link was sent to.
    pub email: String,
    /// Login or email verification (the page wording differs).
    pub purpose: Purpose,
}

/// The result of entering a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOutcome {
    /// The code was right; the attempt is now consumed.
    Consumed(Attempt),
    /// The code was wrong and counted; `failures_left` more wrong codes are allowed (0: the
    /// attempt is now dead).
    WrongCode {
        /// Wrong codes still allowed before the attempt ends.
        failures_left: i64,
    },
    /// No live attempt for this address and binding: unknown, expired, consumed, or already at
    /// [`MAX_CODE_FAILURES`]. Nothing was counted, so a client without the binding cannot lock
    /// anyone out.
    NoLiveAttempt,
}

/// The HMAC key for codes and bindings, separate from every other key derived from the secret.
fn attempt_key(config: &Config) -> crate::crypto::Secret {
    derive_key(&config.signing_secret, "magic-link")
}

fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

fn binding_hash(config: &Config, binding: &str) -> String {
    hex(&hmac_sha256(
        attempt_key(config).expose(),
        &[b"binding\0", binding.as_bytes()],
    ))
}

/// The code is MACed together with the binding, which is unique to the attempt: equal codes of two
/// attempts do not hash alike, and the hash can be computed from the request alone, so checking a
/// code is a single statement (see [`consume_by_code`]).
fn code_hash(config: &Config, binding: &str, code: &str) -> String {
    hex(&hmac_sha256(
        attempt_key(config).expose(),
        &[b"code\0", binding.as_bytes(), b"\0", code.as_bytes()],
    ))
}

fn presentable(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_PRESENTED_LEN
}

/// A uniformly random 6-digit code (`000000`-`999999`), by rejection sampling over 32-bit draws so
/// that no code is likelier than another.
pub fn generate_code(random: &dyn Random) -> Result<String, BackendError> {
    for _ in 0..CODE_MAX_DRAWS {
        let value = u32::from_be_bytes(random_array::<4>(random)?);
        if value < CODE_SAMPLE_LIMIT {
            return Ok(format!("{:06}", value % 1_000_000));
        }
    }
    Err(BackendError::Random(
        "no usable value for a code in 16 draws".into(),
    ))
}

/// A fresh binding value (base64url, 256 bits). Also what an address that gets no mail is given, so
/// that its answer looks like every other.
pub fn new_binding(random: &dyn Random) -> Result<Zeroizing<String>, BackendError> {
    Ok(Zeroizing::new(b64url(&random_array::<SECRET_BYTES>(
        random,
    )?)))
}

/// Whether `value` looks like a binding we issued (43 base64url characters): only such a value is
/// reused from a cookie, so a planted odd value cannot shape what we store.
pub fn is_binding_shaped(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The columns of a new attempt; the values follow as `VALUES (attempt_values!())` or a `SELECT`.
macro_rules! insert_attempt {
    () => {
        "INSERT INTO magic_link_attempts (id, org_id, email, user_id, purpose, token_hash, \
         code_hash, binding_hash, redirect_to, session_mode, code_failures, created_at, \
         expires_at) "
    };
}

/// The values of [`insert_attempt`], bound by [`attempt_params`] as `?1` to `?12`.
macro_rules! attempt_values {
    () => {
        "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?12"
    };
}

/// Creates an attempt that expires `MAGIC_LINK_TTL` seconds from now. Returns the secrets for the
/// mail and the client, and the attempt's id. Only hashes are stored.
pub async fn create_attempt<D: Database, F: FlagStore>(
    app: &App<D, F>,
    new: &NewAttempt<'_>,
) -> Result<(AttemptSecrets, String), BackendError> {
    let (id, secrets) = draw_attempt(app, new)?;
    let params = attempt_params(app, new, &id, &secrets);
    app.db
        .execute(Statement {
            sql: concat!(insert_attempt!(), "VALUES (", attempt_values!(), ")"),
            params,
        })
        .await?;
    Ok((secrets, id))
}

/// Creates an attempt only if `eligible` and the address's mail limit still allows a mail, and
/// counts the request against that limit, in ONE batch: the counter upsert, then the insert
/// conditional on both. Returns the secrets, and whether they were stored (a mail is due); the
/// binding is for the answer either way, so a refused request answers exactly like a stored one.
///
/// Built for enumeration resistance: a known and an unknown address do the same work (the same
/// random draws and hashes, the same statements in one D1 round trip, and ONE attempt row written);
/// only the bound `eligible` differs, so neither the answer nor its time says which it was. When no
/// mail is due the row written is a decoy: already consumed, with no address and no user, so no
/// query can ever match it, and upkeep deletes it with the expired attempts. (Writing nothing
/// instead made a known address measurably slower: ~2 ms locally, the cost of the row.)
pub async fn create_attempt_within_limit<D: Database, F: FlagStore>(
    app: &App<D, F>,
    new: &NewAttempt<'_>,
    eligible: bool,
    limit_key: &str,
    limit: Limit,
) -> Result<(AttemptSecrets, bool), BackendError> {
    let (id, secrets) = draw_attempt(app, new)?;
    let mut params = attempt_params(app, new, &id, &secrets);
    params.extend([eligible.into(), limit_key.into(), limit.max.into()]);
    let insert = Statement {
        sql: concat!(
            insert_attempt!(),
            "SELECT ",
            attempt_values!(),
            " WHERE ?13 = 1 AND (SELECT count FROM rate_limits WHERE key = ?14) <= ?15"
        ),
        params: params.clone(),
    };
    // The same parameters (D1 wants every bound one used): the address, user and redirect are
    // blanked in SQL, and `consumed_at` is set to now.
    let decoy = Statement {
        sql: "INSERT INTO magic_link_attempts (id, org_id, email, user_id, purpose, token_hash, \
              code_hash, binding_hash, redirect_to, session_mode, code_failures, created_at, \
              expires_at, consumed_at) \
              SELECT ?1, ?2, substr(?3, 1, 0), NULLIF(?4, ?4), ?5, ?6, ?7, ?8, NULLIF(?9, ?9), ?10, \
                     0, ?11, ?12, ?11 \
              WHERE NOT (?13 = 1 AND (SELECT count FROM rate_limits WHERE key = ?14) <= ?15)",
        params,
    };
    let counted = rate_limits::hit_statement(limit_key, limit, app.clock.now());
    let changes = app.db.batch(vec![counted, insert, decoy]).await?;
    Ok((secrets, changes.get(1) == Some(&1)))
}

/// Draws a new attempt's id and secrets, reusing a binding the browser already holds.
fn draw_attempt<D: Database, F: FlagStore>(
    app: &App<D, F>,
    new: &NewAttempt<'_>,
) -> Result<(String, AttemptSecrets), BackendError> {
    let random = app.random.as_ref();
    let id = new_id(app.clock.as_ref(), random)?;
    let binding = match new.binding.filter(|b| is_binding_shaped(b)) {
        Some(existing) => Zeroizing::new(existing.to_owned()),
        None => new_binding(random)?,
    };
    let secrets = AttemptSecrets {
        token: Zeroizing::new(b64url(&random_array::<SECRET_BYTES>(random)?)),
        code: Zeroizing::new(generate_code(random)?),
        binding,
    };
    Ok((id, secrets))
}

/// `?1` to `?12` of [`attempt_values`]: only hashes of the secrets, expiring `MAGIC_LINK_TTL` on.
fn attempt_params<D: Database, F: FlagStore>(
    app: &App<D, F>,
    new: &NewAttempt<'_>,
    id: &str,
    secrets: &AttemptSecrets,
) -> Vec<SqlValue> {
    let config = &app.config;
    let now = app.clock.now();
    vec![
        id.into(),
        ORG_ID.into(),
        new.email.into(),
        new.user_id.into(),
        new.purpose.as_str().into(),
        token_hash(secrets.token()).into(),
        code_hash(config, secrets.binding(), secrets.code()).into(),
        binding_hash(config, secrets.binding()).into(),
        new.redirect_to.into(),
        new.session_mode.as_str().into(),
        now.into(),
        (now + config.magic_link_ttl).into(),
    ]
}

/// Whether a link token is live (unconsumed, unexpired, not locked by wrong codes), and for whom.
/// Writes nothing: this answers the link's `GET` (and `HEAD`), which scanners fetch.
pub async fn peek_by_token<D: Database, F: FlagStore>(
    app: &App<D, F>,
    token: &str,
) -> Result<Option<LinkPreview>, BackendError> {
    if !presentable(token) {
        return Ok(None);
    }
    let row = app
        .db
        .query_one(stmt!(
            "SELECT email, purpose FROM magic_link_attempts \
             WHERE org_id = ?1 AND token_hash = ?2 AND consumed_at IS NULL \
               AND expires_at > ?3 AND code_failures < ?4",
            ORG_ID,
            token_hash(token),
            app.clock.now(),
            MAX_CODE_FAILURES
        ))
        .await?;
    row.map(|row| {
        Ok(LinkPreview {
            email: row.text("email")?,
            purpose: Purpose::parse(&row.text("purpose")?)?,
        })
    })
    .transpose()
}

/// Consumes the attempt of a link token, if `binding` is the one issued with it and it is live.
///
/// One conditional `UPDATE`: a wrong binding matches no row and changes nothing (the token stays
/// valid for the browser that asked), and of two concurrent consumers only one sees the row.
/// The binding is compared as an HMAC digest inside SQL: without the key nobody can choose an input
/// whose digest shares a prefix with the stored one, so the comparison's timing tells nothing.
pub async fn consume_by_token<D: Database, F: FlagStore>(
    app: &App<D, F>,
    token: &str,
    binding: &str,
) -> Result<Option<Attempt>, BackendError> {
    if !presentable(token) || !presentable(binding) {
        return Ok(None);
    }
    let row = app
        .db
        .query_one(stmt!(
            concat!(
                "UPDATE magic_link_attempts SET consumed_at = ?1 \
                 WHERE org_id = ?2 AND token_hash = ?3 AND binding_hash = ?4 \
                   AND consumed_at IS NULL AND expires_at > ?1 AND code_failures < ?5 \
                 RETURNING ",
                attempt_columns!()
            ),
            app.clock.now(),
            ORG_ID,
            token_hash(token),
            binding_hash(&app.config, binding),
            MAX_CODE_FAILURES
        ))
        .await?;
    row.map(|r| Attempt::from_row(&r)).transpose()
}

/// Checks a code typed by the user for the live attempt of `email` and `binding`.
///
/// One conditional `UPDATE` decides everything: on the newest live attempt of this address and
/// binding (unconsumed, unexpired, fewer than [`MAX_CODE_FAILURES`] wrong codes; a browser that
/// asked twice holds two, and the code it types is the one of the latest mail) a right code sets `consumed_at`, a wrong one increments
/// `code_failures`. SQLite evaluates every `SET` expression against the row as it was, and the row
/// is written once, so there is no read-then-write window: two right codes at once consume once,
/// and concurrent wrong guesses can never test more than five codes in total. Input that is not six
/// digits is still counted as a wrong code, so malformed guesses are not free.
pub async fn consume_by_code<D: Database, F: FlagStore>(
    app: &App<D, F>,
    email: &str,
    code: &str,
    binding: &str,
) -> Result<CodeOutcome, BackendError> {
    if !presentable(binding) {
        return Ok(CodeOutcome::NoLiveAttempt);
    }
    let config = &app.config;
    let row = app
        .db
        .query_one(stmt!(
            concat!(
                "UPDATE magic_link_attempts \
                 SET consumed_at = CASE WHEN code_hash = ?1 THEN ?2 ELSE NULL END, \
                     code_failures = code_failures + CASE WHEN code_hash = ?1 THEN 0 ELSE 1 END \
                 WHERE id = (SELECT id FROM magic_link_attempts \
                             WHERE org_id = ?3 AND email = ?4 AND binding_hash = ?5 \
                               AND consumed_at IS NULL AND expires_at > ?2 AND code_failures < ?6 \
                             ORDER BY created_at DESC, id DESC LIMIT 1) \
                 RETURNING consumed_at, code_failures, ",
                attempt_columns!()
            ),
            code_hash(config, binding, code),
            app.clock.now(),
            ORG_ID,
            email,
            binding_hash(config, binding),
            MAX_CODE_FAILURES
        ))
        .await?;
    let Some(row) = row else {
        return Ok(CodeOutcome::NoLiveAttempt);
    };
    if row.opt_int("consumed_at")?.is_some() {
        return Ok(CodeOutcome::Consumed(Attempt::from_row(&row)?));
    }
    Ok(CodeOutcome::WrongCode {
        failures_left: (MAX_CODE_FAILURES - row.int("code_failures")?).max(0),
    })
}
