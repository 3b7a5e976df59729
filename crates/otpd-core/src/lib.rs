//! The otpd domain: the [`Service`] that holds every 2FA rule, and what it stands on —
//! storage (SQLite or PostgreSQL through sqlx `Any`), sealing, password hashing and audit.
//! No HTTP: every front door (REST, dialects, web, CLI) is a thin translation onto `Service`.

pub mod backup;
mod clock;
mod error;
pub mod metrics;
mod model;
mod password;
mod seal;
mod service;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{CoreError, CoreResult};
pub use model::*;
pub use password::{
    Checked, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, PasswordProof, Passwords, sha256_hex,
};
pub use seal::{DataKey, KeyRing, MasterKey, Purpose, sealed_key_id};
pub use service::*;
pub use store::{Backend, Db, DbOptions};
