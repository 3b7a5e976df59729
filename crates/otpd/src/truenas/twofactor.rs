//! `auth.twofactor.config` / `auth.twofactor.update`: the core policy seen through TrueNAS's
//! eyes. `enabled` is whether logins ask enrolled accounts for their second factor
//! (`second_factor_at_login`), `window` is the policy window, `services.ssh` is the policy's
//! `ssh_second_factor`: no second copy of any of them.

use super::Conn;
use super::params::Args;
use super::rpc::RpcError;
use otpd_core::{Policy, Principal};
use serde_json::{Value, json};

fn entry(policy: &Policy) -> Value {
    json!({
        "enabled": policy.second_factor_at_login,
        "services": {"ssh": policy.ssh_second_factor},
        "window": policy.window,
        "id": 1,
    })
}

/// `auth.twofactor.config()`.
pub(super) async fn config(conn: &Conn, principal: &Principal) -> Result<Value, RpcError> {
    let policy = conn
        .service()
        .get_policy(principal)
        .await
        .map_err(RpcError::from_core)?;
    Ok(entry(&policy))
}

/// `auth.twofactor.update(auth_twofactor_update)` → the new entry.
pub(super) async fn update(
    conn: &Conn,
    principal: &Principal,
    params: &[Value],
) -> Result<Value, RpcError> {
    const P: &str = "auth_twofactor_update";
    let mut args = Args::new(params, &[P])?;
    let mut enabled = None;
    let mut window = None;
    let mut ssh = None;
    if let Some(obj) = args.object(0, "TwoFactorAuthUpdate", false) {
        let mut f = obj.fields();
        enabled = f.bool("enabled");
        window = f.int("window", Some(0), None);
        if let Some(services) = f.object("services", "TwoFactorAuthServices") {
            let mut s = services.fields();
            ssh = s.bool("ssh");
            f.errors.extend(s.finish());
        }
        args.absorb(f.finish());
    }
    args.finish()?;
    let mut policy = conn
        .service()
        .get_policy(principal)
        .await
        .map_err(RpcError::from_core)?;
    if let Some(e) = enabled {
        policy.second_factor_at_login = e;
    }
    if let Some(w) = window {
        // The core's range (0-10) applies; beyond it is refused, not clamped.
        policy.window = u16::try_from(w).unwrap_or(u16::MAX);
    }
    if let Some(s) = ssh {
        policy.ssh_second_factor = s;
    }
    let meta = conn.meta.clone();
    let policy = conn
        .service()
        .set_policy(principal, policy, &meta)
        .await
        .map_err(|e| RpcError::from_core_under(P, e))?;
    Ok(entry(&policy))
}
