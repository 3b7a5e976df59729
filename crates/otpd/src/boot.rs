//! Opening the service: the data directory, the master key and the database. Shared by
//! `otpd serve`, every admin command and the tests, so they all act on the same state the
//! same way.

use crate::config::Settings;
use anyhow::Context;
use otpd_core::{Clock, Db, DbOptions, KeyRing, MasterKey, Passwords, Service, SystemClock};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// Opens the service described by `settings`, on the system clock.
pub async fn open(settings: &Settings) -> anyhow::Result<Service> {
    open_with_clock(settings, Arc::new(SystemClock)).await
}

/// Opens the service with an injected clock (tests).
pub async fn open_with_clock(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Service> {
    if settings.database_url.starts_with("sqlite:") || settings.master_key_file.is_none() {
        create_data_dir(&settings.data_dir)?;
    }
    let keys = KeyRing::new(master_key(settings)?, vec![]);
    let options = DbOptions {
        max_connections: settings.db_max_connections,
        ..DbOptions::default()
    };
    let db = Db::connect(&settings.database_url, &options)
        .await
        .context("opening the database")?;
    let passwords = Passwords::new(settings.password_hash_concurrency).await?;
    Service::new(db, keys, clock, passwords).await.map_err(|e| match e {
        otpd_core::CoreError::Sealing => anyhow::anyhow!(
            "the master key cannot open the secrets in this database: start with the key that sealed them \
             (OTPD_MASTER_KEY, OTPD_MASTER_KEY_FILE or the data directory's master.key)"
        ),
        other => anyhow::Error::new(other).context("starting the service"),
    })
}

fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// `OTPD_MASTER_KEY`, else the named key file, else `master.key` in the data directory (generated with
/// mode 0600 on first start).
fn master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    if let Ok(text) = std::env::var("OTPD_MASTER_KEY") {
        return MasterKey::from_base64(&text).map_err(|_| {
            anyhow::anyhow!(
                "OTPD_MASTER_KEY must be the base64 of 32 bytes (openssl rand -base64 32)"
            )
        });
    }
    if let Some(path) = &settings.master_key_file {
        let text = fs::read_to_string(path)
            .with_context(|| format!("reading the master key file {}", path.display()))?;
        return MasterKey::from_base64(&text)
            .map_err(|_| anyhow::anyhow!("{} must hold the base64 of 32 bytes", path.display()));
    }
    let path = settings.data_dir.join("master.key");
    match fs::read_to_string(&path) {
        Ok(text) => MasterKey::from_base64(&text)
            .map_err(|_| anyhow::anyhow!("{} is not a valid master key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate()?;
            write_secret_file(&path, key.to_base64().as_bytes())?;
            // Another process may have raced us: whatever is on disk now is the key.
            let text = fs::read_to_string(&path)?;
            MasterKey::from_base64(&text)
                .map_err(|_| anyhow::anyhow!("{} is not a valid master key", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a new file readable only by its owner; never overwrites one.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(contents)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    }
}
