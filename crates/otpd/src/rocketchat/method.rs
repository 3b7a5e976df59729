//! Rocket.Chat's `method.call` envelope and the TOTP methods its clients call through it
//! (dialects.md §3, "Enrolment / management"; `app/api/server/v1/misc.ts`,
//! `app/2fa/server/methods/*.ts`, `app/2fa/server/functions/totp.ts`).
//!
//! `POST method.call/<name>` carries `{"message": "<EJSON of {msg:'method', id, method,
//! params}>"}` and is answered HTTP 200 `{"message": "<EJSON of {msg:'result', id, result?,
//! error?}>", "success": true}` — a method's error too. The method called is the one the
//! message names, as in Rocket.Chat (the name in the path is not read). The values these
//! methods take and give are strings, arrays and objects, which EJSON writes as JSON.

use super::auth::Caller;
use super::error::RcError;
use super::{Body, ok};
use crate::app::AppState;
use crate::app::limit::login_attempt;
use axum::extract::State;
use axum::response::Response;
use otpd_core::{
    CoreError, Principal, Reauthentication, RecoveryCodeSet, RequestMeta, TotpOptions, VerifyReason,
};
use serde_json::{Map, Value, json};

/// Rocket.Chat's backup codes: 12 of 8 characters (`app/2fa/server/lib/totp.ts`).
const BACKUP_CODES: RecoveryCodeSet = RecoveryCodeSet::Exactly {
    count: 12,
    length: 8,
};

/// A method's error, as `Meteor.Error(error, reason)` serialises it.
struct MethodError {
    error: Value,
    reason: Option<String>,
}

impl MethodError {
    fn new(error: impl Into<Value>, reason: Option<&str>) -> Self {
        MethodError {
            error: error.into(),
            reason: reason.map(str::to_owned),
        }
    }

    fn to_json(&self) -> Value {
        let tag = match &self.error {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let message = match &self.reason {
            Some(reason) => format!("{reason} [{tag}]"),
            None => format!("[{tag}]"),
        };
        let mut error = json!({
            "isClientSafe": true,
            "error": self.error,
            "message": message,
            "errorType": "Meteor.Error",
        });
        if let (Some(reason), Value::Object(fields)) = (&self.reason, &mut error) {
            fields.insert("reason".into(), reason.clone().into());
        }
        error
    }
}

/// What a method gives: a result, no result (`undefined`), or an error.
type Outcome = Result<Option<Value>, MethodError>;

/// A method call, as its message carries it.
struct Call {
    id: String,
    method: String,
    params: Vec<Value>,
}

/// Reads the envelope: the body must be `{"message": "<string>"}`, the message an EJSON
/// object of exactly `msg: "method"`, `id`, `method` and `params` (Rocket.Chat's
/// `isMeteorCall` and `isMethodCallProps`).
fn envelope(body: Body) -> Result<Call, RcError> {
    let body = body.object()?;
    if let Some(key) = body.keys().find(|k| *k != "message") {
        return Err(RcError::unexpected(key));
    }
    let Some(Value::String(message)) = body.get("message") else {
        return Err(RcError::invalid_params(
            "must have required property 'message' (a string)",
        ));
    };
    let value: Value = crate::json::from_slice(message.as_bytes())
        .map_err(|e| RcError::failure(format!("SyntaxError: {e}")))?;
    let invalid = || RcError::failure("Invalid method call");
    let Value::Object(mut call) = value else {
        return Err(invalid());
    };
    if call.len() != 4 || call.remove("msg") != Some(Value::String("method".into())) {
        return Err(invalid());
    }
    match (
        call.remove("id"),
        call.remove("method"),
        call.remove("params"),
    ) {
        (Some(Value::String(id)), Some(Value::String(method)), Some(Value::Array(params))) => {
            Ok(Call { id, method, params })
        }
        _ => Err(invalid()),
    }
}

/// The answer to a call: HTTP 200 whatever the method did.
fn answer(id: String, outcome: Outcome) -> Response {
    let mut message = Map::new();
    message.insert("msg".into(), "result".into());
    message.insert("id".into(), id.into());
    match outcome {
        Ok(Some(result)) => {
            message.insert("result".into(), result);
        }
        Ok(None) => {}
        Err(error) => {
            message.insert("error".into(), error.to_json());
        }
    }
    ok(json!({"message": Value::Object(message).to_string()}))
}

/// `POST /api/v1/method.call/<name>`: a method as the caller.
pub(super) async fn call(
    State(state): State<AppState>,
    caller: Caller,
    body: Body,
) -> Result<Response, RcError> {
    let call = envelope(body)?;
    let outcome = run(&state, Some(&caller), &call).await?;
    Ok(answer(call.id, outcome))
}

/// `POST /api/v1/method.callAnon/<name>`: a method without a user — which every TOTP
/// method refuses (`not-authorized`).
pub(super) async fn call_anon(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, RcError> {
    let call = envelope(body)?;
    let outcome = run(&state, None, &call).await?;
    Ok(answer(call.id, outcome))
}

/// Runs a method. An `Err` is the server's fault (answered as an HTTP error); everything
/// the caller did wrong is the method's error, inside the answer.
async fn run(state: &AppState, caller: Option<&Caller>, call: &Call) -> Result<Outcome, RcError> {
    const METHODS: [&str; 5] = [
        "2fa:enable",
        "2fa:validateTempToken",
        "2fa:disable",
        "2fa:regenerateCodes",
        "2fa:checkCodesRemaining",
    ];
    let name = call.method.as_str();
    if !METHODS.contains(&name) {
        let reason = format!("Method '{name}' not found");
        return Ok(Err(MethodError::new(404, Some(&reason))));
    }
    let Some(caller) = caller else {
        return Ok(Err(MethodError::new("not-authorized", None)));
    };
    let methods = Methods {
        state,
        principal: &caller.principal,
        username: caller.username(),
        meta: &caller.meta,
    };
    let code = || match call.params.first() {
        Some(Value::String(code)) => Ok(code.as_str()),
        _ => Err(MethodError::new(400, Some("Match failed"))),
    };
    // A method that checks a code is a guess like a login: it takes from the address's
    // login budget first (on top of the core's lockout of wrong codes).
    if name != "2fa:enable" && name != "2fa:checkCodesRemaining" {
        login_attempt(state, caller.peer).map_err(RcError::rate_limited)?;
    }
    let outcome = match name {
        "2fa:enable" => methods.enable().await,
        "2fa:validateTempToken" => match code() {
            Ok(code) => methods.validate_temp_token(code).await,
            Err(e) => return Ok(Err(e)),
        },
        "2fa:disable" => match code() {
            Ok(code) => methods.disable(code).await,
            Err(e) => return Ok(Err(e)),
        },
        "2fa:regenerateCodes" => match code() {
            Ok(code) => methods.regenerate_codes(code).await,
            Err(e) => return Ok(Err(e)),
        },
        _ => methods.check_codes_remaining().await,
    };
    outcome.map_err(|fault| fault.into())
}

/// The TOTP methods of one caller. Each returns the method's outcome, or a core error that
/// is the server's fault.
struct Methods<'a> {
    state: &'a AppState,
    principal: &'a Principal,
    username: &'a str,
    meta: &'a RequestMeta,
}

/// A core error inside a method: the server's faults go up; the rest become `error`.
fn method_error(e: CoreError, error: &str, reason: Option<&str>) -> Result<Outcome, CoreError> {
    if crate::app::fault::server_fault(&e).is_some() {
        return Err(e);
    }
    Ok(Err(match e {
        CoreError::Unauthenticated | CoreError::Forbidden(_) => {
            MethodError::new("not-authorized", None)
        }
        CoreError::SecondFactorFailed {
            reason: VerifyReason::Locked,
        } => MethodError::new(
            "totp-max-attempts",
            Some("TOTP Maximun Failed Attempts Reached"),
        ),
        _ => MethodError::new(error, reason),
    }))
}

fn codes(codes: Vec<otpd_core::Shown>) -> Value {
    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
    json!({"codes": codes})
}

impl Methods<'_> {
    fn service(&self) -> &otpd_core::Service {
        &self.state.service
    }

    /// Whether the caller has an active authenticator that is switched on (one an admin
    /// switched off proves nothing, and these methods take no password instead).
    async fn enabled(&self) -> Result<bool, CoreError> {
        match self
            .service()
            .totp_status(self.principal, self.username)
            .await
        {
            Ok(status) => Ok(status.state == "active" && status.enabled),
            Err(CoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The caller proven again by `code`, or `None` when the code is refused.
    async fn proven(&self, code: &str) -> Result<Option<Principal>, CoreError> {
        match self
            .service()
            .reauthenticate(self.principal, Some(code), self.meta)
            .await
        {
            Ok(Reauthentication::Proven(principal)) => Ok(Some(principal)),
            Ok(_) | Err(CoreError::Invalid { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `2fa:enable()` → `{secret, url}`: a pending secret (the policy's parameters), which
    /// `2fa:validateTempToken` confirms.
    async fn enable(&self) -> Result<Outcome, CoreError> {
        match self
            .service()
            .begin_enrollment(
                self.principal,
                self.username,
                &TotpOptions::default(),
                self.meta,
            )
            .await
        {
            Ok(enrollment) => Ok(Ok(Some(json!({
                "secret": enrollment.secret.expose(),
                "url": enrollment.provisioning_uri.expose(),
            })))),
            Err(CoreError::Conflict(_)) => Ok(Err(MethodError::new(
                "error-2fa-already-enabled",
                Some("Two-factor authentication is already enabled"),
            ))),
            Err(e) => method_error(e, "error-invalid-user", Some("Invalid user")),
        }
    }

    /// `2fa:validateTempToken(code)` → `{codes}`: confirms the pending secret with a code
    /// of it and issues 12 backup codes; the account's other sessions end (core rule).
    async fn validate_temp_token(&self, code: &str) -> Result<Outcome, CoreError> {
        match self
            .service()
            .confirm_enrollment(self.principal, self.username, code, BACKUP_CODES, self.meta)
            .await
        {
            Ok(issued) => Ok(Ok(Some(codes(issued)))),
            Err(e) => method_error(e, "invalid-totp", None),
        }
    }

    /// `2fa:disable(code)` → `true`, or `false` when there is nothing to disable or the
    /// code is refused (every code is checked, however recent the session's own proof).
    async fn disable(&self, code: &str) -> Result<Outcome, CoreError> {
        if !self.enabled().await? {
            return Ok(Ok(Some(false.into())));
        }
        let Some(proven) = self.proven(code).await? else {
            return Ok(Ok(Some(false.into())));
        };
        match self
            .service()
            .remove_totp(&proven, self.username, None, self.meta)
            .await
        {
            Ok(()) => Ok(Ok(Some(true.into()))),
            Err(CoreError::NotFound(_)) => Ok(Ok(Some(false.into()))),
            Err(e) => method_error(e, "invalid-totp", None),
        }
    }

    /// `2fa:regenerateCodes(code)` → `{codes}`: 12 new backup codes, the old ones void;
    /// no result when the code is refused, `invalid-totp` without an authenticator.
    async fn regenerate_codes(&self, code: &str) -> Result<Outcome, CoreError> {
        if !self.enabled().await? {
            return Ok(Err(MethodError::new("invalid-totp", None)));
        }
        let Some(proven) = self.proven(code).await? else {
            return Ok(Ok(None));
        };
        match self
            .service()
            .regenerate_recovery_codes(&proven, self.username, None, BACKUP_CODES, self.meta)
            .await
        {
            Ok(issued) => Ok(Ok(Some(codes(issued)))),
            Err(e) => method_error(e, "invalid-totp", None),
        }
    }

    /// `2fa:checkCodesRemaining()` → `{remaining}`; `invalid-totp` without an
    /// authenticator.
    async fn check_codes_remaining(&self) -> Result<Outcome, CoreError> {
        match self
            .service()
            .totp_status(self.principal, self.username)
            .await
        {
            Ok(status) if status.state == "active" => Ok(Ok(Some(
                json!({"remaining": status.recovery_codes_remaining}),
            ))),
            Ok(_) => Ok(Err(MethodError::new("invalid-totp", None))),
            Err(e) => method_error(e, "invalid-totp", None),
        }
    }
}
