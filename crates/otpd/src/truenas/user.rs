//! `user.*`: accounts as TrueNAS `UserEntry` objects (seed 001: every field, with the
//! TrueNAS defaults the core's `Profile` keeps), and the 2FA calls around
//! `user.renew_2fa_secret`. Users are addressed by `id`, which is the account's `uid`.

use super::Conn;
use super::params::Args;
use super::query::{self, Options};
use super::rpc::{Errno, Invalid, RpcError};
use otpd_core::{Account, AccountPatch, CoreError, NewAccount, Principal, Role, TotpOptions};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

/// TrueNAS's name for a core role. `twofactor_admin` has no TrueNAS counterpart and keeps
/// an upper-case name of its own.
pub(super) fn truenas_role(role: Role) -> &'static str {
    match role {
        Role::FullAdmin => "FULL_ADMIN",
        Role::ReadonlyAdmin => "READONLY_ADMIN",
        Role::TwofactorAdmin => "TWOFACTOR_ADMIN",
        Role::Verifier => "VERIFIER",
    }
}

/// The primary group's id: the profile's, else a per-user group numbered like the uid (as
/// TrueNAS creates one per user by default).
pub(super) fn primary_gid(account: &Account) -> i64 {
    account.profile.group.map_or(account.uid, i64::from)
}

/// TrueNAS shows hashes only as this placeholder (`Secret` fields); otpd's Argon2id hash is
/// never sent anywhere.
const REDACTED: &str = "********";

/// The `UserEntry` of seed 001.
pub(super) fn entry(account: &Account) -> Value {
    let p = &account.profile;
    let gid = primary_gid(account);
    json!({
        "id": account.uid,
        "uid": account.uid,
        "username": account.username,
        "unixhash": REDACTED,
        "smbhash": REDACTED,
        "home": p.home,
        "shell": p.shell,
        "full_name": account.full_name,
        "builtin": false,
        "smb": p.smb,
        "userns_idmap": p.userns_idmap,
        "group": {
            "id": gid,
            "bsdgrp_gid": gid,
            "bsdgrp_group": if p.group.is_none() { Value::from(account.username.clone()) } else { Value::Null },
            "bsdgrp_builtin": false,
        },
        "groups": p.groups,
        "password_disabled": account.password_disabled,
        "ssh_password_enabled": p.ssh_password_enabled,
        "sshpubkey": p.sshpubkey,
        "locked": account.locked,
        "sudo_commands": p.sudo_commands,
        "sudo_commands_nopasswd": p.sudo_commands_nopasswd,
        "email": account.email,
        "id_type_both": false,
        "local": true,
        "immutable": false,
        "twofactor_auth_configured": account.twofactor_configured,
        "sid": null,
        "last_password_change": null,
        "password_age": null,
        "password_history": REDACTED,
        "password_change_required": p.password_change_required,
        "roles": account.roles.iter().map(|r| truenas_role(*r)).collect::<Vec<_>>(),
        "api_keys": [],
    })
}

/// `UserTwofactorConfigEntry`. `provisioning_uri` is always `null` here: an active secret
/// is shown only in the answer that created it (`user.renew_2fa_secret`), never again, to
/// anyone (the core's rule; TrueNAS shows it again — a documented deviation).
pub(super) async fn twofactor_config(
    conn: &Conn,
    principal: &Principal,
    account: &Account,
) -> Result<Value, RpcError> {
    if !account.twofactor_configured {
        return Ok(json!({
            "provisioning_uri": null,
            "secret_configured": false,
            "interval": 30,
            "otp_digits": 6,
        }));
    }
    let status = conn
        .service()
        .totp_status(principal, &account.username)
        .await
        .map_err(RpcError::from_core)?;
    Ok(json!({
        "provisioning_uri": null,
        "secret_configured": true,
        "interval": status.interval,
        "otp_digits": status.digits,
    }))
}

fn no_such_user(username: &str) -> RpcError {
    RpcError::call(Errno::Enoent, format!("User '{username}' does not exist"))
}

/// The account named `username`, with TrueNAS's error for a missing one.
async fn account_named(
    conn: &Conn,
    principal: &Principal,
    username: &str,
) -> Result<Account, RpcError> {
    match conn.service().get_account(principal, username).await {
        Ok(a) => Ok(a),
        Err(CoreError::NotFound(_)) => Err(no_such_user(username)),
        Err(e) => Err(RpcError::from_core(e)),
    }
}

/// The account named by a call's only argument, `username` (and the name as given).
async fn named_by_argument(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<(String, Account), RpcError> {
    let mut args = Args::new(params, &["username"])?;
    let username = args.string(0);
    args.finish()?;
    let username = username.unwrap_or_default();
    let account = account_named(conn, principal, &username).await?;
    Ok((username, account))
}

/// The account with TrueNAS id `id` (the core decides who may see which).
async fn account_by_id(conn: &Conn, principal: &Principal, id: i64) -> Result<Account, RpcError> {
    match conn.service().account_by_uid(principal, id).await {
        Ok(a) => Ok(a),
        Err(CoreError::NotFound(_)) => Err(RpcError::call(
            Errno::Enoent,
            format!("User {id} does not exist"),
        )),
        Err(e) => Err(RpcError::from_core(e)),
    }
}

/// Every account, as entries (admins only: TrueNAS requires ACCOUNT_READ).
async fn all_entries(conn: &Conn, principal: &Principal) -> Result<Vec<Value>, RpcError> {
    const PAGE: u32 = 1000;
    let mut entries = Vec::new();
    let mut offset = 0u64;
    loop {
        let page = conn
            .service()
            .list_accounts(principal, None, PAGE, offset)
            .await
            .map_err(RpcError::from_core)?;
        let n = page.len();
        entries.extend(page.iter().map(entry));
        if n < PAGE as usize {
            return Ok(entries);
        }
        offset += u64::from(PAGE);
    }
}

/// `user.query(filters=[], options={})`.
pub(super) async fn query(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    let mut args = Args::new(params, &["filters", "options"])?;
    let filters = args.list(0).cloned().unwrap_or_default();
    args.finish()?;
    let options = Options::parse(params.get(1))?;
    query::run(all_entries(conn, principal).await?, &filters, &options)
}

/// `user.get_instance(id)`.
pub(super) async fn get_instance(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    let mut args = Args::new(params, &["id", "options"])?;
    let id = args.integer(0);
    args.finish()?;
    let account = account_by_id(conn, principal, id.unwrap_or_default()).await?;
    Ok(entry(&account))
}

/// The profile fields of `user.create`/`user.update` present in `data`, as a profile patch;
/// the identity fields are read by the callers.
fn profile_patch(data: &Map<String, Value>) -> Value {
    Value::Object(
        data.iter()
            .filter(|(k, _)| PROFILE.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// The fields of `user.create`/`user.update` that are the core's `Profile`.
const PROFILE: [&str; 11] = [
    "home",
    "shell",
    "smb",
    "userns_idmap",
    "group",
    "groups",
    "ssh_password_enabled",
    "sshpubkey",
    "sudo_commands",
    "sudo_commands_nopasswd",
    "password_change_required",
];

/// Fields of `user.create`/`user.update` that otpd accepts and has no use for (it creates no
/// home directories or groups).
const IGNORED: [&str; 4] = ["group_create", "home_create", "home_mode", "uid"];

/// The identity fields of a create/update payload (the profile fields go to the core's
/// `Profile`, which validates them).
struct Identity {
    full_name: Option<String>,
    email: Option<Option<String>>,
    /// The password given, or a generated one when `random_password` was asked for.
    password: Option<Zeroizing<String>>,
    password_disabled: Option<bool>,
    locked: Option<bool>,
}

fn identity(prefix: &str, data: &Map<String, Value>) -> Result<Identity, RpcError> {
    let mut errors = Vec::new();
    let mut string = |key: &str, nullable: bool| -> Option<Option<String>> {
        match data.get(key)? {
            Value::String(s) => Some(Some(s.clone())),
            Value::Null if nullable => Some(None),
            _ => {
                errors.push(Invalid::new(
                    format!("{prefix}.{key}"),
                    "Input should be a valid string",
                ));
                None
            }
        }
    };
    let full_name = string("full_name", false).flatten();
    let email = string("email", true);
    let password = string("password", true).flatten().map(Zeroizing::new);
    let mut boolean = |key: &str| -> Option<bool> {
        match data.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                errors.push(Invalid::new(
                    format!("{prefix}.{key}"),
                    "Input should be a valid boolean",
                ));
                None
            }
        }
    };
    let password_disabled = boolean("password_disabled");
    let locked = boolean("locked");
    let random_password = boolean("random_password").unwrap_or(false);
    if full_name.as_deref() == Some("") {
        errors.push(Invalid::new(
            format!("{prefix}.full_name"),
            "String should have at least 1 character",
        ));
    }
    const KNOWN: [&str; 7] = [
        "username",
        "full_name",
        "email",
        "password",
        "password_disabled",
        "locked",
        "random_password",
    ];
    for key in data.keys() {
        let known = KNOWN.contains(&key.as_str())
            || IGNORED.contains(&key.as_str())
            || PROFILE.contains(&key.as_str());
        if !known {
            errors.push(Invalid::new(
                format!("{prefix}.{key}"),
                "Extra inputs are not permitted",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(RpcError::Validation(errors));
    }
    let password = match (password, random_password) {
        (Some(p), _) => Some(p),
        (None, true) => Some(self::random_password()?),
        (None, false) => None,
    };
    Ok(Identity {
        full_name,
        email,
        password,
        password_disabled,
        locked,
    })
}

/// A random 20-character password (TrueNAS `random_password`).
fn random_password() -> Result<Zeroizing<String>, RpcError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|_| RpcError::call(Errno::Efault, "Internal error"))?;
    let text: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    Ok(Zeroizing::new(text))
}

/// `user.create(user_create)` → the entry plus `password` (the one given or generated).
pub(super) async fn create(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    const P: &str = "user_create";
    let mut args = Args::new(params, &[P])?;
    let obj = args.object(0, "UserCreate", false);
    args.finish()?;
    let Some(data) = obj.map(|o| o.map()) else {
        return Err(RpcError::invalid(P, "Field required"));
    };
    let username = match data.get("username") {
        Some(Value::String(u)) => u.clone(),
        Some(_) => {
            return Err(RpcError::invalid(
                format!("{P}.username"),
                "Input should be a valid string",
            ));
        }
        None => return Err(RpcError::invalid(format!("{P}.username"), "Field required")),
    };
    let id = identity(P, data)?;
    let Some(full_name) = id.full_name else {
        return Err(RpcError::invalid(
            format!("{P}.full_name"),
            "Field required",
        ));
    };
    let password = id.password;
    let shown = password.clone();
    let new = NewAccount {
        username: username.clone(),
        password: if id.password_disabled == Some(true) {
            None
        } else {
            password
        },
        full_name,
        email: id.email.flatten(),
        profile: Some(profile_patch(data)),
        ..NewAccount::default()
    };
    let meta = conn.meta.clone();
    let account = match conn.service().create_account(principal, new, &meta).await {
        Ok(a) => a,
        Err(CoreError::Conflict(_)) => {
            return Err(RpcError::Validation(vec![Invalid {
                attribute: format!("{P}.username"),
                message: format!("The username \"{username}\" already exists."),
                errno: Errno::Eexist,
            }]));
        }
        Err(e) => return Err(RpcError::from_core_under(P, e)),
    };
    let account = if id.locked == Some(true) {
        conn.service()
            .set_account_locked(principal, &account.username, true, &meta)
            .await
            .map_err(RpcError::from_core)?
    } else {
        account
    };
    let mut out = entry(&account);
    out["password"] = shown.map_or(Value::Null, |p| Value::from(p.as_str()));
    Ok(out)
}

/// `user.update(id, user_update)` → the entry plus `password`.
pub(super) async fn update(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    const P: &str = "user_update";
    let mut args = Args::new(params, &["id", P])?;
    let uid = args.integer(0);
    let obj = args.object(1, "UserUpdate", false);
    args.finish()?;
    let (Some(uid), Some(data)) = (uid, obj.map(|o| o.map())) else {
        return Err(RpcError::invalid(P, "Field required"));
    };
    let id = identity(P, data)?;
    let account = account_by_id(conn, principal, uid).await?;
    let name = account.username.clone();
    let meta = conn.meta.clone();
    if data.contains_key("username")
        && data.get("username").and_then(Value::as_str) != Some(name.as_str())
    {
        return Err(RpcError::invalid(
            format!("{P}.username"),
            "Renaming accounts is not supported by otpd",
        ));
    }
    let profile = profile_patch(data);
    let password = id.password;
    // One core call: the whole update is validated and authorized, then applied in one
    // transaction, so a refused field changes nothing.
    let patch = AccountPatch {
        full_name: id.full_name,
        email: id.email,
        profile: profile
            .as_object()
            .is_some_and(|m| !m.is_empty())
            .then_some(profile),
        password: if id.password_disabled == Some(true) {
            Some(None)
        } else {
            password.clone().map(Some)
        },
        locked: id.locked.filter(|locked| *locked != account.locked),
        ..AccountPatch::default()
    };
    let account = conn
        .service()
        .update_account(principal, &name, patch, &meta)
        .await
        .map_err(|e| RpcError::from_core_under(P, e))?;
    let account = account_named(conn, principal, &account.username).await?;
    let mut out = entry(&account);
    out["password"] = password.map_or(Value::Null, |p| Value::from(p.as_str()));
    Ok(out)
}

/// `user.delete(id, options={})` → the id.
pub(super) async fn delete(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    let mut args = Args::new(params, &["id", "options"])?;
    let uid = args.integer(0);
    args.finish()?;
    let uid = uid.unwrap_or_default();
    let account = account_by_id(conn, principal, uid).await?;
    let meta = conn.meta.clone();
    conn.service()
        .delete_account(principal, &account.username, &meta)
        .await
        .map_err(RpcError::from_core)?;
    Ok(Value::from(uid))
}

/// `user.renew_2fa_secret(username, twofactor_options)` (seeds 000/001): a new secret, active
/// at once; omitted options keep their stored values. A user without a secret gets one
/// (TrueNAS keeps a 2FA row for every user).
pub(super) async fn renew_2fa_secret(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    let mut args = Args::new(params, &["username", "twofactor_options"])?;
    let username = args.string(0);
    let options = args.object(1, "TwofactorOptions", false).map(|o| {
        let mut f = o.fields();
        let digits = f.int("otp_digits", Some(6), Some(8));
        let interval = f.int("interval", Some(5), None);
        (digits, interval, f.finish())
    });
    let (digits, interval) = match options {
        Some((d, i, errors)) => {
            args.absorb(errors);
            (d, i)
        }
        None => (None, None),
    };
    args.finish()?;
    let username = username.unwrap_or_default();
    // Who may renew is the core's rule (the account itself or a 2FA admin, which a TrueNAS
    // FULL_ADMIN is); its refusal is worded as TrueNAS words it.
    let refused = |e: CoreError| match e {
        CoreError::Forbidden(_) => RpcError::call(
            Errno::Eperm,
            format!(
                "{username}: currently authenticated credential may not renew two-factor authentication for this user."
            ),
        ),
        CoreError::NotFound("account") => no_such_user(&username),
        CoreError::Invalid { field, message } if field == "digits" => {
            RpcError::invalid("twofactor_options.otp_digits", message)
        }
        other => RpcError::from_core_under("twofactor_options", other),
    };
    let account = conn
        .service()
        .get_account(principal, &username)
        .await
        .map_err(refused)?;
    let options = TotpOptions {
        digits: digits.and_then(|d| u64::try_from(d).ok()),
        interval: interval.and_then(|i| u64::try_from(i).ok()),
        algorithm: None,
        comment: None,
    };
    let meta = conn.meta.clone();
    let (uri, digits, interval) = if account.twofactor_configured {
        let r = conn
            .service()
            .renew_totp(principal, &account.username, &options, None, &meta)
            .await
            .map_err(refused)?;
        (r.provisioning_uri, r.digits, r.interval)
    } else {
        let p = conn
            .service()
            // TrueNAS shows no current code, so none is claimed: the app's first code works.
            .provision_totp(principal, &account.username, &options, false, &meta)
            .await
            .map_err(refused)?;
        (p.provisioning_uri, p.digits, p.interval)
    };
    let account = account_named(conn, principal, &account.username).await?;
    let mut out = entry(&account);
    out["twofactor_config"] = json!({
        "provisioning_uri": uri.expose(),
        "secret_configured": true,
        "interval": interval,
        "otp_digits": digits,
    });
    Ok(out)
}

/// `user.unset_2fa_secret(username)` → null.
pub(super) async fn unset_2fa_secret(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    let (_, account) = named_by_argument(conn, principal, params).await?;
    let meta = conn.meta.clone();
    // Always through the core, so that its authorization answers first; a user without an
    // authenticator is then TrueNAS's no-op.
    match conn
        .service()
        .remove_totp(principal, &account.username, None, &meta)
        .await
    {
        Ok(()) | Err(CoreError::NotFound("authenticator")) => Ok(Value::Null),
        Err(e) => Err(RpcError::from_core(e)),
    }
}

/// `user.twofactor_config(username)`.
pub(super) async fn twofactor_config_call(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    let (_, account) = named_by_argument(conn, principal, params).await?;
    twofactor_config(conn, principal, &account).await
}

/// `user.provisioning_uri(username)`.
pub(super) async fn provisioning_uri(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    let (username, account) = named_by_argument(conn, principal, params).await?;
    if !account.twofactor_configured {
        return Err(RpcError::call(
            Errno::Efault,
            format!("'{username}' user does not have two factor authentication configured"),
        ));
    }
    // An active secret is never shown again (see `twofactor_config`): `null`, as for a
    // caller TrueNAS would not show it to. The status read keeps the core's authorization.
    conn.service()
        .totp_status(principal, &account.username)
        .await
        .map_err(RpcError::from_core)?;
    Ok(Value::Null)
}

/// `user.shell_choices()`: the shells TrueNAS offers (otpd stores the choice only).
pub(super) fn shell_choices() -> Value {
    json!({
        "/usr/bin/bash": "bash",
        "/usr/bin/rbash": "rbash",
        "/usr/bin/dash": "dash",
        "/usr/bin/sh": "sh",
        "/usr/bin/zsh": "zsh",
        "/usr/bin/tmux": "tmux",
        "/usr/sbin/nologin": "nologin",
    })
}
