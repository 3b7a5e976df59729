//! The one place where a core error that is the server's fault — not the client's — is
//! classified and logged, so every door logs it once and the same way, then answers it in its
//! own format (native 503/500, TrueNAS `EAGAIN`/`EFAULT`, ONTAP 503/500). The client's errors
//! are the doors' to translate; they are not logged (they may carry input).

use otpd_core::CoreError;

/// A failure of the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The database is unavailable or failed: the client may retry.
    Unavailable,
    /// A sealed value did not open, or an invariant broke: retrying will not help.
    Internal,
}

/// Whether `e` is the server's fault; if so it is logged here (without secrets: core errors
/// carry none).
pub fn server_fault(e: &CoreError) -> Option<Fault> {
    match e {
        CoreError::Storage(err) => {
            tracing::error!(error = %err, "storage error");
            Some(Fault::Unavailable)
        }
        CoreError::Sealing | CoreError::WrongMasterKey { .. } | CoreError::Internal(_) => {
            tracing::error!(error = %e, "internal error");
            Some(Fault::Internal)
        }
        _ => None,
    }
}
