//! Every text the web pages show a person, in one place, so that a translation is one more
//! value of [`Text`] (chosen per request once there is a second). Templates read them as
//! `t.<name>`; messages about what went wrong are [`Message`]s, worded here.

/// The pages' texts.
pub struct Text {
    pub lang: &'static str,
    pub product: &'static str,
    pub skip: &'static str,
    pub nav_account: &'static str,
    pub nav_admin: &'static str,
    pub nav_accounts: &'static str,
    pub nav_policy: &'static str,
    pub nav_audit: &'static str,
    pub nav_keys: &'static str,
    pub sign_out: &'static str,
    pub sign_out_everywhere: &'static str,
    pub signed_in_as: &'static str,

    pub sign_in_title: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub sign_in: &'static str,
    pub code_title: &'static str,
    pub code_intro: &'static str,
    pub code_label: &'static str,
    pub code_hint: &'static str,
    pub verify: &'static str,
    pub start_over: &'static str,

    pub account_title: &'static str,
    pub twofactor: &'static str,
    pub state: &'static str,
    pub by: &'static str,
    pub nothing_matches: &'static str,
    pub enroll_restart: &'static str,
    pub account_locked: &'static str,
    pub state_none: &'static str,
    pub state_pending: &'static str,
    pub state_active: &'static str,
    pub state_disabled: &'static str,
    pub state_locked_until: &'static str,
    pub last_used: &'static str,
    pub never: &'static str,
    pub recovery_codes_left: &'static str,
    pub recovery_codes_low: &'static str,
    pub set_up: &'static str,
    pub continue_set_up: &'static str,
    pub renew: &'static str,
    pub remove: &'static str,
    pub regenerate: &'static str,
    pub sessions: &'static str,
    pub this_session: &'static str,
    pub activity: &'static str,
    pub when: &'static str,
    pub what: &'static str,
    pub outcome: &'static str,
    pub from_where: &'static str,
    pub door: &'static str,
    pub created: &'static str,
    pub expires: &'static str,
    pub nothing_yet: &'static str,

    pub enroll_title: &'static str,
    pub enroll_intro: &'static str,
    pub enroll_start: &'static str,
    pub enroll_scan: &'static str,
    pub enroll_open_link: &'static str,
    pub enroll_type_secret: &'static str,
    pub secret: &'static str,
    pub copy: &'static str,
    pub copied: &'static str,
    pub issuer: &'static str,
    pub account: &'static str,
    pub algorithm: &'static str,
    pub digits: &'static str,
    pub period: &'static str,
    pub seconds: &'static str,
    pub unusual_parameters: &'static str,
    pub enroll_expires: &'static str,
    pub enroll_confirm_label: &'static str,
    pub confirm: &'static str,
    pub enroll_required: &'static str,

    pub codes_title: &'static str,
    pub codes_intro: &'static str,
    pub download: &'static str,
    pub print: &'static str,
    pub codes_saved: &'static str,
    pub codes_saved_button: &'static str,

    pub password_title: &'static str,
    pub change_password: &'static str,
    pub current_password: &'static str,
    pub current_password_hint: &'static str,
    pub new_password: &'static str,
    pub repeat_password: &'static str,
    pub renewed_title: &'static str,
    pub renewed_intro: &'static str,
    pub back_to_account: &'static str,

    pub confirm_title: &'static str,
    pub confirm_renew: &'static str,
    pub confirm_remove: &'static str,
    pub confirm_regenerate: &'static str,
    pub step_up_label: &'static str,
    pub cancel: &'static str,

    pub accounts_title: &'static str,
    pub search_label: &'static str,
    pub search: &'static str,
    pub next_page: &'static str,
    pub previous_page: &'static str,
    pub no_role: &'static str,
    pub not_a_number: &'static str,
    pub not_a_day: &'static str,
    pub codes_file_heading: &'static str,
    pub first_page: &'static str,
    pub roles: &'static str,
    pub role: &'static str,
    pub locked: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub create_account: &'static str,
    pub full_name: &'static str,
    pub email: &'static str,
    pub password_optional: &'static str,
    pub create: &'static str,
    pub no_accounts: &'static str,

    pub admin_account_title: &'static str,
    pub action_reset: &'static str,
    pub action_disable: &'static str,
    pub action_enable: &'static str,
    pub action_unlock: &'static str,
    pub action_lock: &'static str,
    pub action_revoke_sessions: &'static str,
    pub confirm_reset: &'static str,
    pub confirm_disable: &'static str,
    pub confirm_enable: &'static str,
    pub confirm_unlock: &'static str,
    pub confirm_lock: &'static str,
    pub confirm_revoke_sessions: &'static str,
    pub failed_attempts: &'static str,

    pub policy_title: &'static str,
    pub save: &'static str,
    pub policy_enforced: &'static str,
    pub policy_self_enrollment: &'static str,
    pub policy_second_factor_at_login: &'static str,
    pub policy_window: &'static str,
    pub policy_digits: &'static str,
    pub policy_interval: &'static str,
    pub policy_algorithm: &'static str,
    pub policy_issuer: &'static str,
    pub policy_max_failures: &'static str,
    pub policy_lockout_secs: &'static str,
    pub policy_recovery_code_count: &'static str,
    pub policy_step_up_secs: &'static str,
    pub policy_enrollment_secs: &'static str,
    pub policy_session_secs: &'static str,
    pub policy_challenge_secs: &'static str,

    pub audit_title: &'static str,
    pub filter: &'static str,
    pub action: &'static str,
    pub since: &'static str,
    pub until: &'static str,
    pub any: &'static str,
    pub success: &'static str,
    pub failure: &'static str,
    pub actor: &'static str,
    pub reason: &'static str,

    pub keys_title: &'static str,
    pub key_name: &'static str,
    pub key_account: &'static str,
    pub create_key: &'static str,
    pub key_shown_once: &'static str,
    pub revoke: &'static str,
    pub confirm_revoke_key: &'static str,
    pub no_keys: &'static str,

    pub error_title: &'static str,
}

/// English.
pub static EN: Text = Text {
    lang: "en",
    product: "otpd",
    skip: "Skip to the content",
    nav_account: "My account",
    nav_admin: "Administration",
    nav_accounts: "Accounts",
    nav_policy: "Policy",
    nav_audit: "Audit log",
    nav_keys: "API keys",
    sign_out: "Sign out",
    sign_out_everywhere: "Sign out everywhere",
    signed_in_as: "Signed in as",

    sign_in_title: "Sign in",
    username: "Username",
    password: "Password",
    sign_in: "Sign in",
    code_title: "Two-factor authentication",
    code_intro: "Enter the code your authenticator app shows now, or one of your recovery codes.",
    code_label: "Code",
    code_hint: "6 to 8 digits from the app, or a recovery code such as ABCDE\u{2011}FGHIJ.",
    verify: "Verify",
    start_over: "Start again",

    account_title: "My account",
    twofactor: "Two-factor authentication",
    state: "State",
    by: "By",
    nothing_matches: "Nothing matches these filters.",
    enroll_restart: "Start again with a new secret",
    account_locked: "Account locked by an administrator",
    state_none: "Not set up",
    state_pending: "Set-up started, waiting for a code",
    state_active: "On",
    state_disabled: "Switched off by an administrator",
    state_locked_until: "Locked after too many wrong codes until",
    last_used: "Last used",
    never: "never",
    recovery_codes_left: "Recovery codes left",
    recovery_codes_low: "Only a few recovery codes are left. Make new ones before you run out.",
    set_up: "Set up an authenticator app",
    continue_set_up: "Continue the set-up",
    renew: "Move to a new phone (new secret)",
    remove: "Remove the authenticator",
    regenerate: "Make new recovery codes",
    sessions: "Signed-in sessions",
    this_session: "this session",
    activity: "Recent activity",
    when: "When",
    what: "What",
    outcome: "Outcome",
    from_where: "From",
    door: "Through",
    created: "Created",
    expires: "Expires",
    nothing_yet: "Nothing yet.",

    enroll_title: "Set up an authenticator app",
    enroll_intro: "Use an authenticator app on your phone (for example Aegis, FreeOTP, Google Authenticator or 1Password).",
    enroll_start: "Start",
    enroll_scan: "Scan this code with the app, or on the phone itself tap it to open the app.",
    enroll_open_link: "Open in the authenticator app",
    enroll_type_secret: "Or type this secret into the app:",
    secret: "Secret",
    copy: "Copy",
    copied: "Copied",
    issuer: "Issuer",
    account: "Account",
    algorithm: "Algorithm",
    digits: "Digits",
    period: "Period",
    seconds: "seconds",
    unusual_parameters: "These settings are not the usual SHA1, 6 digits, 30 seconds. Some apps ignore them and then show wrong codes: if the code is refused, try another app.",
    enroll_expires: "This set-up expires at",
    enroll_confirm_label: "Then enter the code the app shows now",
    confirm: "Confirm",
    enroll_required: "Your organisation requires two-factor authentication. Set it up to continue.",

    codes_title: "Your recovery codes",
    codes_intro: "Each code signs you in once if you lose your phone. They are shown only now: keep them somewhere safe, away from your phone.",
    download: "Download (.txt)",
    print: "Print",
    codes_saved: "I have saved these codes",
    codes_saved_button: "Done",

    password_title: "Change my password",
    change_password: "Change my password",
    current_password: "Current password",
    current_password_hint: "Not needed while your authenticator confirmed you in the last few minutes.",
    new_password: "New password",
    repeat_password: "New password again",
    renewed_title: "Your new secret",
    renewed_intro: "The old secret no longer works. Add this one to your authenticator app now; it is shown only once.",
    back_to_account: "Back to my account",

    confirm_title: "Please confirm",
    confirm_renew: "Replace your authenticator's secret? The codes of your current app stop working at once.",
    confirm_remove: "Remove your authenticator and recovery codes? Your other sessions are signed out.",
    confirm_regenerate: "Make new recovery codes? The current ones stop working.",
    step_up_label: "A code from your authenticator app (or a recovery code)",
    cancel: "Cancel",

    accounts_title: "Accounts",
    search_label: "Username starts with",
    search: "Search",
    next_page: "Next page",
    previous_page: "Previous page",
    no_role: "none (a plain account)",
    not_a_number: "must be a whole number",
    not_a_day: "must be a day as YYYY-MM-DD",
    codes_file_heading: "otpd recovery codes. Each code signs in once.",
    first_page: "First page",
    roles: "Roles",
    role: "Role",
    locked: "Locked",
    yes: "yes",
    no: "no",
    create_account: "Create an account",
    full_name: "Full name",
    email: "E-mail address",
    password_optional: "Password (leave empty for none)",
    create: "Create",
    no_accounts: "No account matches.",

    admin_account_title: "Account",
    action_reset: "Reset the authenticator (lost phone)",
    action_disable: "Switch the authenticator off",
    action_enable: "Switch the authenticator on",
    action_unlock: "Unlock the account",
    action_lock: "Lock the account",
    action_revoke_sessions: "Sign out all its sessions",
    confirm_reset: "Reset this account's authenticator and recovery codes? Its sessions and API keys end; it signs in with its password and sets up again.",
    confirm_disable: "Switch this account's authenticator off? It then signs in with its password alone.",
    confirm_enable: "Switch this account's authenticator on again?",
    confirm_unlock: "Unlock this account? This also ends a lockout after wrong codes.",
    confirm_lock: "Lock this account? It cannot sign in and its sessions end.",
    confirm_revoke_sessions: "End every session of this account?",
    failed_attempts: "Wrong codes in a row",

    policy_title: "Policy",
    save: "Save",
    policy_enforced: "Every account must use two-factor authentication",
    policy_self_enrollment: "Accounts may set up their own authenticator",
    policy_second_factor_at_login: "Ask for the second factor at sign-in",
    policy_window: "Accepted steps either side of now (0–10)",
    policy_digits: "Digits for new authenticators (6–8)",
    policy_interval: "Period for new authenticators, seconds (5–300)",
    policy_algorithm: "Algorithm for new authenticators",
    policy_issuer: "Issuer shown in the apps",
    policy_max_failures: "Wrong codes in a row before a lockout (1–1000)",
    policy_lockout_secs: "Lockout, seconds",
    policy_recovery_code_count: "Recovery codes per account (1–50)",
    policy_step_up_secs: "How long a code counts for sensitive changes, seconds",
    policy_enrollment_secs: "How long a set-up waits for its code, seconds",
    policy_session_secs: "Session lifetime, seconds",
    policy_challenge_secs: "Time to enter the code at sign-in, seconds",

    audit_title: "Audit log",
    filter: "Filter",
    action: "Action",
    since: "From (UTC, YYYY-MM-DD)",
    until: "To (UTC, YYYY-MM-DD, included)",
    any: "any",
    success: "success",
    failure: "failure",
    actor: "Who",
    reason: "Why",

    keys_title: "API keys",
    key_name: "Name",
    key_account: "For account",
    create_key: "Create a key",
    key_shown_once: "Copy this key now: it is shown only once.",
    revoke: "Revoke",
    confirm_revoke_key: "Revoke this API key? Whatever uses it stops working at once.",
    no_keys: "No API keys.",

    error_title: "Something went wrong",
};

/// What an audit action means to the person it is about (their activity list); `None` for
/// actions shown by their name.
pub fn action(name: &str) -> Option<&'static str> {
    Some(match name {
        "auth.login" => "Sign-in with password",
        "auth.second_factor" => "Second factor at sign-in",
        "auth.logout" => "Sign-out",
        "auth.password" => "Password check",
        "auth.reauthenticate" => "Identity confirmed again",
        "totp.enroll" => "Authenticator set-up started",
        "totp.confirm" => "Authenticator set up",
        "totp.provision" => "Authenticator provisioned",
        "totp.renew" => "Authenticator secret replaced",
        "totp.update" => "Authenticator changed",
        "totp.remove" => "Authenticator removed",
        "totp.verify" => "Code checked",
        "totp.enable" => "Two-factor authentication switched on",
        "totp.resync" => "Authenticator clock resynchronised",
        "auth.step_up" => "Code confirmed a change",
        "recovery_codes.regenerate" => "New recovery codes",
        "session.revoke" => "Session ended",
        "session.revoke_all" => "Signed out everywhere",
        "account.create" => "Account created",
        "account.update" => "Account changed",
        "account.password" => "Password changed",
        "account.lock" => "Account locked",
        "account.unlock" => "Account unlocked",
        "apikey.create" => "API key created",
        "apikey.revoke" => "API key revoked",
        _ => return None,
    })
}

/// What a page says went wrong or was done, beside the field it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    BadCredentials,
    AccountLocked,
    TooManyAttempts,
    ChallengeExpired,
    WrongCode,
    ReplayedCode,
    AuthenticatorLocked,
    AuthenticatorDisabled,
    NotEnrolled,
    EnrollmentExpired,
    EnrollmentReplaced,
    StaleForm,
    FactorChanged,
    PolicyKeepsFactor,
    StepUpRequired,
    NotAllowed,
    NotFound,
    MissingField,
    SessionEnded,
    TooLarge,
    Unavailable,
    Internal,
    SignedOut,
    Removed,
    Done,
    CodesNotConfirmed,
    PolicySaved,
    PolicyNotSaved,
    PasswordChanged,
    AlreadyEnrolled,
    PasswordsDiffer,
    WrongCurrentPassword,
    KeyRevoked,
}

impl Message {
    /// The message in `EN` (the only language so far).
    pub fn text(self) -> &'static str {
        match self {
            Message::BadCredentials => "The username or password is not right.",
            Message::AccountLocked => "This account is locked. Ask an administrator.",
            Message::TooManyAttempts => {
                "Too many attempts from your network. Wait a minute, then try again."
            }
            Message::ChallengeExpired => {
                "Your sign-in took too long or was replaced in another tab. Please sign in again."
            }
            Message::WrongCode => {
                "That code is not right. Check the time on your phone and try the next code."
            }
            Message::ReplayedCode => "That code was used already. Wait for the next one.",
            Message::AuthenticatorLocked => {
                "Too many wrong codes: the authenticator is locked for a while, recovery codes too. Wait, or ask an administrator to unlock it."
            }
            Message::AuthenticatorDisabled => "An administrator switched this authenticator off.",
            Message::NotEnrolled => "There is no authenticator set up for this.",
            Message::EnrollmentExpired => {
                "This set-up expired or was finished elsewhere. Nothing was changed: start again."
            }
            Message::EnrollmentReplaced => {
                "A newer set-up was started (in another tab?). Nothing was changed: use the newest one, shown below."
            }
            Message::StaleForm => {
                "This form has expired or came from another page. Nothing was changed: please try again."
            }
            Message::FactorChanged => {
                "Your authenticator or its recovery codes changed since that page was shown (was it sent twice, or used in another tab?). Nothing more was changed."
            }
            Message::PolicyKeepsFactor => {
                "Your organisation requires two-factor authentication, so the authenticator cannot be removed. Move to a new phone instead, or ask an administrator to reset it."
            }
            Message::StepUpRequired => {
                "For this change, enter a current code from your authenticator app (or a recovery code)."
            }
            Message::NotAllowed => "You are not allowed to do this.",
            Message::NotFound => "There is no such account or item.",
            Message::MissingField => "Please fill in this field.",
            Message::SessionEnded => "Your session has ended. Please sign in again.",
            Message::TooLarge => "What was sent is too large.",
            Message::Unavailable => {
                "The server cannot reach its database right now. Try again shortly."
            }
            Message::Internal => {
                "The server failed to do this. The administrators can find the details in its log."
            }
            Message::SignedOut => "You have signed out.",
            Message::Removed => "The authenticator was removed.",
            Message::Done => "Done.",
            Message::CodesNotConfirmed => {
                "You did not confirm that you saved your recovery codes. If you did not, make new ones now."
            }
            Message::PolicySaved => "The policy was saved.",
            Message::PasswordChanged => {
                "Your password was changed. Your other sessions were signed out."
            }
            Message::PasswordsDiffer => "The two new passwords are not the same.",
            Message::AlreadyEnrolled => {
                "Your authenticator is set up already (its recovery codes were shown once, when it was confirmed)."
            }
            Message::WrongCurrentPassword => "The current password is not right.",
            Message::PolicyNotSaved => {
                "The policy was not saved: correct the fields marked below, then save again."
            }
            Message::KeyRevoked => "The key was revoked.",
        }
    }

    /// Whether it reports a problem (rather than news).
    pub fn is_problem(self) -> bool {
        !matches!(
            self,
            Message::SignedOut
                | Message::Removed
                | Message::Done
                | Message::PasswordChanged
                | Message::AlreadyEnrolled
                | Message::PolicySaved
                | Message::KeyRevoked
        )
    }

    /// The name a flash message travels under in a redirect's query (never any data).
    pub fn code(self) -> &'static str {
        match self {
            Message::SignedOut => "signed-out",
            Message::Removed => "removed",
            Message::CodesNotConfirmed => "codes-not-confirmed",
            Message::FactorChanged => "factor-changed",
            Message::PasswordChanged => "password-changed",
            Message::AlreadyEnrolled => "already-enrolled",
            Message::PolicySaved => "policy-saved",
            Message::KeyRevoked => "key-revoked",
            Message::SessionEnded => "session-ended",
            Message::ChallengeExpired => "challenge-expired",
            _ => "done",
        }
    }

    /// The flash message a redirect named, if any.
    pub fn from_code(code: &str) -> Option<Message> {
        [
            Message::SignedOut,
            Message::Removed,
            Message::CodesNotConfirmed,
            Message::FactorChanged,
            Message::PasswordChanged,
            Message::AlreadyEnrolled,
            Message::PolicySaved,
            Message::KeyRevoked,
            Message::SessionEnded,
            Message::ChallengeExpired,
            Message::Done,
        ]
        .into_iter()
        .find(|m| m.code() == code)
    }
}
