//! The admin console: accounts (search, paging, each one's second-factor state), an
//! account's page and its actions (reset, switch off/on, unlock, lock, end sessions), the
//! policy, the audit log and API keys. Read-only admins read; the core decides who may
//! act, and its refusals are shown on the page.

use super::account::{ConfirmPage, Event, FactorView, SessionRow, factor_state, overview_of};
use super::text::Message;
use super::{
    Chrome, Posted, Visit, WebError, WebPath, WebQuery, invalid_field, message_of, page, parse_day,
    see_other, when,
};
use crate::app::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use otpd_core::{
    AuditQuery, CoreError, DirectoryQuery, NewAccount, Policy, Principal, Role, Roles,
};
use serde::Deserialize;
use zeroize::Zeroizing;

/// Accounts per page.
const PAGE: u32 = 50;

/// The signed-in admin (any admin role; the core refuses the rest where it decides).
fn admin(visit: &Visit) -> Result<&Principal, WebError> {
    let p = visit.signed_in()?;
    if p.is_any_admin() {
        Ok(p)
    } else {
        Err(WebError::Refused(Message::NotAllowed))
    }
}

/// One row of the accounts table.
pub struct AccountRow {
    pub username: String,
    pub roles: String,
    pub locked: bool,
    /// `none`, `pending`, `active`, `disabled` or `locked`.
    pub state: &'static str,
    pub locked_until: String,
    pub last_used: String,
    pub recovery_codes_left: i64,
}

fn roles_text(roles: &Roles) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The accounts page.
#[derive(Template)]
#[template(path = "web/accounts.html")]
struct AccountsPage {
    c: Chrome,
    q: String,
    rows: Vec<AccountRow>,
    next: Option<String>,
    paged: bool,
    new: NewAccountForm,
    errors: FieldErrors,
}

/// Messages beside a form's fields.
#[derive(Default)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    /// The message beside `field`, or "".
    pub fn of(&self, field: &str) -> &str {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map_or("", |(_, m)| m.as_str())
    }

    /// Messages that name no field of the form.
    pub fn others(&self, fields: &[&str]) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(f, _)| !fields.contains(&f.as_str()))
            .map(|(_, m)| m.as_str())
            .collect()
    }
}

/// The search (`?q=` name prefix, `&after=` the last name of the previous page).
#[derive(Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    m: String,
}

/// `GET /ui/admin/accounts`.
pub async fn accounts(
    State(state): State<AppState>,
    visit: Visit,
    WebQuery(search): WebQuery<Search>,
) -> Result<Response, WebError> {
    let c = Chrome::new(&visit, |t| t.accounts_title).news(Message::from_code(&search.m));
    accounts_view(
        &state,
        &visit,
        c,
        search,
        NewAccountForm::default(),
        FieldErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn accounts_view(
    state: &AppState,
    visit: &Visit,
    c: Chrome,
    search: Search,
    new: NewAccountForm,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<Response, WebError> {
    let p = admin(visit)?;
    let query = DirectoryQuery {
        after: Some(search.after.clone()).filter(|a| !a.is_empty()),
        limit: PAGE,
        prefix: Some(search.q.trim().to_owned()),
        ..DirectoryQuery::default()
    };
    let (rows, c) = match state.service.list_directory(p, &query).await {
        Ok(entries) => (entries, c),
        Err(e @ CoreError::Invalid { .. }) => (Vec::new(), c.problem(message_of(&e).1)),
        Err(e) => return Err(e.into()),
    };
    let rows: Vec<AccountRow> = rows
        .into_iter()
        .map(|e| {
            let f = e.factor.as_ref();
            AccountRow {
                roles: roles_text(&e.roles),
                locked: e.locked,
                state: factor_state(
                    f.is_some(),
                    e.pending_expires_at.is_some(),
                    f.is_some_and(|f| f.enabled),
                    f.is_some_and(|f| f.locked_until.is_some()),
                ),
                locked_until: f.and_then(|f| f.locked_until).map(when).unwrap_or_default(),
                last_used: e
                    .factor
                    .as_ref()
                    .and_then(|f| f.last_used_at)
                    .map(when)
                    .unwrap_or_default(),
                recovery_codes_left: e.recovery_codes_remaining,
                username: e.username,
            }
        })
        .collect();
    let next = (rows.len() == PAGE as usize)
        .then(|| rows.last().map(|r| r.username.clone()))
        .flatten();
    Ok(page(
        visit,
        status,
        &AccountsPage {
            c,
            q: search.q,
            paged: !search.after.is_empty(),
            rows,
            next,
            new,
            errors,
        },
    ))
}

/// The new-account form.
#[derive(Deserialize, Default)]
pub struct NewAccountForm {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default, skip_serializing)]
    password: Zeroizing<String>,
    #[serde(default)]
    pub role: String,
}

/// `POST /ui/admin/accounts`: create an account (full admins; the core decides).
pub async fn create_account(
    State(state): State<AppState>,
    posted: Posted<NewAccountForm>,
) -> Result<Response, WebError> {
    let Posted { visit, mut form } = posted;
    let p = admin(&visit)?;
    // What is shown again is cut to a sensible length (the core refuses longer anyway).
    for field in [
        &mut form.username,
        &mut form.full_name,
        &mut form.email,
        &mut form.role,
    ] {
        if field.chars().count() > 256 {
            *field = field.chars().take(256).collect();
        }
    }
    let mut roles = Roles::new();
    if !form.role.is_empty() {
        match form.role.parse::<Role>() {
            Ok(role) => {
                roles.insert(role);
            }
            Err(_) => {
                let errors =
                    FieldErrors(vec![("role".into(), Message::MissingField.text().into())]);
                let c = Chrome::new(&visit, |t| t.accounts_title);
                return accounts_view(
                    &state,
                    &visit,
                    c,
                    Search::default(),
                    form,
                    errors,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        }
    }
    let new = NewAccount {
        username: form.username.trim().to_owned(),
        password: Some(form.password.clone()).filter(|p| !p.is_empty()),
        roles,
        full_name: form.full_name.trim().to_owned(),
        email: Some(form.email.trim().to_owned()).filter(|e| !e.is_empty()),
        profile: None,
    };
    match state.service.create_account(p, new, &visit.meta).await {
        Ok(account) => Ok(see_other(&account_path(&account.username), [])),
        Err(e) => {
            let (status, message) = message_of(&e);
            let errors = FieldErrors(invalid_field(&e).map_or_else(
                || vec![(String::new(), message.text().to_owned())],
                |(field, text)| {
                    vec![(
                        if field.is_empty() {
                            "username".into()
                        } else {
                            field
                        },
                        text,
                    )]
                },
            ));
            let c = Chrome::new(&visit, |t| t.accounts_title);
            accounts_view(&state, &visit, c, Search::default(), form, errors, status).await
        }
    }
}

fn account_path(username: &str) -> String {
    format!(
        "/ui/admin/accounts/{}",
        percent_encoding::utf8_percent_encode(username, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// An account's page.
#[derive(Template)]
#[template(path = "web/admin_account.html")]
struct AdminAccountPage {
    c: Chrome,
    path: String,
    username: String,
    full_name: String,
    email: String,
    roles: String,
    locked: bool,
    factor: FactorView,
    sessions: Vec<SessionRow>,
    events: Vec<Event>,
}

/// `GET /ui/admin/accounts/{name}`.
pub async fn account(
    State(state): State<AppState>,
    visit: Visit,
    WebPath(name): WebPath<String>,
    WebQuery(search): WebQuery<Search>,
) -> Result<Response, WebError> {
    let p = admin(&visit)?;
    let account = state.service.get_account(p, &name).await?;
    let (status, sessions, events) = overview_of(&state, p, &account.username).await?;
    let c = Chrome::new(&visit, |t| t.admin_account_title).news(Message::from_code(&search.m));
    Ok(page(
        &visit,
        StatusCode::OK,
        &AdminAccountPage {
            c,
            path: account_path(&account.username),
            factor: FactorView::of(status.as_ref(), state.service.now()),
            username: account.username,
            full_name: account.full_name,
            email: account.email.unwrap_or_default(),
            roles: roles_text(&account.roles),
            locked: account.locked,
            sessions,
            events,
        },
    ))
}

/// An admin's action on an account.
#[derive(Debug, Clone, Copy)]
enum Action {
    Reset,
    Disable,
    Enable,
    Unlock,
    Lock,
    RevokeSessions,
}

impl Action {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "reset" => Action::Reset,
            "disable" => Action::Disable,
            "enable" => Action::Enable,
            "unlock" => Action::Unlock,
            "lock" => Action::Lock,
            "revoke-sessions" => Action::RevokeSessions,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Action::Reset => "reset",
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Unlock => "unlock",
            Action::Lock => "lock",
            Action::RevokeSessions => "revoke-sessions",
        }
    }

    fn confirm_page(self, visit: &Visit, name: &str, path: &str) -> ConfirmPage {
        let c = Chrome::new(visit, |t| t.confirm_title);
        let t = c.t;
        let (question, button) = match self {
            Action::Reset => (t.confirm_reset, t.action_reset),
            Action::Disable => (t.confirm_disable, t.action_disable),
            Action::Enable => (t.confirm_enable, t.action_enable),
            Action::Unlock => (t.confirm_unlock, t.action_unlock),
            Action::Lock => (t.confirm_lock, t.action_lock),
            Action::RevokeSessions => (t.confirm_revoke_sessions, t.action_revoke_sessions),
        };
        ConfirmPage {
            c,
            question,
            button,
            post_to: format!("{path}/{}", self.name()),
            cancel_to: path.to_owned(),
            ask_code: false,
            code_error: None,
            code_hint: None,
            subject: Some(name.to_owned()),
            version: String::new(),
        }
    }
}

/// `GET /ui/admin/accounts/{name}/confirm/{action}`.
pub async fn confirm_page(
    visit: Visit,
    WebPath((name, action)): WebPath<(String, String)>,
) -> Result<Response, WebError> {
    admin(&visit)?;
    let action = Action::parse(&action).ok_or(WebError::Refused(Message::NotFound))?;
    Ok(page(
        &visit,
        StatusCode::OK,
        &action.confirm_page(&visit, &name, &account_path(&name)),
    ))
}

/// A confirmed action, with a code when the core asked for one (an admin acting on its own
/// second factor goes through step-up like anyone).
#[derive(Deserialize)]
pub struct ActForm {
    #[serde(default)]
    code: Zeroizing<String>,
}

/// A form with only its token.
#[derive(Deserialize)]
pub struct Empty {}

/// `POST /ui/admin/accounts/{name}/{action}`.
pub async fn act(
    State(state): State<AppState>,
    WebPath((name, action)): WebPath<(String, String)>,
    posted: Posted<ActForm>,
) -> Result<Response, WebError> {
    let Posted { visit, form } = posted;
    let p = admin(&visit)?;
    let action = Action::parse(&action).ok_or(WebError::Refused(Message::NotFound))?;
    let s = &state.service;
    let meta = &visit.meta;
    let code = Some(form.code.trim()).filter(|c| !c.is_empty());
    let done = match action {
        Action::Reset => s.remove_totp(p, &name, code, meta).await,
        Action::Disable => s
            .update_totp(p, &name, Some(false), None, code, meta)
            .await
            .map(drop),
        Action::Enable => s
            .update_totp(p, &name, Some(true), None, code, meta)
            .await
            .map(drop),
        Action::Unlock => s.set_account_locked(p, &name, false, meta).await.map(drop),
        Action::Lock => s.set_account_locked(p, &name, true, meta).await.map(drop),
        Action::RevokeSessions => s.end_sessions(p, &name, meta).await.map(drop),
    };
    let path = account_path(&name);
    match done {
        Ok(()) => Ok(see_other(&format!("{path}?m={}", Message::Done.code()), [])),
        Err(e) => {
            let (status, message) = message_of(&e);
            let mut confirm = action.confirm_page(&visit, &name, &path);
            match e {
                CoreError::StepUpRequired => {
                    confirm.ask_code = true;
                    confirm.code_hint = Some(message.text());
                }
                CoreError::SecondFactorFailed { .. } => {
                    confirm.ask_code = true;
                    confirm.code_error = Some(message.text());
                }
                _ => confirm.c = confirm.c.problem(message),
            }
            Ok(page(&visit, status, &confirm))
        }
    }
}

/// One field of the policy form.
pub struct PolicyField {
    pub name: &'static str,
    pub label: &'static str,
    /// `checkbox`, `number`, `text` or `algorithm`.
    pub kind: &'static str,
    pub value: String,
    pub checked: bool,
    pub error: String,
}

/// The policy page.
#[derive(Template)]
#[template(path = "web/policy.html")]
struct PolicyPage {
    c: Chrome,
    fields: Vec<PolicyField>,
}

fn policy_fields(policy: &Policy, t: &super::text::Text) -> Vec<PolicyField> {
    let flag = |name, label, on: bool| PolicyField {
        name,
        label,
        kind: "checkbox",
        value: String::new(),
        checked: on,
        error: String::new(),
    };
    let number = |name, label, value: String| PolicyField {
        name,
        label,
        kind: "number",
        value,
        checked: false,
        error: String::new(),
    };
    vec![
        flag("enforced", t.policy_enforced, policy.enforced),
        flag(
            "self_enrollment",
            t.policy_self_enrollment,
            policy.self_enrollment,
        ),
        flag(
            "second_factor_at_login",
            t.policy_second_factor_at_login,
            policy.second_factor_at_login,
        ),
        number("window", t.policy_window, policy.window.to_string()),
        number("digits", t.policy_digits, policy.digits.to_string()),
        number("interval", t.policy_interval, policy.interval.to_string()),
        PolicyField {
            kind: "algorithm",
            ..number("algorithm", t.policy_algorithm, policy.algorithm.clone())
        },
        PolicyField {
            kind: "text",
            ..number("issuer", t.policy_issuer, policy.issuer.clone())
        },
        number(
            "max_failures",
            t.policy_max_failures,
            policy.max_failures.to_string(),
        ),
        number(
            "lockout_secs",
            t.policy_lockout_secs,
            policy.lockout_secs.to_string(),
        ),
        number(
            "recovery_code_count",
            t.policy_recovery_code_count,
            policy.recovery_code_count.to_string(),
        ),
        number(
            "step_up_secs",
            t.policy_step_up_secs,
            policy.step_up_secs.to_string(),
        ),
        number(
            "enrollment_secs",
            t.policy_enrollment_secs,
            policy.enrollment_secs.to_string(),
        ),
        number(
            "session_secs",
            t.policy_session_secs,
            policy.session_secs.to_string(),
        ),
        number(
            "challenge_secs",
            t.policy_challenge_secs,
            policy.challenge_secs.to_string(),
        ),
    ]
}

/// `GET /ui/admin/policy`.
pub async fn policy(
    State(state): State<AppState>,
    visit: Visit,
    WebQuery(search): WebQuery<Search>,
) -> Result<Response, WebError> {
    let p = admin(&visit)?;
    let policy = state.service.get_policy(p).await?;
    let c = Chrome::new(&visit, |t| t.policy_title).news(Message::from_code(&search.m));
    let fields = policy_fields(&policy, c.t);
    Ok(page(&visit, StatusCode::OK, &PolicyPage { c, fields }))
}

/// `POST /ui/admin/policy`: the whole form, checked by the core; a field's error is shown
/// beside it and nothing is saved.
pub async fn save_policy(
    State(state): State<AppState>,
    posted: Posted<std::collections::HashMap<String, String>>,
) -> Result<Response, WebError> {
    let Posted { visit, form } = posted;
    let p = admin(&visit)?;
    let mut policy = state.service.get_policy(p).await?;
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    let (status, mut c) = (
        StatusCode::UNPROCESSABLE_ENTITY,
        Chrome::new(&visit, |t| t.policy_title),
    );
    let text = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let flag = |name: &str| form.contains_key(name);
    policy.enforced = flag("enforced");
    policy.self_enrollment = flag("self_enrollment");
    policy.second_factor_at_login = flag("second_factor_at_login");
    policy.algorithm = text("algorithm");
    policy.issuer = text("issuer");
    macro_rules! number {
        ($field:ident) => {
            match text(stringify!($field)).parse() {
                Ok(v) => policy.$field = v,
                Err(_) => errors.push((stringify!($field), c.t.not_a_number.into())),
            }
        };
    }
    number!(window);
    number!(digits);
    number!(interval);
    number!(max_failures);
    number!(lockout_secs);
    number!(recovery_code_count);
    number!(step_up_secs);
    number!(enrollment_secs);
    number!(session_secs);
    number!(challenge_secs);
    if errors.is_empty() {
        match state
            .service
            .set_policy(p, policy.clone(), &visit.meta)
            .await
        {
            Ok(_) => {
                return Ok(see_other(
                    &format!("/ui/admin/policy?m={}", Message::PolicySaved.code()),
                    [],
                ));
            }
            Err(e) => match invalid_field(&e) {
                Some((field, message)) => {
                    if let Some(name) = policy_fields(&policy, c.t)
                        .iter()
                        .map(|f| f.name)
                        .find(|n| *n == field)
                    {
                        errors.push((name, message));
                    } else {
                        c = c.problem(message_of(&e).1);
                    }
                }
                None => {
                    let (status, message) = message_of(&e);
                    let fields = policy_fields(&policy, c.t);
                    return Ok(page(
                        &visit,
                        status,
                        &PolicyPage {
                            c: c.problem(message),
                            fields,
                        },
                    ));
                }
            },
        }
    }
    if !errors.is_empty() {
        c = c.problem(Message::PolicyNotSaved);
    }
    let mut fields = policy_fields(&policy, c.t);
    for field in &mut fields {
        if let Some((_, message)) = errors.iter().find(|(n, _)| *n == field.name) {
            field.error = message.clone();
            if field.kind == "number" {
                field.value = text(field.name);
            }
        }
    }
    Ok(page(&visit, status, &PolicyPage { c, fields }))
}

/// The audit log's filters (`?account=&action=&outcome=&since=&until=&page=`).
#[derive(Deserialize, Default)]
pub struct AuditFilter {
    #[serde(default)]
    account: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// The page number, from 0 (anything else is the first page).
    #[serde(default)]
    page: String,
}

/// One row of the audit log.
pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub account: String,
    pub action: String,
    pub outcome: String,
    pub reason: String,
    pub door: String,
    pub remote_addr: String,
}

/// The audit log page.
#[derive(Template)]
#[template(path = "web/audit.html")]
struct AuditPage {
    c: Chrome,
    f: AuditFilter,
    rows: Vec<AuditRow>,
    since_error: &'static str,
    until_error: &'static str,
    previous: Option<String>,
    next: Option<String>,
}

/// Events per page of the audit log.
const AUDIT_PAGE: u32 = 50;

/// `GET /ui/admin/audit`.
pub async fn audit(
    State(state): State<AppState>,
    visit: Visit,
    WebQuery(f): WebQuery<AuditFilter>,
) -> Result<Response, WebError> {
    let p = admin(&visit)?;
    let page_number: u32 = f.page.trim().parse().unwrap_or(0).min(100_000);
    let c = Chrome::new(&visit, |t| t.audit_title);
    let day = |text: &str| {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            parse_day(text).map(Some).ok_or(c.t.not_a_day)
        }
    };
    let since = day(&f.since);
    let until = day(&f.until);
    let (rows, status) = match (&since, &until) {
        (Ok(since), Ok(until)) => {
            let query = AuditQuery {
                account: Some(f.account.trim().to_owned()).filter(|a| !a.is_empty()),
                action: Some(f.action.trim().to_owned()).filter(|a| !a.is_empty()),
                outcome: Some(f.outcome.clone()).filter(|o| o == "success" || o == "failure"),
                since: *since,
                until: until.map(|u| u + 86_400),
                limit: Some(AUDIT_PAGE),
                offset: Some(u64::from(page_number) * u64::from(AUDIT_PAGE)),
                after_id: None,
            };
            let rows = state
                .service
                .audit_events(p, &query)
                .await?
                .into_iter()
                .map(|e| AuditRow {
                    at: when(e.at),
                    actor: e.actor,
                    account: e.account.unwrap_or_default(),
                    action: e.action,
                    outcome: e.outcome,
                    reason: e.reason.unwrap_or_default(),
                    door: e.door,
                    remote_addr: e.remote_addr.unwrap_or_default(),
                })
                .collect::<Vec<_>>();
            (rows, StatusCode::OK)
        }
        _ => (Vec::new(), StatusCode::UNPROCESSABLE_ENTITY),
    };
    let link = |page: u32| {
        let query = serde_urlencoded::to_string([
            ("account", f.account.as_str()),
            ("action", f.action.as_str()),
            ("outcome", f.outcome.as_str()),
            ("since", f.since.as_str()),
            ("until", f.until.as_str()),
            ("page", page.to_string().as_str()),
        ])
        .unwrap_or_default();
        format!("/ui/admin/audit?{query}")
    };
    let previous = (page_number > 0).then(|| link(page_number - 1));
    let next = (rows.len() == AUDIT_PAGE as usize).then(|| link(page_number + 1));
    Ok(page(
        &visit,
        status,
        &AuditPage {
            c,
            since_error: since.err().unwrap_or(""),
            until_error: until.err().unwrap_or(""),
            f,
            rows,
            previous,
            next,
        },
    ))
}

/// One row of the keys table.
pub struct KeyRow {
    pub id: String,
    pub account: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
}

/// The API keys page.
#[derive(Template)]
#[template(path = "web/keys.html")]
struct KeysPage {
    c: Chrome,
    rows: Vec<KeyRow>,
    shown: Option<String>,
    account: String,
    name: String,
    error: String,
}

async fn keys_view(
    state: &AppState,
    visit: &Visit,
    c: Chrome,
    shown: Option<String>,
    form: NewKeyForm,
    error: String,
    status: StatusCode,
) -> Result<Response, WebError> {
    let p = admin(visit)?;
    let rows = state
        .service
        .list_api_keys(p, None)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            account: k.account,
            name: k.name,
            created: when(k.created_at),
            last_used: k.last_used_at.map(when).unwrap_or_default(),
        })
        .collect();
    Ok(page(
        visit,
        status,
        &KeysPage {
            c,
            rows,
            shown,
            account: form.account,
            name: form.name,
            error,
        },
    ))
}

/// `GET /ui/admin/keys`.
pub async fn keys(
    State(state): State<AppState>,
    visit: Visit,
    WebQuery(search): WebQuery<Search>,
) -> Result<Response, WebError> {
    let c = Chrome::new(&visit, |t| t.keys_title).news(Message::from_code(&search.m));
    keys_view(
        &state,
        &visit,
        c,
        None,
        NewKeyForm::default(),
        String::new(),
        StatusCode::OK,
    )
    .await
}

/// A new key's owner and label.
#[derive(Deserialize, Default)]
pub struct NewKeyForm {
    #[serde(default)]
    account: String,
    #[serde(default)]
    name: String,
}

/// `POST /ui/admin/keys`: the key is shown once, on this answer only.
pub async fn create_key(
    State(state): State<AppState>,
    posted: Posted<NewKeyForm>,
) -> Result<Response, WebError> {
    let Posted { visit, form } = posted;
    let p = admin(&visit)?;
    let c = Chrome::new(&visit, |t| t.keys_title);
    match state
        .service
        .create_api_key(p, form.account.trim(), form.name.trim(), &visit.meta)
        .await
    {
        Ok(key) => {
            let shown = Some(key.key.expose().to_owned());
            keys_view(
                &state,
                &visit,
                c,
                shown,
                NewKeyForm::default(),
                String::new(),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            let (status, message) = message_of(&e);
            let error = invalid_field(&e).map_or_else(|| message.text().to_owned(), |(_, m)| m);
            keys_view(&state, &visit, c, None, form, error, status).await
        }
    }
}

/// `GET /ui/admin/keys/{id}/confirm`: revoking a key is confirmed first.
pub async fn confirm_revoke_key(
    State(state): State<AppState>,
    visit: Visit,
    WebPath(id): WebPath<String>,
) -> Result<Response, WebError> {
    let p = admin(&visit)?;
    let key = state
        .service
        .list_api_keys(p, None)
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or(WebError::Refused(Message::NotFound))?;
    let c = Chrome::new(&visit, |t| t.confirm_title);
    let confirm = ConfirmPage {
        question: c.t.confirm_revoke_key,
        button: c.t.revoke,
        c,
        post_to: format!(
            "/ui/admin/keys/{}/revoke",
            percent_encoding::utf8_percent_encode(&key.id, percent_encoding::NON_ALPHANUMERIC)
        ),
        cancel_to: "/ui/admin/keys".into(),
        ask_code: false,
        code_error: None,
        code_hint: None,
        subject: Some(format!("{} ({})", key.name, key.account)),
        version: String::new(),
    };
    Ok(page(&visit, StatusCode::OK, &confirm))
}

/// `POST /ui/admin/keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    WebPath(id): WebPath<String>,
    posted: Posted<Empty>,
) -> Result<Response, WebError> {
    let visit = posted.visit;
    let p = admin(&visit)?;
    state.service.revoke_api_key(p, &id, &visit.meta).await?;
    Ok(see_other(
        &format!("/ui/admin/keys?m={}", Message::KeyRevoked.code()),
        [],
    ))
}
