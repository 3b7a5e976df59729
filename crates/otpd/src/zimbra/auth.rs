//! `AuthRequest`, account and admin, with a second factor (dialects.md §4, "AuthRequest with
//! 2FA"; `Auth.java`, `admin/Auth.java`): a password alone logs in an account without
//! 2FA; with 2FA it answers a single-use two-factor token (`twoFactorAuthRequired`), which
//! with a `twoFactorCode` — or the password and the code in one request — gives the
//! session. A code is a TOTP code or a scratch code (the core tells them apart).

use super::fault::Fault;
use super::soap::{Element, Scalar};
use super::{Answer, Ctx, URN_ACCOUNT, URN_ADMIN};
use otpd_core::{CoreError, LoginOutcome, Principal, Token};
use zeroize::Zeroizing;

/// Which namespace logs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Account,
    Admin,
}

/// The account named by `<account by="name">` (or, in the admin namespace, `name`).
fn account_name(request: &Element) -> Result<Option<String>, Fault> {
    if let Some(account) = request.first("account") {
        return match account.value("by").unwrap_or("name") {
            "name" => Ok(account.text.as_deref().map(str::trim).map(str::to_owned)),
            other => Err(Fault::invalid(&format!(
                "account by {} is not supported; use by=\"name\"",
                other.chars().take(32).collect::<String>()
            ))),
        };
    }
    Ok(request.value("name").map(str::trim).map(str::to_owned))
}

/// `AuthRequest` in `urn:zimbraAccount`.
pub(super) async fn account(ctx: &Ctx<'_>, request: &Element) -> Result<Answer, Fault> {
    login(ctx, request, Kind::Account).await
}

/// `AuthRequest` in `urn:zimbraAdmin`: the same, for accounts with an admin role only
/// (`service.PERM_DENIED` "not an admin account").
pub(super) async fn admin(ctx: &Ctx<'_>, request: &Element) -> Result<Answer, Fault> {
    login(ctx, request, Kind::Admin).await
}

async fn login(ctx: &Ctx<'_>, request: &Element, kind: Kind) -> Result<Answer, Fault> {
    let service = &ctx.state.service;
    let name = account_name(request)?;
    let shown = name.clone().unwrap_or_default();
    let code = request.value("twoFactorCode").map(str::trim);
    let password = request.value("password");
    let token = request
        .first("authToken")
        .and_then(|t| t.text.as_deref())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let session = match (password, token, code) {
        // Step 2: the two-factor token of step 1 and a code.
        (None, Some(challenge), Some(code)) => {
            ctx.attempt()?;
            let session = second_factor(ctx, challenge, code, &shown).await?;
            // The named account must be the token's, as Zimbra checks (the challenge does
            // not say whose it is before it is spent).
            if let Some(name) = name.as_deref().filter(|n| !n.is_empty()) {
                let principal = service.authenticate(session.token.expose()).await?;
                if let Principal::Account(caller) = &principal
                    && !caller.username.eq_ignore_ascii_case(name)
                {
                    service.logout(&principal, &ctx.meta).await?;
                    return Err(Fault::auth_failed(name));
                }
            }
            session
        }
        (None, Some(_), None) => return Err(Fault::auth_failed(&shown)),
        (Some(password), _, code) => {
            let Some(name) = name.as_deref().filter(|n| !n.is_empty()) else {
                return Err(Fault::invalid("missing required element: account"));
            };
            ctx.attempt()?;
            let password = Zeroizing::new(password.to_owned());
            match service.login(name, password, &ctx.meta).await {
                Ok(LoginOutcome::Session(session)) => session,
                Ok(LoginOutcome::SecondFactorRequired { challenge, roles }) => {
                    if kind == Kind::Admin && !roles.iter().any(|r| r.is_admin()) {
                        return Err(Fault::perm_denied("not an admin account"));
                    }
                    match code {
                        Some(code) => {
                            second_factor(ctx, challenge.token.expose(), code, name).await?
                        }
                        None => return Ok(Answer::new(step_one(ctx, &challenge, kind))),
                    }
                }
                Ok(LoginOutcome::EnrollmentRequired(_)) => return Err(Fault::setup_required()),
                Err(CoreError::Unauthenticated | CoreError::AccountLocked) => {
                    return Err(match kind {
                        Kind::Account => Fault::auth_failed(name),
                        Kind::Admin => Fault::perm_denied("Error in Authentication"),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        (None, None, _) => return Err(Fault::invalid("missing required element: password")),
    };
    logged_in(ctx, session, kind).await
}

/// Completes a login with its code: a wrong, replayed or locked-out code is
/// `account.TWO_FACTOR_AUTH_FAILED`; a challenge that is not live, `account.AUTH_FAILED`.
async fn second_factor(
    ctx: &Ctx<'_>,
    challenge: &str,
    code: &str,
    name: &str,
) -> Result<Token, Fault> {
    match ctx
        .state
        .service
        .second_factor(challenge, code, &ctx.meta)
        .await
    {
        Ok(session) => Ok(session),
        Err(CoreError::SecondFactorFailed { .. } | CoreError::Invalid { .. }) => {
            Err(Fault::two_factor_failed(name))
        }
        Err(CoreError::Unauthenticated | CoreError::AccountLocked) => Err(Fault::auth_failed(name)),
        Err(e) => Err(e.into()),
    }
}

/// Milliseconds from now to `expires_at`.
fn lifetime(ctx: &Ctx<'_>, expires_at: i64) -> Scalar {
    let now = ctx.state.service.now();
    Scalar::Number(expires_at.saturating_sub(now).max(0).saturating_mul(1000))
}

/// Step 1's answer: the two-factor token, and that a code is required.
fn step_one(ctx: &Ctx<'_>, challenge: &Token, kind: Kind) -> Element {
    let ns = match kind {
        Kind::Account => URN_ACCOUNT,
        Kind::Admin => URN_ADMIN,
    };
    Element::new("AuthResponse", Some(ns))
        .child(Element::new("twoFactorAuthRequired", None).text("true"))
        .content("lifetime", lifetime(ctx, challenge.expires_at))
        .child(Element::new("authToken", None).text(challenge.token.expose()))
        .child(Element::new("trustedDevicesEnabled", None).text("false"))
}

/// A full login's answer, setting the cookie. In the admin namespace the account must hold
/// an admin role; otherwise its new session is ended at once.
async fn logged_in(ctx: &Ctx<'_>, session: Token, kind: Kind) -> Result<Answer, Fault> {
    let service = &ctx.state.service;
    let token = session.token.expose();
    let lifetime = lifetime(ctx, session.expires_at);
    let max_age = session.expires_at.saturating_sub(service.now()).max(0);
    let response = match kind {
        Kind::Account => Element::new("AuthResponse", Some(URN_ACCOUNT))
            .child(Element::new("authToken", None).text(token))
            .content("lifetime", lifetime)
            .child(Element::new("skin", None).text("harmony")),
        Kind::Admin => {
            let principal = service.authenticate(token).await?;
            if !principal.is_any_admin() {
                if let Principal::Account(_) = &principal {
                    service.logout(&principal, &ctx.meta).await?;
                }
                return Err(Fault::perm_denied("not an admin account"));
            }
            Element::new("AuthResponse", Some(URN_ADMIN))
                .content("lifetime", lifetime)
                .child(Element::new("authToken", None).text(token))
        }
    };
    Ok(Answer::new(response).with_cookie(token, max_age))
}

/// The principal of the request's token (header or cookie): `service.AUTH_REQUIRED`
/// without a valid one.
pub(super) async fn principal(ctx: &Ctx<'_>) -> Result<Principal, Fault> {
    let Some(token) = ctx.token.as_deref() else {
        return Err(Fault::auth_required());
    };
    match ctx.state.service.authenticate(token).await {
        Ok(principal) => Ok(principal),
        Err(CoreError::Unauthenticated) => Err(Fault::auth_required()),
        Err(e) => Err(e.into()),
    }
}
