//! Opening the service: the data directory, the master key and the database. Shared by
//! `otpd serve`, every admin command and the tests, so they all act on the same state the
//! same way.

use crate::config::Settings;
use anyhow::{Context, bail};
use otpd_core::{Clock, CoreError, Db, DbOptions, MasterKey, Passwords, Service, SystemClock};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Whether opening may create what is missing: a data directory, a SQLite database, a
/// generated master key. Only `otpd serve` and `otpd init` create; every other command acts
/// on existing data, so that a mistyped `--data-dir` cannot answer from a new, empty one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create the data directory, the database and the master key when missing.
    Yes,
    /// Refuse when they are missing.
    No,
}

/// Opens the service described by `settings`, on the system clock.
pub async fn open(settings: &Settings, create: Create) -> anyhow::Result<Service> {
    open_with_clock(settings, Arc::new(SystemClock), create).await
}

/// Opens the service with an injected clock (tests).
pub async fn open_with_clock(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    create: Create,
) -> anyhow::Result<Service> {
    let sqlite = sqlite_path(&settings.database_url);
    if let Some(path) = &sqlite
        && create == Create::No
        && !path.exists()
    {
        bail!(
            "no otpd database at {} (set --data-dir or OTPD_DATA_DIR; `otpd init` creates one)",
            path.display()
        );
    }
    if create == Create::Yes
        && (sqlite.is_some() || (settings.master_key_file.is_none() && !key_in_env()))
    {
        create_data_dir(&settings.data_dir)?;
    }
    if let Some(path) = &sqlite {
        create_owner_only(path)?;
    }
    let options = DbOptions {
        max_connections: settings.db_max_connections,
        acquire_timeout: settings.db_acquire_timeout,
        statement_timeout: settings.db_statement_timeout,
    };
    let db = Db::connect(&settings.database_url, &options)
        .await
        .context("opening the database")?;
    let master = master_key_for(settings, &db, create).await?;
    let passwords = Passwords::new(settings.password_hash_concurrency).await?;
    Service::new(db, master, clock, passwords)
        .await
        .map_err(|e| match e {
            CoreError::WrongMasterKey { .. } | CoreError::Sealing => anyhow::anyhow!(
                "{e}: start with the key this database was set up with \
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
    // An existing directory keeps the mode its operator gave it; its files are owner-only
    // all the same (below), but a listing of it tells who may look.
    if let Ok(meta) = fs::metadata(dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the data directory is open to other users; chmod 700 it"
        );
    }
    Ok(())
}

/// Who takes the database's lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A server: shared, so that several may serve one file.
    Serving,
    /// A restore: exclusive, so that it never swaps a file a server has open.
    Restoring,
}

/// The lock on the SQLite database, `<database>.lock` beside it, held for as long as the file
/// is kept: shared by servers, exclusive for a restore. `None` on PostgreSQL. A restore
/// while a server runs is refused by name.
pub fn database_lock(settings: &Settings, kind: LockKind) -> anyhow::Result<Option<fs::File>> {
    let Some(db) = sqlite_path(&settings.database_url) else {
        return Ok(None);
    };
    let path = with_suffix(&db, ".lock");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    own_like_directory(&path)?;
    let taken = match kind {
        LockKind::Serving => file.try_lock_shared(),
        LockKind::Restoring => file.try_lock(),
    };
    match taken {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => match kind {
            LockKind::Serving => bail!(
                "{} is being restored: start the server when the restore is done",
                db.display()
            ),
            LockKind::Restoring => bail!(
                "a server is running on {}: stop it before restoring (a backup needs no stop)",
                db.display()
            ),
        },
        Err(fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("locking {}", path.display())))
        }
    }
}

/// Creates the directory of the SQLite file `db` (owner-only) if it is missing: a restore
/// onto a new machine starts from nothing but the key.
pub fn create_data_dir_for(db: &Path) -> anyhow::Result<()> {
    match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => create_data_dir(dir),
        _ => Ok(()),
    }
}

/// Gives `file` the owner of its directory when that is another user and this process may
/// (root restoring the data of a service that runs as its own user; otherwise nothing).
pub fn own_like_directory(file: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = file.parent() else {
        return Ok(());
    };
    let (dir_meta, file_meta) = (fs::metadata(dir)?, fs::metadata(file)?);
    if (dir_meta.uid(), dir_meta.gid()) == (file_meta.uid(), file_meta.gid()) {
        return Ok(());
    }
    match std::os::unix::fs::chown(file, Some(dir_meta.uid()), Some(dir_meta.gid())) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("chown {}", file.display()))),
    }
}

/// `file` with `suffix` added to its name (`otpd.db` → `otpd.db.lock`).
pub fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The SQLite database file of `settings`, if the database is SQLite.
pub fn sqlite_file(settings: &Settings) -> Option<PathBuf> {
    sqlite_path(&settings.database_url)
}

/// The file of a `sqlite:` database URL (`sqlite://PATH?…`, `sqlite:PATH`), if it is one.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Creates the SQLite database file empty and owner-only (0600) when it does not exist yet,
/// whatever the umask and the directory's mode: SQLite then creates the `-wal` and `-shm`
/// files with the database file's mode, so all three stay unreadable to other users.
fn create_owner_only(path: &Path) -> anyhow::Result<()> {
    new_owner_only(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(())
}

/// A new file readable only by its owner, or `None` if `path` already exists (never
/// overwritten).
fn new_owner_only(path: &Path) -> std::io::Result<Option<fs::File>> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `OTPD_MASTER_KEY`.
    Env,
    /// `--master-key-file` / `OTPD_MASTER_KEY_FILE` / `master_key_file`: managed by the operator.
    File(PathBuf),
    /// `master.key` in the data directory, generated by otpd.
    DataDir(PathBuf),
}

fn key_in_env() -> bool {
    std::env::var_os("OTPD_MASTER_KEY").is_some()
}

/// The master key for `db`: as [`master_key`] finds it, except that the data directory's
/// `master.key` is generated only when `create` allows it and `db` holds nothing sealed —
/// a new key beside sealed data would only lock the data away for good.
async fn master_key_for(settings: &Settings, db: &Db, create: Create) -> anyhow::Result<MasterKey> {
    let path = settings.data_dir.join("master.key");
    if key_in_env() || settings.master_key_file.is_some() || path.exists() {
        return Ok(master_key(settings)?.0);
    }
    if db.holds_sealed_data().await? {
        bail!(
            "the master key is missing: expected {} (or OTPD_MASTER_KEY / OTPD_MASTER_KEY_FILE). \
             This database's secrets are sealed under it, so otpd will not make a new one; \
             restore the key from its backup",
            path.display()
        );
    }
    if create == Create::No {
        bail!(
            "no master key at {} (set --data-dir or OTPD_DATA_DIR; `otpd init` creates one)",
            path.display()
        );
    }
    let (key, _) = master_key(settings)?;
    eprintln!(
        "Generated the master key {}: it seals every secret. Back it up apart from the \
         database: a backup without it opens nothing.",
        path.display()
    );
    Ok(key)
}

/// The configured master key, which must exist already (never generated): what a restore
/// checks a backup against.
pub fn existing_master_key(settings: &Settings) -> anyhow::Result<(MasterKey, KeySource)> {
    let path = settings.data_dir.join("master.key");
    if !(key_in_env() || settings.master_key_file.is_some() || path.exists()) {
        bail!(
            "no master key (OTPD_MASTER_KEY, OTPD_MASTER_KEY_FILE or {}): a restore needs the \
             key the backup's secrets are sealed under",
            path.display()
        );
    }
    master_key(settings)
}

/// `OTPD_MASTER_KEY`, else the named key file, else `master.key` in the data directory (generated with
/// mode 0600 when missing).
pub fn master_key(settings: &Settings) -> anyhow::Result<(MasterKey, KeySource)> {
    if let Ok(text) = std::env::var("OTPD_MASTER_KEY") {
        let key = MasterKey::from_base64(&text).map_err(|_| {
            anyhow::anyhow!(
                "OTPD_MASTER_KEY must be the base64 of 32 bytes (openssl rand -base64 32)"
            )
        })?;
        return Ok((key, KeySource::Env));
    }
    if let Some(path) = &settings.master_key_file {
        return Ok((read_key_file(path)?, KeySource::File(path.clone())));
    }
    let path = settings.data_dir.join("master.key");
    if !path.exists() {
        let key = MasterKey::generate()?;
        // Never overwrites: if another process raced us, whatever is on disk is the key.
        write_secret_file(&path, key.to_base64().as_bytes())?;
    }
    Ok((read_key_file(&path)?, KeySource::DataDir(path)))
}

/// Reads a key file holding the base64 of 32 bytes.
pub fn read_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .with_context(|| format!("reading the master key file {}", path.display()))?,
    );
    MasterKey::from_base64(&text)
        .map_err(|_| anyhow::anyhow!("{} must hold the base64 of 32 bytes", path.display()))
}

/// Writes `key` beside the key file at `path` (as `master.key.new`, mode 0600), before the
/// database is changed: if anything fails later, the new key is on disk, not lost.
pub fn stage_key_file(path: &Path, key: &MasterKey) -> anyhow::Result<PathBuf> {
    let staged = path.with_extension("key.new");
    let _ = fs::remove_file(&staged);
    write_secret_file(&staged, key.to_base64().as_bytes())?;
    Ok(staged)
}

/// Moves a staged key file over `path` in one atomic rename, so a crash leaves either the
/// old or the new key, never a torn file.
pub fn install_key_file(staged: &Path, path: &Path) -> anyhow::Result<()> {
    fs::rename(staged, path).with_context(|| {
        format!(
            "moving {} over {}: do it by hand, the database needs the new key",
            staged.display(),
            path.display()
        )
    })?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes a new file readable only by its owner; never overwrites one.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let written = || -> std::io::Result<()> {
        if let Some(mut file) = new_owner_only(path)? {
            file.write_all(contents)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
        }
        Ok(())
    };
    written().with_context(|| format!("writing {}", path.display()))
}

/// Creates the bootstrap administrator on a database without accounts (whichever command
/// created the database): `admin` (full_admin) with a random password, written to
/// `initial-admin-password` in the data directory (0600) and told once — on standard output
/// for `serve` and `init`, on standard error for other commands, whose output scripts read.
pub async fn bootstrap_admin(
    service: &Service,
    settings: &Settings,
    to_stdout: bool,
) -> anyhow::Result<()> {
    let Some(password) = service
        .bootstrap_admin(&otpd_core::RequestMeta::cli())
        .await?
    else {
        return Ok(());
    };
    let path = settings.data_dir.join("initial-admin-password");
    fs::create_dir_all(&settings.data_dir)?;
    write_secret_file(&path, password.expose().as_bytes())?;
    let lines = [
        format!(
            "Created the administrator account 'admin' with password: {}",
            password.expose()
        ),
        format!(
            "(also written to {}; change it and delete the file)",
            path.display()
        ),
    ];
    for line in lines {
        if to_stdout {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }
    Ok(())
}
