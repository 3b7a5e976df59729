//! Self-service for any account: its page (second-factor state, recovery codes left,
//! sessions, recent activity), enrolling an authenticator app, the recovery codes shown
//! once, and renewing or removing the authenticator behind the core's step-up.

use super::text::Message;
use super::{
    Chrome, Posted, Visit, WebError, WebPath, WebQuery, message_of, page, see_other, when,
};
use crate::app::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use otpd_core::{
    AuditQuery, CoreError, Principal, RecoveryCodeSet, SessionKind, Shown, TotpOptions, TotpStatus,
};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The signed-in account's name, or a redirect to sign in; an enrollment-only session is
/// led to enrolling.
fn own(visit: &Visit) -> Result<(&Principal, String), WebError> {
    match visit.signed_in()? {
        p @ Principal::Account(c) => Ok((p, c.username.clone())),
        Principal::Cli => Err(WebError::Refused(Message::NotAllowed)),
    }
}

fn enrolling_only(visit: &Visit) -> bool {
    matches!(&visit.principal, Some(Principal::Account(c)) if c.kind == SessionKind::Enrollment)
}

/// One row of the activity table.
pub struct Event {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub remote_addr: String,
    pub door: String,
    pub reason: String,
}

impl From<otpd_core::AuditEvent> for Event {
    fn from(e: otpd_core::AuditEvent) -> Self {
        Event {
            at: when(e.at),
            actor: e.actor,
            action: super::text::action(&e.action).map_or(e.action, str::to_owned),
            outcome: e.outcome,
            remote_addr: e.remote_addr.unwrap_or_default(),
            door: e.door,
            reason: e.reason.unwrap_or_default(),
        }
    }
}

/// One row of the sessions table.
pub struct SessionRow {
    pub created: String,
    pub expires: String,
    pub door: String,
    pub remote_addr: String,
    pub current: bool,
}

/// A second factor's state as a page says it.
pub struct FactorView {
    /// `none`, `pending`, `active`, `disabled` or `locked`.
    pub state: &'static str,
    pub locked_until: String,
    pub last_used: String,
    pub recovery_codes_left: i64,
    pub few_codes: bool,
    pub failed_attempts: i64,
}

/// The state a page shows: `none`, `pending`, `active`, `disabled` or `locked` (the core has
/// already dropped a lapsed enrollment and an ended lockout from what it reports).
pub fn factor_state(active: bool, pending: bool, enabled: bool, locked: bool) -> &'static str {
    match (active, pending, enabled, locked) {
        (false, true, ..) => "pending",
        (false, false, ..) => "none",
        (true, _, false, _) => "disabled",
        (true, _, true, true) => "locked",
        (true, _, true, false) => "active",
    }
}

impl FactorView {
    /// The view of `status` (none when there is none, or its enrollment lapsed) at `now`.
    pub fn of(status: Option<&TotpStatus>, now: i64) -> Self {
        let Some(s) = status.filter(|s| !s.lapsed(now)) else {
            return FactorView {
                state: "none",
                locked_until: String::new(),
                last_used: String::new(),
                recovery_codes_left: 0,
                few_codes: false,
                failed_attempts: 0,
            };
        };
        let active = s.state == "active";
        FactorView {
            state: factor_state(active, !active, s.enabled, s.locked_until.is_some()),
            locked_until: s.locked_until.map(when).unwrap_or_default(),
            last_used: s.last_used_at.map(when).unwrap_or_default(),
            recovery_codes_left: s.recovery_codes_remaining,
            few_codes: s.state == "active" && s.recovery_codes_remaining <= 2,
            failed_attempts: s.failed_attempts,
        }
    }
}

/// The status of `username`'s authenticator, none if it has none.
pub async fn status_of(
    state: &AppState,
    p: &Principal,
    username: &str,
) -> Result<Option<TotpStatus>, CoreError> {
    match state.service.totp_status(p, username).await {
        Ok(s) => Ok(Some(s)),
        Err(CoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What an account's page shows of it (its own page or an admin's): its authenticator's
/// status, its sessions and its 20 latest audit events.
pub async fn overview_of(
    state: &AppState,
    p: &Principal,
    username: &str,
) -> Result<(Option<TotpStatus>, Vec<SessionRow>, Vec<Event>), CoreError> {
    let status = status_of(state, p, username).await?;
    let sessions = state
        .service
        .list_sessions(p, username)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            created: when(s.created_at),
            expires: when(s.expires_at),
            door: s.door,
            remote_addr: s.remote_addr.unwrap_or_default(),
            current: s.current,
        })
        .collect();
    let events = state
        .service
        .audit_events(
            p,
            &AuditQuery {
                account: Some(username.to_owned()),
                limit: Some(20),
                ..AuditQuery::default()
            },
        )
        .await?
        .into_iter()
        .map(Event::from)
        .collect();
    Ok((status, sessions, events))
}

/// The account page.
#[derive(Template)]
#[template(path = "web/account.html")]
struct AccountPage {
    c: Chrome,
    factor: FactorView,
    sessions: Vec<SessionRow>,
    events: Vec<Event>,
}

/// A redirect's flash message (`?m=`).
#[derive(Deserialize, Default)]
pub struct Flash {
    #[serde(default)]
    m: String,
}

/// `GET /ui/account`.
pub async fn overview(
    State(state): State<AppState>,
    visit: Visit,
    WebQuery(flash): WebQuery<Flash>,
) -> Result<Response, WebError> {
    if enrolling_only(&visit) {
        return Ok(see_other("/ui/account/enroll", visit.set_cookies));
    }
    let (p, username) = own(&visit)?;
    let (status, sessions, events) = overview_of(&state, p, &username).await?;
    let c = Chrome::new(&visit, |t| t.account_title).news(Message::from_code(&flash.m));
    let factor = FactorView::of(status.as_ref(), state.service.now());
    Ok(page(
        &visit,
        StatusCode::OK,
        &AccountPage {
            c,
            factor,
            sessions,
            events,
        },
    ))
}

/// A secret to add to an app: its QR code (a link that opens the app on a phone), the
/// secret in groups of four, and its parameters.
pub struct SecretView {
    pub qr_svg: String,
    pub uri: String,
    pub grouped: String,
    pub issuer: String,
    pub account: String,
    pub algorithm: String,
    pub digits: u8,
    pub interval: u64,
    /// Not SHA1, 6 digits, 30 seconds: some apps ignore the parameters.
    pub unusual: bool,
}

impl SecretView {
    fn of(uri: &Shown) -> Result<Self, WebError> {
        let parsed = otp::KeyUri::parse(uri.expose())
            .map_err(|_| CoreError::Internal("the key URI does not parse".into()))?;
        let qr_svg = crate::qr::svg(uri.expose()).map_err(|e| CoreError::Internal(e.into()))?;
        let secret: Zeroizing<String> = parsed.secret().to_base32();
        let grouped = secret
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let algorithm = parsed.algorithm().to_string();
        let digits = parsed.digits().get();
        let interval = match parsed.kind() {
            otp::OtpKind::Totp { period } => period.seconds(),
            otp::OtpKind::Hotp { .. } => 0,
        };
        Ok(SecretView {
            qr_svg,
            uri: uri.expose().to_owned(),
            grouped,
            issuer: parsed.issuer().unwrap_or_default().to_owned(),
            account: parsed.account().to_owned(),
            unusual: algorithm != "SHA1" || digits != 6 || interval != 30,
            algorithm,
            digits,
            interval,
        })
    }
}

/// A pending enrollment as its page shows it.
pub struct Pending {
    pub secret: SecretView,
    /// Which secret the page shows (its fingerprint), sent back with the code.
    pub fingerprint: String,
    /// When it lapses, as text, and the seconds left (for the countdown, which so never
    /// depends on the browser's clock).
    pub expires: String,
    pub seconds_left: i64,
}

/// The enrollment page: a start button, or the pending secret and its code box.
#[derive(Template)]
#[template(path = "web/enroll.html")]
struct EnrollPage {
    c: Chrome,
    required: bool,
    pending: Option<Pending>,
    code_error: Option<&'static str>,
}

/// `GET /ui/account/enroll`.
pub async fn enroll_page(
    State(state): State<AppState>,
    visit: Visit,
) -> Result<Response, WebError> {
    enroll_view(&state, &visit, StatusCode::OK, None, None).await
}

/// The enrollment page as it stands, with a message for the whole page or the code box.
async fn enroll_view(
    state: &AppState,
    visit: &Visit,
    status: StatusCode,
    notice: Option<Message>,
    code_error: Option<Message>,
) -> Result<Response, WebError> {
    let (p, username) = own(visit)?;
    let current = status_of(state, p, &username).await?;
    if current.as_ref().is_some_and(|s| s.state == "active") {
        return Ok(see_other(
            &format!("/ui/account?m={}", Message::AlreadyEnrolled.code()),
            visit.set_cookies.clone(),
        ));
    }
    let pending = match state.service.pending_key_uri(p, &username).await {
        Ok(uri) => {
            let status = current.ok_or(CoreError::NotFound("pending enrollment"))?;
            Some(Pending {
                secret: SecretView::of(&uri)?,
                fingerprint: status.fingerprint,
                expires: status.expires_at.map(when).unwrap_or_default(),
                seconds_left: status
                    .expires_at
                    .map_or(0, |at| (at - state.service.now()).max(0)),
            })
        }
        Err(CoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let mut c = Chrome::new(visit, |t| t.enroll_title);
    if let Some(m) = notice {
        c = c.problem(m);
    }
    Ok(page(
        visit,
        status,
        &EnrollPage {
            c,
            required: enrolling_only(visit),
            pending,
            code_error: code_error.map(Message::text),
        },
    ))
}

/// A form with only its token.
#[derive(Deserialize)]
pub struct Empty {}

/// `POST /ui/account/enroll`: a new pending secret (replacing a pending one).
pub async fn enroll_start(
    State(state): State<AppState>,
    posted: Posted<Empty>,
) -> Result<Response, WebError> {
    let visit = posted.visit;
    let (p, username) = own(&visit)?;
    match state
        .service
        .begin_enrollment(p, &username, &TotpOptions::default(), &visit.meta)
        .await
    {
        Ok(_) => Ok(see_other("/ui/account/enroll", [])),
        Err(e) => {
            let (status, message) = message_of(&e);
            enroll_view(&state, &visit, status, Some(message), None).await
        }
    }
}

/// The confirming code, and which pending secret the page showed.
#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    code: Zeroizing<String>,
    #[serde(default)]
    fingerprint: String,
}

/// The recovery codes, shown once.
#[derive(Template)]
#[template(path = "web/codes.html")]
struct CodesPage {
    c: Chrome,
    codes: Vec<String>,
    /// The first lines of the downloaded file.
    heading: String,
}

fn codes_page(visit: &Visit, username: &str, codes: &[Shown]) -> Response {
    let codes: Vec<String> = codes.iter().map(|c| c.expose().to_owned()).collect();
    let c = Chrome::new(visit, |t| t.codes_title);
    // The file is made in the browser from the list on the page (never a `data:` address,
    // which the browser would keep, codes and all, in its download history).
    let heading = format!("{}\n{username}", c.t.codes_file_heading);
    page(visit, StatusCode::OK, &CodesPage { c, codes, heading })
}

/// `POST /ui/account/enroll/confirm`.
pub async fn enroll_confirm(
    State(state): State<AppState>,
    posted: Posted<ConfirmForm>,
) -> Result<Response, WebError> {
    let Posted { visit, form } = posted;
    let (p, username) = own(&visit)?;
    // The page showed one pending secret; if another tab has started a newer one since,
    // that one is confirmed by its own page, never by a code read from this one.
    let current = status_of(&state, p, &username).await?;
    let now = state.service.now();
    match current {
        Some(s) if s.state == "pending" && !s.lapsed(now) => {
            if s.fingerprint != form.fingerprint {
                return enroll_view(
                    &state,
                    &visit,
                    StatusCode::CONFLICT,
                    Some(Message::EnrollmentReplaced),
                    None,
                )
                .await;
            }
        }
        _ => {
            return enroll_view(
                &state,
                &visit,
                StatusCode::NOT_FOUND,
                Some(Message::EnrollmentExpired),
                None,
            )
            .await;
        }
    }
    if form.code.trim().is_empty() {
        return enroll_view(
            &state,
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(Message::MissingField),
        )
        .await;
    }
    match state
        .service
        .confirm_enrollment(
            p,
            &username,
            form.code.trim(),
            RecoveryCodeSet::Policy,
            &visit.meta,
        )
        .await
    {
        Ok(codes) => Ok(codes_page(&visit, &username, &codes)),
        Err(e @ (CoreError::SecondFactorFailed { .. } | CoreError::Invalid { .. })) => {
            let (status, message) = message_of(&e);
            enroll_view(&state, &visit, status, None, Some(message)).await
        }
        Err(e) => {
            let (status, message) = message_of(&e);
            enroll_view(&state, &visit, status, Some(message), None).await
        }
    }
}

/// "I have saved them".
#[derive(Deserialize)]
pub struct SavedForm {
    #[serde(default)]
    saved: Option<String>,
}

/// `POST /ui/account/recovery-codes/saved`.
pub async fn codes_saved(posted: Posted<SavedForm>) -> Response {
    if posted.form.saved.is_some() {
        see_other("/ui/account", [])
    } else {
        see_other(
            &format!("/ui/account?m={}", Message::CodesNotConfirmed.code()),
            [],
        )
    }
}

/// The page that confirms a change (and asks for a code when the core wants one).
#[derive(Template)]
#[template(path = "web/confirm.html")]
pub struct ConfirmPage {
    pub c: Chrome,
    pub question: &'static str,
    pub button: &'static str,
    pub post_to: String,
    pub cancel_to: String,
    pub ask_code: bool,
    /// Why a code is asked: a problem (a wrong code) or, when the core simply wants a fresh
    /// one, no problem at all.
    pub code_error: Option<&'static str>,
    pub code_hint: Option<&'static str>,
    /// Whom the change is about (an admin's page), if not the signed-in account.
    pub subject: Option<String>,
    /// The state of the factor the page was shown for ([`version_of`]), sent back so that a
    /// form sent twice (a reload, a second tab) changes nothing the second time.
    pub version: String,
}

/// The state of an account's second factor as a form saw it: its secret's fingerprint and
/// when its recovery codes were issued. A change to either makes older forms stale.
pub fn version_of(status: Option<&TotpStatus>) -> String {
    status.map_or_else(String::new, |s| {
        format!(
            "{}.{}",
            s.fingerprint,
            s.recovery_codes_issued_at.unwrap_or_default()
        )
    })
}

/// A change to one's own second factor.
#[derive(Debug, Clone, Copy)]
enum Action {
    Renew,
    Remove,
    Regenerate,
}

impl Action {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "renew" => Some(Action::Renew),
            "remove" => Some(Action::Remove),
            "regenerate" => Some(Action::Regenerate),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Renew => "renew",
            Action::Remove => "remove",
            Action::Regenerate => "regenerate",
        }
    }

    fn confirm_page(self, visit: &Visit, version: String) -> ConfirmPage {
        let c = Chrome::new(visit, |t| t.confirm_title);
        let (question, button) = match self {
            Action::Renew => (c.t.confirm_renew, c.t.renew),
            Action::Remove => (c.t.confirm_remove, c.t.remove),
            Action::Regenerate => (c.t.confirm_regenerate, c.t.regenerate),
        };
        ConfirmPage {
            c,
            question,
            button,
            post_to: format!("/ui/account/{}", self.name()),
            cancel_to: "/ui/account".into(),
            ask_code: false,
            code_error: None,
            code_hint: None,
            subject: None,
            version,
        }
    }
}

/// `GET /ui/account/confirm/{action}`.
pub async fn confirm_page(
    State(state): State<AppState>,
    visit: Visit,
    WebPath(action): WebPath<String>,
) -> Result<Response, WebError> {
    let (p, username) = own(&visit)?;
    let action = Action::parse(&action).ok_or(WebError::Refused(Message::NotFound))?;
    let version = version_of(status_of(&state, p, &username).await?.as_ref());
    Ok(page(
        &visit,
        StatusCode::OK,
        &action.confirm_page(&visit, version),
    ))
}

/// A confirmed change, with the step-up code when one was asked for.
#[derive(Deserialize)]
pub struct ActForm {
    #[serde(default)]
    code: Zeroizing<String>,
    #[serde(default)]
    version: String,
}

/// The renewed secret, shown once.
#[derive(Template)]
#[template(path = "web/renewed.html")]
struct RenewedPage {
    c: Chrome,
    secret: SecretView,
}

/// `POST /ui/account/{action}`: renew, remove, regenerate — each under the core's step-up.
pub async fn act(
    State(state): State<AppState>,
    WebPath(action): WebPath<String>,
    posted: Posted<ActForm>,
) -> Result<Response, WebError> {
    let Posted { visit, form } = posted;
    let (p, username) = own(&visit)?;
    let action = Action::parse(&action).ok_or(WebError::Refused(Message::NotFound))?;
    let code = Some(form.code.trim()).filter(|c| !c.is_empty());
    let service = &state.service;
    let version = version_of(status_of(&state, p, &username).await?.as_ref());
    if version != form.version {
        return Ok(see_other(
            &format!("/ui/account?m={}", Message::FactorChanged.code()),
            [],
        ));
    }
    let result = match action {
        Action::Renew => service
            .renew_totp(p, &username, &TotpOptions::default(), code, &visit.meta)
            .await
            .and_then(|r| {
                let secret = SecretView::of(&r.provisioning_uri).map_err(|e| match e {
                    WebError::Core(e) => e,
                    _ => CoreError::Internal("the secret cannot be shown".into()),
                })?;
                let c = Chrome::new(&visit, |t| t.renewed_title);
                Ok(page(&visit, StatusCode::OK, &RenewedPage { c, secret }))
            }),
        Action::Remove => service
            .remove_totp(p, &username, code, &visit.meta)
            .await
            .map(|()| see_other(&format!("/ui/account?m={}", Message::Removed.code()), [])),
        Action::Regenerate => service
            .regenerate_recovery_codes(p, &username, code, RecoveryCodeSet::Policy, &visit.meta)
            .await
            .map(|codes| codes_page(&visit, &username, &codes)),
    };
    match result {
        Ok(response) => Ok(response),
        Err(e) => {
            let (status, message) = match (&e, action) {
                // The core's refusal under an enforced policy, in the page's own words.
                (CoreError::Forbidden(_), Action::Remove) => {
                    (StatusCode::FORBIDDEN, Message::PolicyKeepsFactor)
                }
                _ => message_of(&e),
            };
            let mut confirm = action.confirm_page(&visit, form.version);
            match e {
                CoreError::StepUpRequired => {
                    confirm.ask_code = true;
                    confirm.code_hint = Some(message.text());
                }
                CoreError::SecondFactorFailed { .. } | CoreError::Invalid { .. } => {
                    confirm.ask_code = true;
                    confirm.code_error = Some(message.text());
                }
                _ => confirm.c = confirm.c.problem(message),
            }
            Ok(page(&visit, status, &confirm))
        }
    }
}

/// The password page.
#[derive(Template)]
#[template(path = "web/password.html")]
struct PasswordPage {
    c: Chrome,
    ask_code: bool,
    current_error: Option<&'static str>,
    new_error: Option<String>,
    repeat_error: Option<&'static str>,
    code_hint: Option<&'static str>,
    code_error: Option<&'static str>,
}

impl PasswordPage {
    fn new(visit: &Visit) -> Self {
        PasswordPage {
            c: Chrome::new(visit, |t| t.password_title),
            ask_code: false,
            current_error: None,
            new_error: None,
            repeat_error: None,
            code_hint: None,
            code_error: None,
        }
    }
}

/// `GET /ui/account/password`.
pub async fn password_page(visit: Visit) -> Result<Response, WebError> {
    own(&visit)?;
    if enrolling_only(&visit) {
        return Ok(see_other("/ui/account/enroll", visit.set_cookies));
    }
    Ok(page(&visit, StatusCode::OK, &PasswordPage::new(&visit)))
}

/// The password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: Zeroizing<String>,
    #[serde(default)]
    new: Zeroizing<String>,
    #[serde(default)]
    repeat: Zeroizing<String>,
    #[serde(default)]
    code: Zeroizing<String>,
}

/// `POST /ui/account/password`: the core asks for the current password, or — for an account
/// with an authenticator — a recent second factor or a code; it ends the other sessions.
pub async fn change_password(
    State(state): State<AppState>,
    posted: Posted<PasswordForm>,
) -> Result<Response, WebError> {
    let Posted { visit, form } = posted;
    let (p, username) = own(&visit)?;
    if enrolling_only(&visit) {
        return Err(WebError::Refused(Message::NotAllowed));
    }
    let mut again = PasswordPage::new(&visit);
    if form.new.as_str() != form.repeat.as_str() {
        again.repeat_error = Some(Message::PasswordsDiffer.text());
        return Ok(page(&visit, StatusCode::UNPROCESSABLE_ENTITY, &again));
    }
    // The current password is a guess like any other: it takes from the login budget.
    if !form.current.is_empty()
        && let Err(wait) = crate::app::limit::login_attempt(&state, visit.peer)
    {
        again.current_error = Some(Message::TooManyAttempts.text());
        let mut response = page(&visit, StatusCode::TOO_MANY_REQUESTS, &again);
        if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        return Ok(response);
    }
    let current = Some(form.current.clone()).filter(|c| !c.is_empty());
    let code = Some(form.code.trim()).filter(|c| !c.is_empty());
    match state
        .service
        .set_password(
            p,
            &username,
            Some(form.new.clone()),
            current,
            code,
            &visit.meta,
        )
        .await
    {
        Ok(()) => Ok(see_other(
            &format!("/ui/account?m={}", Message::PasswordChanged.code()),
            [],
        )),
        Err(e) => {
            let (status, message) = message_of(&e);
            match &e {
                CoreError::StepUpRequired => {
                    again.ask_code = true;
                    again.code_hint = Some(message.text());
                }
                CoreError::SecondFactorFailed { .. } => {
                    again.ask_code = true;
                    again.code_error = Some(message.text());
                }
                CoreError::Forbidden(_) => {
                    again.current_error = Some(Message::WrongCurrentPassword.text());
                }
                CoreError::Invalid { field, .. } if field == "current_password" => {
                    again.current_error = Some(Message::MissingField.text());
                }
                CoreError::Invalid { message, .. } => {
                    again.new_error = Some(message.to_string());
                }
                _ => again.c = again.c.problem(message),
            }
            Ok(page(&visit, status, &again))
        }
    }
}
