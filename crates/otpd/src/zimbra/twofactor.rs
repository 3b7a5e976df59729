//! The seed's `EnableTwoFactorAuthRequest` in its two steps, and the requests around it:
//! `DisableTwoFactorAuthRequest`, `GetScratchCodesRequest`, `GenerateScratchCodesRequest`,
//! and the admin namespace's `DisableTwoFactorAuthRequest` and
//! `ClearTwoFactorAuthDataRequest` (seed 004; dialects.md §4; maldua's
//! `EnableTwoFactorAuth.java`, zm-mailbox's `*TwoFactorAuth*` and `*ScratchCodes*`
//! messages). Scratch codes are the account's recovery codes, 10 of 8 characters as Zimbra
//! issues them.

use super::auth::principal;
use super::fault::Fault;
use super::soap::{Element, Scalar};
use super::{Answer, Ctx, URN_ACCOUNT, URN_ADMIN};
use otpd_core::{
    CoreError, EnablementProof, EnablementStart, PasswordProof, Principal, RecoveryCodeSet, Shown,
    TotpOptions,
};
use zeroize::Zeroizing;

/// Zimbra's scratch codes: `zimbraTwoFactorAuthNumScratchCodes` 10, of
/// `zimbraTwoFactorScratchCodeLength` 8.
const SCRATCH_CODES: RecoveryCodeSet = RecoveryCodeSet::Exactly {
    count: 10,
    length: 8,
};

fn scratch_codes(codes: &[Shown]) -> Element {
    codes
        .iter()
        .fold(Element::new("scratchCodes", None), |list, code| {
            list.child(Element::new("scratchCode", None).text(code.expose()))
        })
}

/// `<method>`: `app` (the default) or nothing; `email` is not offered.
fn check_method(request: &Element) -> Result<(), Fault> {
    match request.value("method").map(str::trim) {
        None | Some("") | Some("app") => Ok(()),
        Some(other) => Err(Fault::method_not_allowed(other)),
    }
}

/// `EnableTwoFactorAuthRequest` (no session needed). Step 1 (`name`, `password`, no code)
/// answers the pending `secret` and a single-use enablement `authToken` (its `lifetime` in
/// ms as an attribute), or the empty answer when the account already has 2FA. Step 2
/// (`name`, that `authToken` or the `password`, `twoFactorCode`) enables it and answers a
/// new session's `authToken` (and cookie) and the `scratchCodes`; the account's other
/// sessions end.
pub(super) async fn enable(ctx: &Ctx<'_>, request: &Element) -> Result<Answer, Fault> {
    let name = request
        .value("name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Fault::invalid("missing required element: name"))?;
    check_method(request)?;
    let password = request
        .value("password")
        .map(|p| PasswordProof::Plain(Zeroizing::new(p.to_owned())));
    let token = request
        .first("authToken")
        .and_then(|t| t.text.as_deref())
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let service = &ctx.state.service;
    let empty = || {
        Answer::new(Element::new(
            "EnableTwoFactorAuthResponse",
            Some(URN_ACCOUNT),
        ))
    };
    let Some(code) = request.value("twoFactorCode").map(str::trim) else {
        let Some(password) = password else {
            return Err(Fault::auth_failed(name));
        };
        ctx.attempt()?;
        let started = service
            .start_enablement(name, password, &TotpOptions::default(), &ctx.meta)
            .await;
        return match started {
            Ok(EnablementStart::AlreadyEnabled) => Ok(empty()),
            Ok(EnablementStart::Started { secret, token, .. }) => {
                let now = service.now();
                let lifetime = token
                    .expires_at
                    .saturating_sub(now)
                    .max(0)
                    .saturating_mul(1000);
                let mut response = Element::new("EnableTwoFactorAuthResponse", Some(URN_ACCOUNT))
                    .child(Element::new("secret", None).text(secret.expose()))
                    .child(
                        Element::new("authToken", None)
                            .attr("lifetime", Scalar::Number(lifetime))
                            .text(token.token.expose()),
                    );
                if request
                    .value("csrfTokenSecured")
                    .is_some_and(|v| v == "1" || v == "true")
                {
                    response = response.child(Element::new("csrfToken", None).text(csrf_token()));
                }
                Ok(Answer::new(response))
            }
            Err(CoreError::Unauthenticated | CoreError::AccountLocked) => {
                Err(Fault::auth_failed(name))
            }
            Err(CoreError::Forbidden(_)) => Err(Fault::cannot_enable()),
            Err(e) => Err(e.into()),
        };
    };
    let proof = match (token, password) {
        (Some(token), _) => {
            // The named account must be the token's.
            match service.authenticate(token).await {
                Ok(Principal::Account(caller)) if caller.username.eq_ignore_ascii_case(name) => {}
                Ok(_) | Err(CoreError::Unauthenticated) => return Err(Fault::auth_failed(name)),
                Err(e) => return Err(e.into()),
            }
            EnablementProof::Token(token)
        }
        (None, Some(password)) => EnablementProof::Password {
            username: name,
            password,
        },
        (None, None) => return Err(Fault::auth_failed(name)),
    };
    ctx.attempt()?;
    match service
        .complete_enablement(proof, code, SCRATCH_CODES, &ctx.meta)
        .await
    {
        Ok(enabled) => {
            let token = enabled.session.token.expose();
            let max_age = enabled
                .session
                .expires_at
                .saturating_sub(service.now())
                .max(0);
            let response = Element::new("EnableTwoFactorAuthResponse", Some(URN_ACCOUNT))
                .child(Element::new("authToken", None).text(token))
                .child(scratch_codes(&enabled.recovery_codes));
            Ok(Answer::new(response).with_cookie(token, max_age))
        }
        Err(CoreError::Unauthenticated | CoreError::AccountLocked) => Err(Fault::auth_failed(name)),
        Err(CoreError::SecondFactorFailed { .. } | CoreError::Invalid { .. }) => {
            Err(Fault::two_factor_failed(name))
        }
        // Enabled meanwhile (or by the same steps again): nothing to do, as step 1 answers.
        Err(CoreError::Conflict(_)) => Ok(empty()),
        Err(CoreError::NotFound(_)) => Err(Fault::two_factor_failed(name)),
        Err(CoreError::Forbidden(_)) => Err(Fault::cannot_enable()),
        Err(e) => Err(e.into()),
    }
}

/// A CSRF token for a client that asked for one (`csrfTokenSecured="1"`): random, for the
/// client to send back as `X-Zimbra-Csrf-Token`. otpd does not check it: its cookie is
/// `SameSite=Strict`, so no other site's page can make a browser send it
/// (docs/dialects/zimbra.md, deviations).
fn csrf_token() -> String {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// The caller's own name, for the requests that act on it.
fn own(principal: &Principal) -> Result<String, Fault> {
    match principal {
        Principal::Account(caller) => Ok(caller.username.clone()),
        Principal::Cli => Err(Fault::auth_required()),
    }
}

/// `DisableTwoFactorAuthRequest` (auth required): removes the caller's TOTP and scratch
/// codes — after a second factor proven within the step-up window (else
/// `account.TWO_FACTOR_AUTH_REQUIRED`: log in again with a code first).
pub(super) async fn disable(ctx: &Ctx<'_>, request: &Element) -> Result<Answer, Fault> {
    check_method(request)?;
    let principal = principal(ctx).await?;
    let name = own(&principal)?;
    match ctx
        .state
        .service
        .remove_totp(&principal, &name, None, &ctx.meta)
        .await
    {
        Ok(()) | Err(CoreError::NotFound("authenticator")) => Ok(Answer::new(Element::new(
            "DisableTwoFactorAuthResponse",
            Some(URN_ACCOUNT),
        ))),
        Err(CoreError::Forbidden(_)) => Err(Fault::cannot_disable()),
        Err(e) => Err(e.into()),
    }
}

fn not_enabled() -> Fault {
    Fault::failure("two-factor authentication is not enabled")
}

/// `GetScratchCodesRequest` (auth required, step-up): the remaining scratch codes.
pub(super) async fn get_scratch_codes(ctx: &Ctx<'_>) -> Result<Answer, Fault> {
    let principal = principal(ctx).await?;
    let name = own(&principal)?;
    let service = &ctx.state.service;
    if !has_totp(ctx, &principal, &name).await? {
        return Err(not_enabled());
    }
    let codes = service
        .list_recovery_codes(&principal, &name, None, &ctx.meta)
        .await?;
    Ok(Answer::new(
        Element::new("GetScratchCodesResponse", Some(URN_ACCOUNT))
            .unique_child(scratch_codes(&codes)),
    ))
}

/// `GenerateScratchCodesRequest` (auth required, step-up): a new set, the old void.
pub(super) async fn generate_scratch_codes(ctx: &Ctx<'_>) -> Result<Answer, Fault> {
    let principal = principal(ctx).await?;
    let name = own(&principal)?;
    if !has_totp(ctx, &principal, &name).await? {
        return Err(not_enabled());
    }
    let codes = ctx
        .state
        .service
        .regenerate_recovery_codes(&principal, &name, None, SCRATCH_CODES, &ctx.meta)
        .await?;
    Ok(Answer::new(
        Element::new("GenerateScratchCodesResponse", Some(URN_ACCOUNT))
            .unique_child(scratch_codes(&codes)),
    ))
}

async fn has_totp(ctx: &Ctx<'_>, principal: &Principal, name: &str) -> Result<bool, Fault> {
    match ctx.state.service.totp_status(principal, name).await {
        Ok(status) => Ok(status.state == "active"),
        Err(CoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The admin namespace's `DisableTwoFactorAuthRequest` and `ClearTwoFactorAuthDataRequest`
/// for `<account by="name">`: the account's TOTP and scratch codes are removed and its
/// sessions end (the core's reset; `twofactor_admin` or `full_admin`, else
/// `service.PERM_DENIED`). A class of service (`<cos>`) is not supported.
pub(super) async fn admin_clear(ctx: &Ctx<'_>, request: &Element) -> Result<Answer, Fault> {
    if request.first("cos").is_some() {
        return Err(Fault::invalid(
            "classes of service are not supported; name an account",
        ));
    }
    let account = request
        .first("account")
        .ok_or_else(|| Fault::invalid("Must specify an account"))?;
    if account.value("by").is_some_and(|by| by != "name") {
        return Err(Fault::invalid("account by name only"));
    }
    let name = account
        .text
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Fault::invalid("Must specify an account"))?;
    let principal = principal(ctx).await?;
    // The admin namespace takes admin tokens only, as Zimbra's; the core then decides.
    if !principal.is_any_admin() {
        return Err(Fault::perm_denied("need adequate admin token"));
    }
    match ctx
        .state
        .service
        .remove_totp(&principal, name, None, &ctx.meta)
        .await
    {
        Ok(()) | Err(CoreError::NotFound("authenticator")) => {
            let response = format!("{}Response", request.name.trim_end_matches("Request"));
            Ok(Answer::new(Element::new(&response, Some(URN_ADMIN))))
        }
        Err(CoreError::Forbidden(_)) => Err(Fault::perm_denied("need adequate admin token")),
        Err(CoreError::NotFound(_)) => Err(Fault::no_such_account(name)),
        Err(e) => Err(e.into()),
    }
}
