//! `auth.*`: logging a connection in (`auth.login_ex` and its continuation, API keys, the
//! deprecated `auth.login`), `auth.me`, `auth.logout`, `auth.mechanism_choices`.
//!
//! TrueNAS flow (dialects.md §1): `PASSWORD_PLAIN` answers `SUCCESS`, `OTP_REQUIRED` (the
//! account has an enabled authenticator and logins ask for it) or `AUTH_ERR` (unknown user
//! and wrong password are indistinguishable); `OTP_TOKEN` then completes the login with one
//! attempt — a wrong code ends the attempt with `AUTH_ERR`, as since TrueNAS 26.0.

use super::params::{Args, Fields};
use super::rpc::{Errno, RpcError};
use super::{Conn, Login, Pending};
use otpd_core::{CoreError, LoginOutcome, Principal, Role};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// The mechanisms otpd accepts (TOKEN_PLAIN and SCRAM are not offered).
const MECHANISMS: [&str; 3] = ["API_KEY_PLAIN", "PASSWORD_PLAIN", "OTP_TOKEN"];

pub(super) fn mechanism_choices() -> Value {
    json!(MECHANISMS)
}

/// What `login_ex` was asked to do, validated.
enum LoginData {
    Password {
        username: String,
        password: Zeroizing<String>,
        user_info: bool,
    },
    Otp {
        token: String,
        user_info: bool,
    },
    ApiKey {
        username: String,
        key: Zeroizing<String>,
        user_info: bool,
    },
}

fn read_login_data(params: &[Value]) -> Result<LoginData, RpcError> {
    let mut args = Args::new(params, &["login_data"])?;
    let Some(obj) = args.object(0, "dict", false) else {
        args.finish()?;
        return Err(RpcError::invalid("login_data", "Field required"));
    };
    let mut f = obj.fields();
    let mechanism = match f.raw("mechanism") {
        Some(Value::String(m)) => m.clone(),
        None => return Err(RpcError::invalid("login_data.mechanism", "Field required")),
        Some(other) => {
            return Err(RpcError::invalid(
                "login_data",
                format!(
                    "Input tag '{other}' found using 'mechanism' does not match any of the expected tags: 'API_KEY_PLAIN', 'PASSWORD_PLAIN', 'OTP_TOKEN'"
                ),
            ));
        }
    };
    // pydantic locates a discriminated union's fields under the tag.
    let data = match mechanism.as_str() {
        "PASSWORD_PLAIN" => {
            let username = f.required_string("username");
            let password = f.required_string("password");
            let user_info = login_options(&mut f);
            LoginData::Password {
                username: username.unwrap_or_default(),
                password: Zeroizing::new(password.unwrap_or_default()),
                user_info,
            }
        }
        "OTP_TOKEN" => {
            let token = f.required_string("otp_token");
            let user_info = login_options(&mut f);
            LoginData::Otp {
                token: token.unwrap_or_default(),
                user_info,
            }
        }
        "API_KEY_PLAIN" => {
            let username = f.required_string("username");
            let key = f.required_string("api_key");
            let user_info = login_options(&mut f);
            LoginData::ApiKey {
                username: username.unwrap_or_default(),
                key: Zeroizing::new(key.unwrap_or_default()),
                user_info,
            }
        }
        other => {
            return Err(RpcError::invalid(
                "login_data",
                format!(
                    "Input tag '{other}' found using 'mechanism' does not match any of the expected tags: 'API_KEY_PLAIN', 'PASSWORD_PLAIN', 'OTP_TOKEN'"
                ),
            ));
        }
    };
    let errors: Vec<_> = f
        .finish()
        .into_iter()
        .map(|mut e| {
            // login_data.username -> login_data.PASSWORD_PLAIN.username
            if let Some(rest) = e.attribute.strip_prefix("login_data.") {
                e.attribute = format!("login_data.{mechanism}.{rest}");
            }
            e
        })
        .collect();
    args.absorb(errors);
    args.finish()?;
    Ok(data)
}

/// `login_options.user_info` (default true); `reconnect_token` is accepted and ignored.
fn login_options(f: &mut Fields<'_>) -> bool {
    let Some(options) = f.object("login_options", "LoginOptions") else {
        return true;
    };
    let mut o = options.fields();
    let user_info = o.bool("user_info").unwrap_or(true);
    o.bool("reconnect_token");
    f.errors.extend(o.finish());
    user_info
}

/// A token kept by the connection (zeroized when dropped).
fn secret(shown: &otpd_core::Shown) -> Zeroizing<String> {
    Zeroizing::new(shown.expose().to_owned())
}

fn auth_err() -> Value {
    json!({"response_type": "AUTH_ERR"})
}

impl Conn {
    /// Takes one login attempt from this address's budget (the per-address login limit of
    /// the REST API, shared); TrueNAS answers an exhausted budget with EBUSY.
    fn count_attempt(&self) -> Result<(), RpcError> {
        if let (Some(limits), Some(peer)) = (self.state.limits.as_ref(), self.peer)
            && limits.login.take(peer, 1.0).is_err()
        {
            return Err(RpcError::call(Errno::Ebusy, "Rate Limit Exceeded"));
        }
        Ok(())
    }

    /// `auth.login_ex` / `auth.login_ex_continue`.
    pub(super) async fn login_ex(&mut self, params: &[Value]) -> Result<Value, RpcError> {
        match read_login_data(params)? {
            LoginData::Password {
                username,
                password,
                user_info,
            } => {
                // Another mechanism abandons an OTP attempt in progress (TrueNAS does so).
                self.pending = None;
                self.count_attempt()?;
                let meta = self.meta.clone();
                match self.service().login(&username, password, &meta).await {
                    Ok(LoginOutcome::Session(t) | LoginOutcome::EnrollmentRequired(t)) => {
                        self.succeed(secret(&t.token), true, user_info).await
                    }
                    Ok(LoginOutcome::SecondFactorRequired { challenge, .. }) => {
                        self.pending = Some(Pending {
                            challenge: secret(&challenge.token),
                            username: username.clone(),
                        });
                        Ok(json!({"response_type": "OTP_REQUIRED", "username": username}))
                    }
                    Err(CoreError::Unauthenticated | CoreError::AccountLocked) => Ok(auth_err()),
                    Err(e) => Err(RpcError::from_core(e)),
                }
            }
            LoginData::Otp { token, user_info } => {
                let Some(pending) = self.pending.take() else {
                    return Err(RpcError::call(
                        Errno::Einval,
                        "OTP_TOKEN: no authentication in progress",
                    ));
                };
                self.count_attempt()?;
                let meta = self.meta.clone();
                match self
                    .service()
                    .second_factor(&pending.challenge, &token, &meta)
                    .await
                {
                    Ok(t) => self.succeed(secret(&t.token), true, user_info).await,
                    Err(
                        CoreError::Unauthenticated
                        | CoreError::SecondFactorFailed { .. }
                        | CoreError::AccountLocked
                        | CoreError::Invalid { .. },
                    ) => {
                        tracing::debug!(username = %pending.username, "OTP_TOKEN refused");
                        Ok(auth_err())
                    }
                    Err(e) => Err(RpcError::from_core(e)),
                }
            }
            LoginData::ApiKey {
                username,
                key,
                user_info,
            } => {
                self.pending = None;
                self.count_attempt()?;
                match self.service().authenticate(&key).await {
                    Ok(Principal::Account(caller))
                        if caller.api_key_id.is_some()
                            && caller.username.eq_ignore_ascii_case(&username) =>
                    {
                        self.succeed(key, false, user_info).await
                    }
                    Ok(_) | Err(CoreError::Unauthenticated) => Ok(auth_err()),
                    Err(e) => Err(RpcError::from_core(e)),
                }
            }
        }
    }

    async fn succeed(
        &mut self,
        token: Zeroizing<String>,
        session: bool,
        user_info: bool,
    ) -> Result<Value, RpcError> {
        self.login = Some(Login { token, session });
        let principal = self.principal().await?;
        let info = if user_info {
            self.me(&principal).await?
        } else {
            Value::Null
        };
        Ok(json!({
            "response_type": "SUCCESS",
            "user_info": info,
            "authenticator": "LEVEL_1",
            "reconnect_token": null,
        }))
    }

    /// `auth.login_with_api_key(api_key) -> bool`.
    pub(super) async fn login_with_api_key(&mut self, params: &[Value]) -> Result<Value, RpcError> {
        let mut args = Args::new(params, &["api_key"])?;
        let key = args.string(0);
        args.finish()?;
        let key = Zeroizing::new(key.unwrap_or_default());
        self.pending = None;
        self.count_attempt()?;
        match self.service().authenticate(&key).await {
            Ok(Principal::Account(caller)) if caller.api_key_id.is_some() => {
                self.login = Some(Login {
                    token: key,
                    session: false,
                });
                Ok(Value::Bool(true))
            }
            Ok(_) | Err(CoreError::Unauthenticated) => Ok(Value::Bool(false)),
            Err(e) => Err(RpcError::from_core(e)),
        }
    }

    /// The deprecated `auth.login(username, password, otp_token=None) -> bool`.
    pub(super) async fn login_legacy(&mut self, params: &[Value]) -> Result<Value, RpcError> {
        let mut args = Args::new(params, &["username", "password", "otp_token"])?;
        let username = args.string(0);
        let password = args.string(1).map(Zeroizing::new);
        let otp = match params.get(2) {
            None | Some(Value::Null) => None,
            Some(_) => args.string(2),
        };
        args.finish()?;
        let (Some(username), Some(password)) = (username, password) else {
            return Ok(Value::Bool(false));
        };
        self.pending = None;
        self.count_attempt()?;
        let meta = self.meta.clone();
        let token = match self.service().login(&username, password, &meta).await {
            Ok(LoginOutcome::Session(t) | LoginOutcome::EnrollmentRequired(t)) => t,
            Ok(LoginOutcome::SecondFactorRequired { challenge, .. }) => {
                let Some(code) = otp else {
                    return Ok(Value::Bool(false));
                };
                match self
                    .service()
                    .second_factor(challenge.token.expose(), &code, &meta)
                    .await
                {
                    Ok(t) => t,
                    Err(CoreError::Invalid { .. } | CoreError::SecondFactorFailed { .. }) => {
                        return Ok(Value::Bool(false));
                    }
                    Err(e) => return Err(RpcError::from_core(e)),
                }
            }
            Err(CoreError::Unauthenticated | CoreError::AccountLocked) => {
                return Ok(Value::Bool(false));
            }
            Err(e) => return Err(RpcError::from_core(e)),
        };
        self.login = Some(Login {
            token: secret(&token.token),
            session: true,
        });
        Ok(Value::Bool(true))
    }

    /// `auth.logout`: ends the session (an API key login just forgets the key).
    pub(super) async fn logout(&mut self, principal: &Principal) -> Result<Value, RpcError> {
        if self.login.as_ref().is_some_and(|l| l.session) {
            let meta = self.meta.clone();
            self.service()
                .logout(principal, &meta)
                .await
                .map_err(RpcError::from_core)?;
        }
        self.login = None;
        Ok(Value::Bool(true))
    }

    /// `auth.me`: the logged-in account as TrueNAS describes it, with `two_factor_config`.
    pub(super) async fn me(&mut self, principal: &Principal) -> Result<Value, RpcError> {
        let Principal::Account(caller) = principal else {
            return Err(RpcError::not_authenticated());
        };
        let account = self
            .service()
            .get_account(principal, &caller.username)
            .await
            .map_err(RpcError::from_core)?;
        let two_factor = super::user::twofactor_config(self, principal, &account).await?;
        let roles: Vec<&str> = caller
            .roles
            .iter()
            .map(|r| super::user::truenas_role(*r))
            .collect();
        let mut attributes = vec!["LOCAL"];
        if !account.password_disabled {
            attributes.push("PASSWORD_LOGIN");
        }
        if account.twofactor_configured {
            attributes.push("OTPW");
        }
        Ok(json!({
            "pw_name": account.username,
            "pw_gecos": account.full_name,
            "pw_dir": account.profile.home,
            "pw_shell": account.profile.shell,
            "pw_uid": account.uid,
            "pw_gid": super::user::primary_gid(&account),
            "grouplist": account.profile.groups,
            "sid": null,
            "source": "LOCAL",
            "local": true,
            "attributes": {},
            "two_factor_config": two_factor,
            "privilege": {
                "roles": {"$set": roles},
                "web_shell": caller.roles.contains(&Role::FullAdmin),
            },
            "account_attributes": attributes,
        }))
    }
}
