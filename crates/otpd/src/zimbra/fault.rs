//! Zimbra's faults, and the one place where core errors and bad requests become them
//! (dialects.md §4, "SOAP envelope / faults"; `ServiceException.java`,
//! `AccountServiceException.java`): HTTP 500, `soap:Sender` (SOAP 1.1 `soap:Client`) for
//! the client's errors and `soap:Receiver` (`soap:Server`) for the server's, the message as
//! the reason, and `<Error xmlns="urn:zimbra"><Code>…</Code><Trace>…</Trace></Error>` as
//! the detail.

use super::soap::{Element, Form, Scalar, URN_ZIMBRA};
use crate::app::fault::{Fault as ServerFault, server_fault};
use otpd_core::CoreError;

/// A Zimbra fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Zimbra's code (`account.AUTH_FAILED`, `service.PARSE_ERROR`, …).
    pub code: &'static str,
    /// The message, as Zimbra words it.
    pub message: String,
    /// Whether it is the server's fault (`soap:Receiver`).
    pub receiver: bool,
    /// For a spent login budget: the seconds to wait (HTTP 503 with `Retry-After`).
    pub retry_after: Option<u64>,
}

impl Fault {
    fn sender(code: &'static str, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
            receiver: false,
            retry_after: None,
        }
    }

    /// `account.AUTH_FAILED`: unknown account, wrong password, bad or used token — one
    /// message whichever it was.
    pub fn auth_failed(name: &str) -> Self {
        Self::sender(
            "account.AUTH_FAILED",
            format!("authentication failed for [{name}]"),
        )
    }

    /// `account.TWO_FACTOR_AUTH_FAILED`: a wrong, used or locked-out code.
    pub fn two_factor_failed(name: &str) -> Self {
        Self::sender(
            "account.TWO_FACTOR_AUTH_FAILED",
            format!("authentication failed for [{name}]"),
        )
    }

    /// `account.TWO_FACTOR_AUTH_REQUIRED`: a recent second factor is needed first.
    pub fn two_factor_required() -> Self {
        Self::sender(
            "account.TWO_FACTOR_AUTH_REQUIRED",
            "two-factor auth required",
        )
    }

    /// `account.TWO_FACTOR_SETUP_REQUIRED`: policy requires a second factor the account
    /// does not have yet.
    pub fn setup_required() -> Self {
        Self::sender(
            "account.TWO_FACTOR_SETUP_REQUIRED",
            "two-factor authentication setup required. Allowed method:[app]",
        )
    }

    /// `account.CANNOT_ENABLE_TWO_FACTOR_AUTH`.
    pub fn cannot_enable() -> Self {
        Self::sender(
            "account.CANNOT_ENABLE_TWO_FACTOR_AUTH",
            "cannot enable two-factor authentication",
        )
    }

    /// `account.CANNOT_DISABLE_TWO_FACTOR_AUTH`.
    pub fn cannot_disable() -> Self {
        Self::sender(
            "account.CANNOT_DISABLE_TWO_FACTOR_AUTH",
            "cannot disable two-factor authentication",
        )
    }

    /// `account.TWO_FACTOR_AUTH_METHOD_NOT_ALLOWED`.
    pub fn method_not_allowed(method: &str) -> Self {
        let method: String = method.chars().take(32).collect();
        Self::sender(
            "account.TWO_FACTOR_AUTH_METHOD_NOT_ALLOWED",
            format!("{method} method is not allowed"),
        )
    }

    /// `service.AUTH_REQUIRED`: no valid token.
    pub fn auth_required() -> Self {
        Self::sender("service.AUTH_REQUIRED", "no valid authtoken present")
    }

    /// `service.PERM_DENIED`.
    pub fn perm_denied(message: &str) -> Self {
        Self::sender(
            "service.PERM_DENIED",
            format!("permission denied: {message}"),
        )
    }

    /// `service.UNKNOWN_DOCUMENT`.
    pub fn unknown_document(name: &str) -> Self {
        let name: String = name.chars().take(128).collect();
        Self::sender(
            "service.UNKNOWN_DOCUMENT",
            format!("unknown document: {name}"),
        )
    }

    /// `service.PARSE_ERROR`.
    pub fn parse(message: &str) -> Self {
        Self::sender("service.PARSE_ERROR", format!("parse error: {message}"))
    }

    /// `service.INVALID_REQUEST`.
    pub fn invalid(message: &str) -> Self {
        Self::sender(
            "service.INVALID_REQUEST",
            format!("invalid request: {message}"),
        )
    }

    /// `service.FAILURE` for a state the request cannot be served in (the client's).
    pub fn failure(message: &str) -> Self {
        Self::sender("service.FAILURE", format!("system failure: {message}"))
    }

    /// `service.TEMPORARILY_UNAVAILABLE`: the address is over its budget, or the database
    /// is unavailable.
    pub fn unavailable() -> Self {
        Fault {
            code: "service.TEMPORARILY_UNAVAILABLE",
            message: "service temporarily unavailable".into(),
            receiver: true,
            retry_after: None,
        }
    }

    /// [`Fault::unavailable`] for an address that spent its login budget: retry after `wait`
    /// seconds.
    pub fn rate_limited(wait: u64) -> Self {
        Fault {
            retry_after: Some(wait),
            ..Fault::unavailable()
        }
    }

    /// `account.NO_SUCH_ACCOUNT`.
    pub fn no_such_account(name: &str) -> Self {
        let name: String = name.chars().take(128).collect();
        Self::sender(
            "account.NO_SUCH_ACCOUNT",
            format!("no such account: {name}"),
        )
    }

    /// The `Fault` element of a body in `form`.
    pub fn element(&self, form: Form) -> Element {
        let error = Element::new("Error", Some(URN_ZIMBRA))
            .content("Code", Scalar::Text(self.code.into()))
            .content("Trace", Scalar::Text("otpd".into()));
        match form {
            Form::Soap11 => Element::new("soap:Fault", None)
                .content(
                    "faultcode",
                    Scalar::Text(
                        if self.receiver {
                            "soap:Server"
                        } else {
                            "soap:Client"
                        }
                        .into(),
                    ),
                )
                .content("faultstring", Scalar::Text(self.message.clone()))
                .unique_child(Element::new("detail", None).unique_child(error)),
            Form::Soap12 | Form::Json => Element::new("soap:Fault", None)
                .unique_child(
                    Element::new("soap:Code", None).content(
                        "soap:Value",
                        Scalar::Text(
                            if self.receiver {
                                "soap:Receiver"
                            } else {
                                "soap:Sender"
                            }
                            .into(),
                        ),
                    ),
                )
                .unique_child(
                    Element::new("soap:Reason", None)
                        .content("soap:Text", Scalar::Text(self.message.clone())),
                )
                .unique_child(Element::new("soap:Detail", None).unique_child(error)),
        }
    }
}

impl From<CoreError> for Fault {
    fn from(e: CoreError) -> Self {
        if let Some(fault) = server_fault(&e) {
            return match fault {
                ServerFault::Unavailable => Fault::unavailable(),
                ServerFault::Internal => Fault {
                    code: "service.FAILURE",
                    message: "system failure: internal error".into(),
                    receiver: true,
                    retry_after: None,
                },
            };
        }
        match e {
            CoreError::Unauthenticated => Fault::auth_required(),
            CoreError::AccountLocked => Fault::auth_failed(""),
            CoreError::Forbidden(_) => Fault::perm_denied("need adequate token"),
            CoreError::StepUpRequired => Fault::two_factor_required(),
            CoreError::SecondFactorFailed { .. } => Fault::two_factor_failed(""),
            CoreError::Invalid { field, message } => Fault::invalid(&format!("{field}: {message}")),
            CoreError::NotFound(what) => {
                Self::sender("account.NO_SUCH_ACCOUNT", format!("no such {what}"))
            }
            CoreError::Conflict(message) => Fault::invalid(&message),
            CoreError::Storage(_)
            | CoreError::Sealing
            | CoreError::WrongMasterKey { .. }
            | CoreError::Internal(_) => Fault::failure("internal error"),
        }
    }
}
