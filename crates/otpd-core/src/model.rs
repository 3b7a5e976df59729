//! The domain's typed values: parsed once at the edge, so the `Service` never sees a bad one
//! (DESIGN.md, principle 6).

use crate::{CoreError, CoreResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// An account name: 1–64 characters from ASCII letters, digits, `.`, `_`, `-` and `@`
/// (Zimbra account names are e-mail addresses), other than the path segments `.` and `..`
/// (so no `/`, `\`, control or bidirectional-override character can appear). Unique case-insensitively: [`Username::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Parses a username.
    pub fn parse(text: &str) -> CoreResult<Self> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
        if text.is_empty() || text.len() > 64 {
            return Err(CoreError::invalid("username", "must be 1 to 64 characters"));
        }
        if !text.chars().all(ok_char) {
            return Err(CoreError::invalid(
                "username",
                "may contain only letters, digits, '.', '_', '-' and '@'",
            ));
        }
        // `.` and `..` are path segments: clients and proxies normalise them away, so
        // `/accounts/./totp` would reach the account `totp`.
        if text == "." || text == ".." {
            return Err(CoreError::invalid(
                "username",
                "must not be '.' or '..' (they are path segments)",
            ));
        }
        Ok(Username(text.to_owned()))
    }

    /// The name as given at creation.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased form that uniqueness and lookups use.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An administrative role. An account with none is a plain account (only itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Everything.
    FullAdmin,
    /// Manage other accounts' 2FA: provision, reset, enable/disable, verify for them.
    TwofactorAdmin,
    /// Read everything, change nothing.
    ReadonlyAdmin,
    /// Verify codes for any account, and nothing else: what services should use.
    Verifier,
}

impl Role {
    /// Whether it is an admin role (full, 2FA or read-only admin; a verifier is none).
    pub fn is_admin(self) -> bool {
        matches!(
            self,
            Role::FullAdmin | Role::TwofactorAdmin | Role::ReadonlyAdmin
        )
    }

    /// The role's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::FullAdmin => "full_admin",
            Role::TwofactorAdmin => "twofactor_admin",
            Role::ReadonlyAdmin => "readonly_admin",
            Role::Verifier => "verifier",
        }
    }
}

impl FromStr for Role {
    type Err = CoreError;
    fn from_str(s: &str) -> CoreResult<Self> {
        match s {
            "full_admin" => Ok(Role::FullAdmin),
            "twofactor_admin" => Ok(Role::TwofactorAdmin),
            "readonly_admin" => Ok(Role::ReadonlyAdmin),
            "verifier" => Ok(Role::Verifier),
            _ => Err(CoreError::invalid(
                "roles",
                "unknown role (expected full_admin, twofactor_admin, readonly_admin or verifier)",
            )),
        }
    }
}

/// A set of roles, stored space-separated.
pub type Roles = BTreeSet<Role>;

/// Whether an actor with `actor` roles may manage (2FA, password, sessions) an account with
/// `subject` roles: nobody manages an account with more power than their own (DESIGN.md,
/// "Authorization"). A full admin covers everyone; a 2FA admin covers every account that
/// is not a full admin (plain accounts, verifiers, readers — whose reads it already has —
/// and other 2FA admins, whose rights it already has); no other role manages anyone.
pub fn roles_cover(actor: &Roles, subject: &Roles) -> bool {
    actor.contains(&Role::FullAdmin)
        || (actor.contains(&Role::TwofactorAdmin) && !subject.contains(&Role::FullAdmin))
}

pub(crate) fn roles_to_db(roles: &Roles) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn roles_from_db(text: &str) -> Roles {
    // Unknown names cannot be written (every write goes through `Role`), so skipping is safe.
    text.split_whitespace()
        .filter_map(|r| r.parse().ok())
        .collect()
}

/// An account as the service shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// Stable identifier (UUID).
    pub id: String,
    /// Numeric id, unique, TrueNAS-style (starting at 3000).
    pub uid: i64,
    /// The account name.
    pub username: String,
    /// Display name.
    pub full_name: String,
    /// E-mail address, if known.
    pub email: Option<String>,
    /// Administrative roles.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Role>))]
    pub roles: Roles,
    /// Whether password login is disabled (no password set).
    pub password_disabled: bool,
    /// Whether an administrator locked the account.
    pub locked: bool,
    /// The TrueNAS `UserEntry` attributes (home, shell, groups, ...): kept for the TrueNAS
    /// dialect, which shows and changes them; not part of otpd's own account model, so
    /// never serialized (native API, CLI).
    #[serde(skip)]
    pub profile: Profile,
    /// Whether the account has an active TOTP authenticator.
    pub twofactor_configured: bool,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last change (Unix seconds).
    pub updated_at: i64,
}

/// The TrueNAS `UserEntry` attributes of an account that otpd does not itself use, with the
/// defaults of the TrueNAS user API (seed 001): otpd is not a Unix host, so it applies none of
/// them, but it keeps what a TrueNAS client writes so that the client reads it back unchanged.
/// Identity (uid, username, full name, e-mail, roles, locked, password) lives on [`Account`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    /// Home directory (TrueNAS default `/var/empty`).
    pub home: String,
    /// Login shell (TrueNAS default `/usr/bin/zsh`).
    pub shell: String,
    /// Whether the account may use SMB shares (default true).
    pub smb: bool,
    /// Container subuid mapping: `"DIRECT"`, a uid (1–4294967294), or null (default).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub userns_idmap: Option<UsernsIdmap>,
    /// Primary group id, if set.
    pub group: Option<u32>,
    /// Auxiliary group ids.
    pub groups: Vec<u32>,
    /// Whether SSH password login is enabled (default false).
    pub ssh_password_enabled: bool,
    /// SSH public key(s), if any.
    pub sshpubkey: Option<String>,
    /// Allowed sudo commands.
    pub sudo_commands: Vec<String>,
    /// Allowed sudo commands without a password.
    pub sudo_commands_nopasswd: Vec<String>,
    /// Whether a password change is required at the next login (default false).
    pub password_change_required: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            home: "/var/empty".into(),
            shell: "/usr/bin/zsh".into(),
            smb: true,
            userns_idmap: None,
            group: None,
            groups: Vec::new(),
            ssh_password_enabled: false,
            sshpubkey: None,
            sudo_commands: Vec::new(),
            sudo_commands_nopasswd: Vec::new(),
            password_change_required: false,
        }
    }
}

/// `userns_idmap`: the keyword `DIRECT` or an explicit uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UsernsIdmap {
    /// `"DIRECT"`: the uid is mapped directly into containers.
    Direct(IdmapDirect),
    /// An explicit target uid.
    Uid(u32),
}

/// The only keyword `userns_idmap` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdmapDirect {
    /// `"DIRECT"`.
    #[serde(rename = "DIRECT")]
    Direct,
}

impl Profile {
    /// The profile with the fields of `patch` (a JSON object of profile fields) replaced:
    /// fields not named keep their values, so a client sends only what it changes (TrueNAS
    /// `user.update` semantics). Unknown fields and bad values are refused.
    pub fn merged(&self, patch: &serde_json::Value) -> CoreResult<Profile> {
        let serde_json::Value::Object(changes) = patch else {
            return Err(CoreError::invalid("profile", "must be a JSON object"));
        };
        let mut document =
            serde_json::to_value(self).map_err(|e| CoreError::Internal(e.to_string().into()))?;
        if let serde_json::Value::Object(fields) = &mut document {
            for (key, value) in changes {
                fields.insert(key.clone(), value.clone());
            }
        }
        let profile: Profile = serde_json::from_value(document)
            .map_err(|e| CoreError::invalid("profile", e.to_string()))?;
        profile.validate()?;
        Ok(profile)
    }

    /// The profile as stored (validated when it was written); fields the document lacks take
    /// their defaults (`#[serde(default)]`).
    pub(crate) fn from_stored(text: &str) -> CoreResult<Profile> {
        serde_json::from_str(text).map_err(|e| CoreError::Internal(e.to_string().into()))
    }

    fn validate(&self) -> CoreResult<()> {
        let path = |field: &'static str, value: &str| {
            if value.is_empty()
                || !value.starts_with('/')
                || value.len() > 1024
                || value.chars().any(char::is_control)
            {
                Err(CoreError::invalid(
                    field,
                    "must be an absolute path of at most 1024 characters",
                ))
            } else {
                Ok(())
            }
        };
        path("home", &self.home)?;
        path("shell", &self.shell)?;
        if let Some(UsernsIdmap::Uid(uid)) = self.userns_idmap
            && (uid == 0 || uid == u32::MAX)
        {
            return Err(CoreError::invalid(
                "userns_idmap",
                "must be DIRECT, a uid from 1 to 4294967294, or null",
            ));
        }
        if self.groups.len() > 1024 {
            return Err(CoreError::invalid("groups", "at most 1024 groups"));
        }
        if self.sshpubkey.as_ref().is_some_and(|k| k.len() > 64 * 1024) {
            return Err(CoreError::invalid("sshpubkey", "must be at most 64 KiB"));
        }
        for (field, commands) in [
            ("sudo_commands", &self.sudo_commands),
            ("sudo_commands_nopasswd", &self.sudo_commands_nopasswd),
        ] {
            if commands.len() > 256
                || commands
                    .iter()
                    .any(|c| c.is_empty() || c.len() > 1024 || c.chars().any(char::is_control))
            {
                return Err(CoreError::invalid(
                    field,
                    "at most 256 commands, each 1 to 1024 characters without control characters",
                ));
            }
        }
        Ok(())
    }
}

/// The deployment's 2FA settings (DESIGN.md, Policy). One row in the database, so every
/// instance reads the same values; each verification reads it in the same query as the
/// authenticator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    /// Every account must enroll: a password login without an authenticator gets a session
    /// limited to enrolling.
    pub enforced: bool,
    /// Accounts may set up their own authenticator (Zimbra's
    /// `zimbraFeatureTwoFactorAuthAvailable`); when off, only admins and the CLI provision
    /// them. It cannot be off while `enforced` is on.
    pub self_enrollment: bool,
    /// Logins ask accounts with an enabled authenticator for their second factor
    /// (TrueNAS's global 2FA switch).
    pub second_factor_at_login: bool,
    /// Accepted steps either side of the expected one (0–10).
    pub window: u16,
    /// Digits for new authenticators (6–8).
    pub digits: u8,
    /// Interval for new authenticators, seconds (5–300).
    pub interval: u64,
    /// Algorithm for new authenticators: SHA1, SHA256 or SHA512.
    pub algorithm: String,
    /// The issuer shown in authenticator apps.
    pub issuer: String,
    /// Failed verifications in a row that lock an authenticator (1–1000).
    pub max_failures: u32,
    /// How long a lockout lasts, seconds (1–604800).
    pub lockout_secs: u64,
    /// Recovery codes issued per account (1–50).
    pub recovery_code_count: u32,
    /// Whether a match at a non-zero offset updates the device's drift.
    pub drift_tracking: bool,
    /// How far `resync` searches either side of now, in steps (1–1000).
    pub resync_range: u16,
    /// How long a second-factor proof counts for step-up, seconds (0–86400).
    pub step_up_secs: u64,
    /// How long a pending enrollment may wait for its confirming code, seconds (60–86400).
    pub enrollment_secs: u64,
    /// Session lifetime, seconds (60–2592000).
    pub session_secs: u64,
    /// Lifetime of a login's second-factor challenge, seconds (30–3600).
    pub challenge_secs: u64,
    /// Whether SSH logins on hosts that consult otpd ask for the second factor too (TrueNAS
    /// `auth.twofactor` `services.ssh`). otpd keeps it for those hosts; it checks no SSH.
    pub ssh_second_factor: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enforced: false,
            self_enrollment: true,
            second_factor_at_login: true,
            window: 1,
            digits: 6,
            interval: 30,
            algorithm: "SHA1".into(),
            issuer: "otpd".into(),
            max_failures: 10,
            lockout_secs: 300,
            recovery_code_count: 10,
            drift_tracking: true,
            resync_range: 100,
            step_up_secs: 300,
            enrollment_secs: 900,
            session_secs: 12 * 3600,
            challenge_secs: 300,
            ssh_second_factor: false,
        }
    }
}

impl Policy {
    /// Checks every field's range; the first bad field is named in the error.
    pub fn validate(&self) -> CoreResult<()> {
        fn range<T: PartialOrd + fmt::Display>(
            field: &'static str,
            v: T,
            lo: T,
            hi: T,
        ) -> CoreResult<()> {
            if v < lo || v > hi {
                Err(CoreError::invalid(
                    field,
                    format!("must be between {lo} and {hi}"),
                ))
            } else {
                Ok(())
            }
        }
        range("window", self.window, 0, 10)?;
        range("digits", self.digits, 6, 8)?;
        range("interval", self.interval, 5, 300)?;
        self.algorithm
            .parse::<otp::Algorithm>()
            .map_err(|_| CoreError::invalid("algorithm", "must be SHA1, SHA256 or SHA512"))?;
        if self.issuer.is_empty()
            || self.issuer.len() > 64
            || self.issuer.contains(':')
            || self
                .issuer
                .chars()
                .any(|c| c.is_control() || crate::service::is_invisible_format(c))
        {
            // An issuer is shown by every authenticator app: nothing in it may reorder or
            // hide text.
            return Err(CoreError::invalid(
                "issuer",
                "must be 1 to 64 characters, without ':', control or bidirectional-override characters",
            ));
        }
        range("max_failures", self.max_failures, 1, 1000)?;
        range("lockout_secs", self.lockout_secs, 1, 604_800)?;
        range("recovery_code_count", self.recovery_code_count, 1, 50)?;
        range("resync_range", self.resync_range, 1, 1000)?;
        range("step_up_secs", self.step_up_secs, 0, 86_400)?;
        range("enrollment_secs", self.enrollment_secs, 60, 86_400)?;
        range("session_secs", self.session_secs, 60, 2_592_000)?;
        range("challenge_secs", self.challenge_secs, 30, 3600)?;
        if self.enforced && !self.self_enrollment {
            return Err(CoreError::invalid(
                "self_enrollment",
                "must be on while enforced is on: accounts that must enroll need to be able to",
            ));
        }
        Ok(())
    }
}

/// Why a verification was refused (the `reason` of the native verify answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum VerifyReason {
    /// The code matched nothing.
    Invalid,
    /// The code was already used.
    Replayed,
    /// Too many failures: the authenticator is locked until `locked_until`.
    Locked,
    /// An administrator disabled the authenticator.
    Disabled,
    /// The account has no active authenticator.
    NotEnrolled,
}

impl VerifyReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyReason::Invalid => "invalid",
            VerifyReason::Replayed => "replayed",
            VerifyReason::Locked => "locked",
            VerifyReason::Disabled => "disabled",
            VerifyReason::NotEnrolled => "not_enrolled",
        }
    }
}

impl VerifyReason {
    /// What the refusal means, for a person (CLI output, problem details, pages).
    pub fn describe(self) -> &'static str {
        match self {
            VerifyReason::Invalid => "wrong code",
            VerifyReason::Replayed => "already used — wait for the next code",
            VerifyReason::Locked => "too many wrong codes — locked for a while",
            VerifyReason::Disabled => "the authenticator is switched off",
            VerifyReason::NotEnrolled => "no authenticator is enrolled",
        }
    }
}

impl fmt::Display for VerifyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of second factor was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FactorMethod {
    /// A TOTP code.
    Totp,
    /// A single-use recovery code.
    RecoveryCode,
}

impl FactorMethod {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FactorMethod::Totp => "totp",
            FactorMethod::RecoveryCode => "recovery_code",
        }
    }
}

/// The answer to a verification: services branch on it without parsing errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyOutcome {
    /// Whether the code was accepted.
    pub valid: bool,
    /// Why not, when not.
    pub reason: Option<VerifyReason>,
    /// What was accepted, when accepted.
    pub method: Option<FactorMethod>,
}

impl VerifyOutcome {
    pub(crate) fn accepted(method: FactorMethod) -> Self {
        VerifyOutcome {
            valid: true,
            reason: None,
            method: Some(method),
        }
    }
    pub(crate) fn refused(reason: VerifyReason) -> Self {
        VerifyOutcome {
            valid: false,
            reason: Some(reason),
            method: None,
        }
    }
}

/// The front door a request came through; recorded in audit events and sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Door {
    /// The native REST API.
    Rest,
    /// The command line.
    Cli,
    /// The web pages.
    Web,
    /// TrueNAS JSON-RPC.
    Truenas,
    /// ONTAP REST.
    Ontap,
    /// Rocket.Chat REST.
    Rocketchat,
    /// Zimbra SOAP.
    Zimbra,
}

impl Door {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Rest => "rest",
            Door::Cli => "cli",
            Door::Web => "web",
            Door::Truenas => "truenas",
            Door::Ontap => "ontap",
            Door::Rocketchat => "rocketchat",
            Door::Zimbra => "zimbra",
        }
    }
}

/// Where a request came from: for sessions and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    /// The front door.
    pub door: Door,
    /// The peer address, if there is one.
    pub remote_addr: Option<String>,
    /// The request id, if the front door assigns one.
    pub request_id: Option<String>,
}

impl RequestMeta {
    /// A request from the command line (no address).
    pub fn cli() -> Self {
        RequestMeta {
            door: Door::Cli,
            remote_addr: None,
            request_id: None,
        }
    }
}

/// How a session came to be: recorded with it and shown in session lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SessionKind {
    /// A full session.
    Session,
    /// A login waiting for its second factor; good for nothing else.
    Challenge,
    /// A session limited to enrolling an authenticator (policy `enforced`).
    Enrollment,
}

impl SessionKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SessionKind::Session => "session",
            SessionKind::Challenge => "challenge",
            SessionKind::Enrollment => "enrollment",
        }
    }
    pub(crate) fn from_db(s: &str) -> Self {
        match s {
            "challenge" => SessionKind::Challenge,
            "enrollment" => SessionKind::Enrollment,
            _ => SessionKind::Session,
        }
    }
}

/// Who is acting: the command line (an operator on the host, with every right) or an
/// authenticated account.
#[derive(Debug, Clone)]
pub enum Principal {
    /// `otpd …` admin commands on the host (audited as actor `cli`).
    Cli,
    /// An account, through a session or an API key.
    Account(Caller),
}

/// An authenticated account and how it authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account's id.
    pub account_id: String,
    /// The account's name.
    pub username: String,
    /// Its roles.
    pub roles: Roles,
    /// The session used, if any (else an API key).
    pub session_id: Option<String>,
    /// The session's kind (`Session` for API keys).
    pub kind: SessionKind,
    /// When this session last proved a second factor (Unix seconds).
    pub second_factor_at: Option<i64>,
    /// The API key used, if any.
    pub api_key_id: Option<String>,
}

impl Principal {
    /// The name recorded as the actor in audit events.
    pub fn actor(&self) -> String {
        match self {
            Principal::Cli => "cli".into(),
            Principal::Account(c) => c.username.clone(),
        }
    }

    /// Whether the principal holds `role` (a full admin holds every role). A session limited
    /// to enrolling holds none: until its account has enrolled it may only read itself and
    /// enroll itself, whatever its roles.
    pub fn has(&self, role: Role) -> bool {
        match self {
            Principal::Cli => true,
            Principal::Account(c) if c.kind == SessionKind::Enrollment => false,
            Principal::Account(c) => c.roles.contains(&Role::FullAdmin) || c.roles.contains(&role),
        }
    }

    /// Whether the principal holds any admin role (a session limited to enrolling holds
    /// none).
    pub fn is_any_admin(&self) -> bool {
        self.has(Role::FullAdmin) || self.has(Role::TwofactorAdmin) || self.has(Role::ReadonlyAdmin)
    }
}
