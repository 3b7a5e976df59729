//! The core's one error enum. Front doors map each variant to their own wire format in one
//! place each (problem+json, JSON-RPC errors, SOAP faults); none of the messages carries a
//! secret, a code, a password or SQL.

use std::borrow::Cow;

/// Why a `Service` operation did not happen. When an operation returns an error, nothing was
/// changed (every mutation runs in one transaction).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input failed validation: `field` names the input, `message` says why. (HTTP 422/400.)
    #[error("{field}: {message}")]
    Invalid {
        /// The input field, as the caller named it.
        field: Cow<'static, str>,
        /// What is wrong, for a person.
        message: Cow<'static, str>,
    },
    /// The named thing does not exist (or the caller may not know it does). (HTTP 404.)
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change conflicts with the current state, e.g. a username already taken. (HTTP 409.)
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    /// No valid credentials: unknown or wrong user/password, bad/expired token. (HTTP 401.)
    #[error("authentication failed")]
    Unauthenticated,
    /// The caller is authenticated but not allowed to do this. (HTTP 403.)
    #[error("{0}")]
    Forbidden(Cow<'static, str>),
    /// The account has an active authenticator and must prove its second factor (recently or
    /// with a code sent along) before this change. (HTTP 403 with a distinct code.)
    #[error("a recent second-factor verification is required for this change")]
    StepUpRequired,
    /// A second-factor code was given and refused; `reason` is one of the verification
    /// reasons (`invalid`, `replayed`, `locked`, `disabled`, `not_enrolled`). (HTTP 422.)
    #[error("second factor refused: {}", reason.describe())]
    SecondFactorFailed {
        /// Why the code was refused.
        reason: crate::VerifyReason,
    },
    /// The account is locked by an administrator. (HTTP 403.)
    #[error("account is locked")]
    AccountLocked,
    /// A sealed value could not be opened: the master key does not match the database.
    #[error("sealed data cannot be opened with the configured master key")]
    Sealing,
    /// The configured master key did not wrap this database's data keys: the instance must
    /// not start (its ids are shown so the operator can tell which key file is which).
    #[error(
        "the configured master key (id {configured:08x}) is not the one this database's keys are wrapped under (id {needed:08x})"
    )]
    WrongMasterKey {
        /// The id of the key this instance was given.
        configured: u32,
        /// The id of the key the database needs.
        needed: u32,
    },
    /// The database failed or is unreachable; details are logged, never returned. (HTTP 503.)
    #[error("storage unavailable")]
    Storage(#[source] sqlx::Error),
    /// Anything else that is the server's fault; details are logged. (HTTP 500.)
    #[error("internal error: {0}")]
    Internal(Cow<'static, str>),
}

impl CoreError {
    /// Shorthand for [`CoreError::Invalid`].
    pub fn invalid(
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        CoreError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`CoreError::Forbidden`].
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        CoreError::Forbidden(message.into())
    }
}

impl From<sqlx::Error> for CoreError {
    fn from(e: sqlx::Error) -> Self {
        CoreError::Storage(e)
    }
}

impl From<sqlx::migrate::MigrateError> for CoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        CoreError::Internal(format!("migration failed: {e}").into())
    }
}

/// The core's result type.
pub type CoreResult<T> = Result<T, CoreError>;
