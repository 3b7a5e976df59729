//! The admin command line: the same `Service` as the server, acting as `cli` (audited).
//! Passwords come from a prompt or `--password-stdin`, never from arguments.

use crate::boot;
use crate::config::{CommonArgs, ServeArgs, Settings};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use otpd_core::{
    AuditQuery, NewAccount, Policy, Principal, RequestMeta, Role, Service, TotpOptions,
};
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use zeroize::Zeroizing;

/// otpd: a self-hosted two-factor authentication server.
#[derive(Debug, Parser)]
#[command(name = "otpd", version, about)]
pub struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (creating the data directory, database and master key on first start).
    Serve(Box<ServeArgs>),
    /// Create the data directory, the database, the master key and the bootstrap admin,
    /// without serving. Every command but `serve` and `init` needs them to exist.
    Init,
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Manage TOTP authenticators.
    #[command(subcommand)]
    Totp(TotpCmd),
    /// Read or replace an account's recovery codes.
    #[command(subcommand, name = "recovery-codes")]
    RecoveryCodes(RecoveryCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCmd),
    /// Show or change the 2FA policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Show the audit trail.
    Audit(AuditArgs),
    /// Manage the keys that seal secrets at rest.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Copy the embedded SQLite database into FILE while servers run (SQLite's online backup,
    /// never a file copy), then check the copy (integrity, data keys). On PostgreSQL, use
    /// pg_dump (docs/operations.md).
    Backup {
        /// The new file (must not exist).
        file: std::path::PathBuf,
    },
    /// Replace the embedded SQLite database with the backup FILE. Refused while a server
    /// runs on the database; the copy is checked and must open with the configured master
    /// key before it is swapped in; the previous database is kept beside it.
    Restore {
        /// The backup to restore.
        file: std::path::PathBuf,
    },
    /// Ask the server on this host whether it is alive: exit status 0 when `PATH` answers
    /// 200, else 1 (a container's HEALTHCHECK: no curl needed). Plain HTTP to the `listen`
    /// address; under TLS it only checks that the port accepts connections.
    Probe {
        /// The probe to ask.
        #[arg(default_value = "/healthz/live")]
        path: String,
        /// The server's settings (`--listen`, TLS), as `serve` takes them.
        #[command(flatten)]
        serve: Box<ServeArgs>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Re-seal every TOTP secret and recovery code under a new data key, then delete the old
    /// one. Running servers keep serving and pick the new key up by themselves.
    Rotate {
        #[command(flatten)]
        out: Json,
    },
    /// Show the master key id and the data keys with the values each seals.
    Status {
        #[command(flatten)]
        out: Json,
    },
    /// Wrap the data keys under a new master key read from FILE (`openssl rand -base64 32`).
    /// Every instance must then be started with the new key.
    Rewrap {
        /// The file holding the new master key (base64 of 32 bytes).
        #[arg(long, value_name = "FILE")]
        new_master_key_file: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
struct Json {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct PasswordSource {
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "no_password")]
    password_stdin: bool,
    /// No password: password login disabled (`account add`: the account gets none;
    /// `account passwd`: its password is removed).
    #[arg(long)]
    no_password: bool,
}

#[derive(Debug, Subcommand)]
enum AccountCmd {
    /// Create an account.
    Add {
        /// The account name.
        name: String,
        /// full_admin, twofactor_admin, readonly_admin or verifier (repeatable); none for a
        /// plain account. Services that only verify codes should use `verifier`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Display name.
        #[arg(long, default_value = "")]
        full_name: String,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        password: PasswordSource,
        #[command(flatten)]
        out: Json,
    },
    /// List accounts.
    List {
        /// Only names starting with this (case-insensitive).
        #[arg(long)]
        prefix: Option<String>,
        /// At most this many (1–1000).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        #[command(flatten)]
        out: Json,
    },
    /// Show an account.
    Show {
        /// The account name.
        name: String,
        #[command(flatten)]
        out: Json,
    },
    /// Set an account's password.
    Passwd {
        /// The account name.
        name: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Lock an account (ends its sessions).
    Lock {
        /// The account name.
        name: String,
    },
    /// Unlock an account.
    Unlock {
        /// The account name.
        name: String,
    },
    /// Delete an account and everything it owns.
    Remove {
        /// The account name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct Options {
    /// Code length: 6, 7 or 8 [default: the policy's; renew: unchanged].
    #[arg(long)]
    digits: Option<u64>,
    /// Seconds per code, 5–3600 [default: the policy's; renew: unchanged].
    #[arg(long)]
    interval: Option<u64>,
    /// SHA1, SHA256 or SHA512 [default: the policy's; renew: unchanged].
    #[arg(long)]
    algorithm: Option<String>,
}

impl From<Options> for TotpOptions {
    fn from(o: Options) -> Self {
        TotpOptions {
            digits: o.digits,
            interval: o.interval,
            algorithm: o.algorithm,
            comment: None,
        }
    }
}

#[derive(Debug, Subcommand)]
enum TotpCmd {
    /// Provision an active authenticator: prints the QR code, key URI and recovery codes.
    Enroll {
        /// The account name.
        name: String,
        #[command(flatten)]
        options: Options,
        #[command(flatten)]
        out: Json,
    },
    /// Show an authenticator's state.
    Show {
        /// The account name.
        name: String,
        #[command(flatten)]
        out: Json,
    },
    /// Replace the secret (active at once); options not given keep their values.
    Renew {
        /// The account name.
        name: String,
        #[command(flatten)]
        options: Options,
        #[command(flatten)]
        out: Json,
    },
    /// Remove the authenticator and recovery codes; ends the account's sessions.
    Reset {
        /// The account name.
        name: String,
    },
    /// Verify a code: exit status 0 when accepted, 1 when not.
    Verify {
        /// The account name.
        name: String,
        /// The code: 6–8 digits, or a recovery code.
        code: String,
        #[command(flatten)]
        out: Json,
    },
    /// Switch the authenticator on.
    Enable {
        /// The account name.
        name: String,
    },
    /// Switch the authenticator off (it is not asked for and not accepted).
    Disable {
        /// The account name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum RecoveryCmd {
    /// Print the remaining recovery codes.
    List {
        /// The account name.
        name: String,
        #[command(flatten)]
        out: Json,
    },
    /// Replace the recovery codes and print the new ones.
    Regenerate {
        /// The account name.
        name: String,
        #[command(flatten)]
        out: Json,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCmd {
    /// Create an API key; only the key is printed on standard output.
    Create {
        /// The account the key acts as (give services a `verifier` account).
        #[arg(long)]
        account: String,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List API keys.
    List {
        /// Only this account's keys [default: every account's].
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        out: Json,
    },
    /// Revoke an API key by id.
    Revoke {
        /// The key's id (from `apikey list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
    /// Print the policy.
    Show {
        #[command(flatten)]
        out: Json,
    },
    /// Change settings: `otpd policy set window=2 max_failures=5`.
    Set {
        /// `setting=value` pairs (the names of `otpd policy show`).
        #[arg(required = true)]
        changes: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct AuditArgs {
    /// Only events about this account.
    #[arg(long)]
    account: Option<String>,
    /// Only events of this action (e.g. totp.verify).
    #[arg(long)]
    action: Option<String>,
    /// The newest this many events (then new ones, with --follow).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Keep printing new events as they happen.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    out: Json,
}

/// The command's standard output, written in one piece when the command is done (per batch
/// of events when following the audit trail): a reader that stops early (`| head`) is handed
/// the whole answer — all the recovery codes of an enrollment or none of the lines — and a
/// closed pipe ends the command quietly instead of a panic after the change was made.
static OUTPUT: Mutex<String> = Mutex::new(String::new());

/// `print!` into [`OUTPUT`] (the text is formatted before the lock is taken: its
/// arguments may await).
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        OUTPUT
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_str(&text);
    }};
}

/// `println!` into [`OUTPUT`].
macro_rules! say {
    ($($arg:tt)*) => {
        say_raw!("{}\n", format_args!($($arg)*))
    };
}

/// Writes what [`OUTPUT`] holds to standard output in one write, and empties it.
fn flush_output() -> std::io::Result<()> {
    let text = std::mem::take(&mut *OUTPUT.lock().unwrap_or_else(PoisonError::into_inner));
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Whether `e` is a write to a closed pipe (a reader such as `head` that stopped reading).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs the command line; its standard output is written once it is done.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let result = run_command(cli).await;
    let flushed = flush_output();
    let code = result?;
    flushed?;
    Ok(code)
}

async fn run_command(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli { common, command } = cli;
    if let Command::Serve(serve) = command {
        let settings = Settings::resolve(&common, &serve)?;
        crate::init_logging(settings.log_format);
        let server = crate::server::Server::build(settings).await?;
        server.run(crate::server::shutdown_signal()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Probe { path, serve } = &command {
        return probe(&Settings::resolve(&common, serve)?, path).await;
    }
    let settings = Settings::resolve(&common, &ServeArgs::default())?;
    if let Command::Backup { file } = &command {
        return backup(&settings, file).await;
    }
    if let Command::Restore { file } = &command {
        return restore(&settings, file).await;
    }
    if let Command::Init = command {
        let service = boot::open(&settings, boot::Create::Yes).await?;
        boot::bootstrap_admin(&service, &settings, true).await?;
        say!("otpd data is ready at {}", settings.data_dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let service = boot::open(&settings, boot::Create::No).await?;
    boot::bootstrap_admin(&service, &settings, false).await?;
    let p = Principal::Cli;
    let meta = RequestMeta::cli();
    match command {
        Command::Serve(_)
        | Command::Init
        | Command::Probe { .. }
        | Command::Backup { .. }
        | Command::Restore { .. } => {} // handled above
        Command::Account(cmd) => account(&service, &p, &meta, cmd).await?,
        Command::Totp(cmd) => return totp(&service, &p, &meta, cmd).await,
        Command::RecoveryCodes(cmd) => match cmd {
            RecoveryCmd::List { name, out } => print_codes(
                &service.list_recovery_codes(&p, &name, None, &meta).await?,
                out.json,
            )?,
            RecoveryCmd::Regenerate { name, out } => print_codes(
                &service
                    .regenerate_recovery_codes(
                        &p,
                        &name,
                        None,
                        otpd_core::RecoveryCodeSet::Policy,
                        &meta,
                    )
                    .await?,
                out.json,
            )?,
        },
        Command::Apikey(cmd) => match cmd {
            ApiKeyCmd::Create { account, name } => {
                let key = service.create_api_key(&p, &account, &name, &meta).await?;
                say!("{}", key.key.expose());
                // A key nobody saw is revoked at once rather than left behind.
                if let Err(e) = flush_output() {
                    service.revoke_api_key(&p, &key.info.id, &meta).await?;
                    return Err(e.into());
                }
                eprintln!(
                    "API key {} created for {}; it is shown only now.",
                    key.info.id, key.info.account
                );
            }
            ApiKeyCmd::List { account, out } => {
                let keys = service.list_api_keys(&p, account.as_deref()).await?;
                if out.json {
                    print_json(&keys)?;
                } else {
                    for k in keys {
                        say!(
                            "{}  {:<24} {:<20} created {}  last used {}",
                            k.id,
                            k.account,
                            k.name,
                            when(k.created_at),
                            when_opt(k.last_used_at)
                        );
                    }
                }
            }
            ApiKeyCmd::Revoke { id } => service.revoke_api_key(&p, &id, &meta).await?,
        },
        Command::Policy(PolicyCmd::Show { out }) => {
            let policy = service.get_policy(&p).await?;
            if out.json {
                print_json(&policy)?;
            } else {
                say_raw!("{}", toml::to_string(&policy)?);
            }
        }
        Command::Policy(PolicyCmd::Set { changes }) => {
            let mut document = serde_json::to_value(service.get_policy(&p).await?)?;
            for change in changes {
                let (key, value) = change
                    .split_once('=')
                    .with_context(|| format!("{change:?}: expected key=value"))?;
                let value = serde_json::from_str(value)
                    .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
                match document.as_object_mut() {
                    Some(o) if o.contains_key(key) => {
                        o.insert(key.to_owned(), value);
                    }
                    _ => bail!("unknown policy setting {key:?}"),
                }
            }
            let policy: Policy = serde_json::from_value(document)?;
            say_raw!(
                "{}",
                toml::to_string(&service.set_policy(&p, policy, &meta).await?)?
            );
        }
        Command::Audit(args) => audit(&service, &p, args).await?,
        Command::Keys(cmd) => keys(&service, &settings, &p, &meta, cmd).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn keys(
    service: &Service,
    settings: &Settings,
    p: &Principal,
    meta: &RequestMeta,
    cmd: KeysCmd,
) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Rotate { out } => {
            // Drawn on stderr only when it is a terminal (indicatif hides it otherwise).
            let bar =
                indicatif::ProgressBar::new(0).with_style(indicatif::ProgressStyle::with_template(
                    "re-sealing {bar:40} {pos}/{len} values ({per_sec}, {eta} left)",
                )?);
            let report = service
                .rotate_keys(p, meta, &mut |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await?;
            bar.finish_and_clear();
            if out.json {
                print_json(&report)?;
            } else {
                say!(
                    "active data key {}: re-sealed {} secrets and {} recovery codes, deleted {} old key(s)",
                    report.active_key,
                    report.resealed_secrets,
                    report.resealed_recovery_codes,
                    report.deleted_keys
                );
            }
        }
        KeysCmd::Status { out } => {
            let status = service.key_status(p).await?;
            if out.json {
                print_json(&status)?;
            } else {
                say!("master key {}", status.master_key);
                for k in status.data_keys {
                    say!(
                        "data key {} {:<8} created {}  seals: {} TOTP secret(s), {} recovery code(s)",
                        k.id,
                        k.state,
                        when(k.created_at),
                        k.secrets,
                        k.recovery_codes
                    );
                }
            }
        }
        KeysCmd::Rewrap {
            new_master_key_file,
        } => {
            let new = boot::read_key_file(&new_master_key_file)?;
            let (current, source) = boot::master_key(settings)?;
            if new.id() == current.id() {
                bail!("the new master key is the current one");
            }
            let staged = match &source {
                boot::KeySource::DataDir(path) => Some(boot::stage_key_file(path, &new)?),
                _ => None,
            };
            let n = match service.rewrap_keys(p, &new, meta).await {
                Ok(n) => n,
                Err(e) => {
                    if let Some(staged) = staged {
                        let _ = std::fs::remove_file(staged);
                    }
                    return Err(e.into());
                }
            };
            match (source, staged) {
                (boot::KeySource::DataDir(path), Some(staged)) => {
                    boot::install_key_file(&staged, &path)?;
                    say!(
                        "{n} data key(s) now wrapped under master key {:08x}, written to {}; \
                         restart otpd to use it",
                        new.id(),
                        path.display()
                    );
                }
                _ => say!(
                    "{n} data key(s) now wrapped under master key {:08x}; start every instance \
                     with it (OTPD_MASTER_KEY or OTPD_MASTER_KEY_FILE) from now on",
                    new.id()
                ),
            }
        }
    }
    Ok(())
}

async fn account(
    service: &Service,
    p: &Principal,
    meta: &RequestMeta,
    cmd: AccountCmd,
) -> anyhow::Result<()> {
    match cmd {
        AccountCmd::Add {
            name,
            roles,
            full_name,
            email,
            password,
            out,
        } => {
            let roles = roles
                .iter()
                .map(|r| r.parse::<Role>())
                .collect::<Result<_, _>>()?;
            let password = read_password(&password, &name)?;
            let account = service
                .create_account(
                    p,
                    NewAccount {
                        username: name,
                        password,
                        roles,
                        full_name,
                        email,
                        profile: None,
                    },
                    meta,
                )
                .await?;
            if out.json {
                print_json(&account)?;
            } else {
                say!("created {} (uid {})", account.username, account.uid);
            }
        }
        AccountCmd::List { prefix, limit, out } => {
            let accounts = service
                .list_accounts(p, prefix.as_deref(), limit, 0)
                .await?;
            if out.json {
                print_json(&accounts)?;
            } else {
                for a in accounts {
                    let roles: Vec<&str> = a.roles.iter().map(|r| r.as_str()).collect();
                    say!(
                        "{:<32} uid {:<6} {}{}",
                        a.username,
                        a.uid,
                        roles.join(","),
                        if a.locked { " (locked)" } else { "" }
                    );
                }
            }
        }
        AccountCmd::Show { name, out } => {
            let a = service.get_account(p, &name).await?;
            if out.json {
                print_json(&a)?;
            } else {
                table(&[
                    ("username", a.username.clone()),
                    ("id", a.id.clone()),
                    ("uid", a.uid.to_string()),
                    ("full name", dash(&a.full_name)),
                    ("email", a.email.clone().unwrap_or_else(|| "-".into())),
                    ("roles", roles(&a.roles)),
                    (
                        "password",
                        if a.password_disabled {
                            "none (password login disabled)"
                        } else {
                            "set"
                        }
                        .into(),
                    ),
                    ("locked", yes_no(a.locked)),
                    (
                        "second factor",
                        if a.twofactor_configured {
                            "active"
                        } else {
                            "none active"
                        }
                        .into(),
                    ),
                    ("created", when(a.created_at)),
                    ("updated", when(a.updated_at)),
                ]);
            }
        }
        AccountCmd::Passwd { name, password } => {
            let password = read_password(&password, &name)?;
            service
                .set_password(p, &name, password, None, None, meta)
                .await?;
        }
        AccountCmd::Lock { name } => {
            service.set_account_locked(p, &name, true, meta).await?;
        }
        AccountCmd::Unlock { name } => {
            service.set_account_locked(p, &name, false, meta).await?;
        }
        AccountCmd::Remove { name } => service.delete_account(p, &name, meta).await?,
    }
    Ok(())
}

async fn totp(
    service: &Service,
    p: &Principal,
    meta: &RequestMeta,
    cmd: TotpCmd,
) -> anyhow::Result<ExitCode> {
    match cmd {
        TotpCmd::Enroll { name, options, out } => {
            let enrolled = service
                .provision_totp(p, &name, &options.into(), false, meta)
                .await?;
            if out.json {
                print_json(&enrolled)?;
            } else {
                let uri = enrolled.provisioning_uri.expose();
                say!("{}", crate::qr::terminal(uri).map_err(anyhow::Error::msg)?);
                say!("Key URI:  {uri}");
                say!("Secret:   {}", enrolled.secret.expose());
                say!("Recovery codes (each works once):");
                for c in &enrolled.recovery_codes {
                    say!("  {}", c.expose());
                }
            }
            // Nobody may be left with a secret and codes that nobody saw: if the output
            // cannot be written, the enrollment is undone (both audited).
            if let Err(e) = flush_output() {
                service.remove_totp(p, &name, None, meta).await?;
                return Err(e.into());
            }
        }
        TotpCmd::Show { name, out } => {
            let status = service.totp_status(p, &name).await?;
            if out.json {
                print_json(&status)?;
            } else {
                table(&[
                    ("state", status.state.clone()),
                    ("enabled", yes_no(status.enabled)),
                    (
                        "parameters",
                        format!(
                            "{} digits, {} s, {}",
                            status.digits, status.interval, status.algorithm
                        ),
                    ),
                    ("fingerprint", status.fingerprint.clone()),
                    ("comment", dash(&status.comment)),
                    (
                        "recovery codes left",
                        status.recovery_codes_remaining.to_string(),
                    ),
                    ("failed attempts", status.failed_attempts.to_string()),
                    ("locked until", when_opt(status.locked_until)),
                    ("drift (steps)", status.drift.to_string()),
                    ("created", when(status.created_at)),
                    ("renewed", when_opt(status.renewed_at)),
                    ("last used", when_opt(status.last_used_at)),
                    ("pending until", when_opt(status.expires_at)),
                ]);
            }
        }
        TotpCmd::Renew { name, options, out } => {
            let renewed = service
                .renew_totp(p, &name, &options.into(), None, meta)
                .await?;
            if out.json {
                print_json(&renewed)?;
            } else {
                say!(
                    "{}",
                    crate::qr::terminal(renewed.provisioning_uri.expose())
                        .map_err(anyhow::Error::msg)?
                );
                say!("Key URI:  {}", renewed.provisioning_uri.expose());
            }
        }
        TotpCmd::Reset { name } => service.remove_totp(p, &name, None, meta).await?,
        TotpCmd::Verify { name, code, out } => {
            let outcome = service.verify_totp(p, &name, &code, meta).await?;
            if out.json {
                print_json(&outcome)?;
            } else if outcome.valid {
                say!(
                    "accepted ({})",
                    outcome.method.map(|m| m.as_str()).unwrap_or("")
                );
            } else {
                let reason = outcome.reason.unwrap_or(otpd_core::VerifyReason::Invalid);
                say!("refused ({}): {}", reason.as_str(), reason.describe());
            }
            return Ok(if outcome.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        TotpCmd::Enable { name } => {
            service
                .update_totp(p, &name, Some(true), None, None, meta)
                .await?;
        }
        TotpCmd::Disable { name } => {
            service
                .update_totp(p, &name, Some(false), None, None, meta)
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit(service: &Service, p: &Principal, args: AuditArgs) -> anyhow::Result<()> {
    let mut query = AuditQuery {
        account: args.account,
        action: args.action,
        limit: Some(args.limit),
        ..AuditQuery::default()
    };
    let mut events = service.audit_events(p, &query).await?;
    events.reverse();
    if !args.out.json {
        say!(
            "{:>8} {:<20} {:<16} {:<10} {:<28} {:<24} {:<7} REASON",
            "ID",
            "TIME",
            "ACTOR",
            "DOOR",
            "ACTION",
            "ACCOUNT",
            "OUTCOME"
        );
    }
    loop {
        for e in &events {
            if args.out.json {
                say!("{}", serde_json::to_string(e)?);
            } else {
                say!(
                    "{:>8} {:<20} {:<16} {:<10} {:<28} {:<24} {:<7} {}",
                    e.id,
                    when(e.at),
                    e.actor,
                    e.door,
                    e.action,
                    e.account.as_deref().unwrap_or("-"),
                    e.outcome,
                    e.reason.as_deref().unwrap_or("")
                );
            }
        }
        flush_output()?;
        if !args.follow {
            return Ok(());
        }
        if let Some(last) = events.last() {
            query.after_id = Some(last.id);
        } else if query.after_id.is_none() {
            query.after_id = Some(0);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        events = service.audit_events(p, &query).await?;
    }
}

fn read_password(source: &PasswordSource, name: &str) -> anyhow::Result<Option<Zeroizing<String>>> {
    if source.no_password {
        return Ok(None);
    }
    if source.password_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        let trimmed = line.trim_end_matches(['\r', '\n']);
        return Ok(Some(Zeroizing::new(trimmed.to_owned())));
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password: use --password-stdin, --no-password, or run in a terminal to be prompted"
        );
    }
    let first = Zeroizing::new(rpassword::prompt_password(format!(
        "Password for {name}: "
    ))?);
    let again = Zeroizing::new(rpassword::prompt_password("Again: ")?);
    if first != again {
        bail!("the passwords differ");
    }
    Ok(Some(first))
}

/// A Unix time as RFC 3339, UTC, to the second.
fn when(unix: i64) -> String {
    crate::app::rfc3339(unix)
}

fn when_opt(unix: Option<i64>) -> String {
    unix.map_or_else(|| "-".into(), when)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        text.into()
    }
}

fn roles(roles: &otpd_core::Roles) -> String {
    if roles.is_empty() {
        "none (plain account)".into()
    } else {
        roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Two columns: a label and its value.
fn table(rows: &[(&str, String)]) {
    for (label, value) in rows {
        say!("{label:<20} {value}");
    }
}

fn print_codes(codes: &[otpd_core::Shown], json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&codes)?;
    } else {
        for c in codes {
            say!("{}", c.expose());
        }
    }
    Ok(())
}

fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    say!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `otpd probe`: one HTTP/1.1 GET of `path` on the listen address (an unspecified address
/// means this host), within 3 seconds.
async fn probe(settings: &Settings, path: &str) -> anyhow::Result<ExitCode> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut address = settings.listen;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!(
            "the probe's path must start with '/' and hold no spaces (e.g. /healthz/live)"
        );
    }
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        if settings.tls.is_some() {
            return Ok::<_, std::io::Error>(
                "accepting connections (TLS: no HTTP check)".to_owned(),
            );
        }
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.take(4096).read_to_end(&mut answer).await?;
        Ok(String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned())
    };
    let status = match tokio::time::timeout(std::time::Duration::from_secs(3), ask).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => format!("no answer from {address}: {e}"),
        Err(_) => format!("no answer from {address} within 3 s"),
    };
    let ok = status.starts_with("HTTP/1.1 200") || status.starts_with("accepting");
    say!("{status}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The SQLite file of `settings`, or the advice for PostgreSQL.
fn sqlite_or_advice(settings: &Settings, what: &str) -> anyhow::Result<std::path::PathBuf> {
    boot::sqlite_file(settings).ok_or_else(|| {
        anyhow::anyhow!(
            "{what} is for the embedded SQLite database; on PostgreSQL use pg_dump and \
             pg_restore (docs/operations.md, Backup and restore)"
        )
    })
}

fn print_copy(report: &otpd_core::backup::CopyReport, what: &str, file: &std::path::Path) {
    say!(
        "{what} {}: {} bytes, {} accounts, data keys {} (integrity checked)",
        file.display(),
        report.bytes,
        report.accounts,
        report.data_keys.join(", ")
    );
}

/// `otpd backup FILE`.
async fn backup(settings: &Settings, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let db = sqlite_or_advice(settings, "otpd backup")?;
    if !db.exists() {
        bail!(
            "no otpd database at {} (set --data-dir or OTPD_DATA_DIR)",
            db.display()
        );
    }
    // Drawn on stderr only when it is a terminal (indicatif hides it otherwise).
    let bar = indicatif::ProgressBar::new(0).with_style(indicatif::ProgressStyle::with_template(
        "copying {spinner} {bytes} of {total_bytes} ({elapsed})",
    )?);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let target = file.to_owned();
    let drawn = bar.clone();
    let report = tokio::task::spawn_blocking(move || {
        otpd_core::backup::copy_sqlite(&db, &target, &mut |done, total| {
            drawn.set_length(total);
            drawn.set_position(done);
        })
    })
    .await??;
    bar.finish_and_clear();
    print_copy(&report, "backed up to", file);
    say!("keep the master key apart from this file: the copy opens with it only");
    Ok(ExitCode::SUCCESS)
}

/// `otpd restore FILE`: checked on a copy beside the database, which is swapped in only
/// when the configured master key opens it.
async fn restore(settings: &Settings, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let db = sqlite_or_advice(settings, "otpd restore")?;
    boot::create_data_dir_for(&db)?;
    let Some(_lock) = boot::database_lock(settings, boot::LockKind::Restoring)? else {
        bail!("otpd restore is for the embedded SQLite database");
    };
    let (master, _) = boot::existing_master_key(settings)?;
    let report = otpd_core::backup::check_copy(file)
        .with_context(|| format!("checking {}", file.display()))?;
    let candidate = sibling(&db, "restoring");
    let _ = std::fs::remove_file(&candidate);
    otpd_core::backup::copy_sqlite(file, &candidate, &mut |_, _| {})
        .with_context(|| format!("copying {}", file.display()))?;
    // The candidate opens as a database of this deployment: migrations (an older backup is
    // brought up to date), the master key against its data keys, every data key opened.
    let opened: anyhow::Result<()> = async {
        let url = format!("sqlite://{}", candidate.display());
        let db = otpd_core::Db::connect(&url, &otpd_core::DbOptions::default()).await?;
        let passwords = otpd_core::Passwords::new(1).await?;
        let service = otpd_core::Service::new(
            db.clone(),
            master,
            std::sync::Arc::new(otpd_core::SystemClock),
            passwords,
        )
        .await?;
        let ready = service.readiness().await;
        // Every connection to the copy closes (the service's writer thread ends when the
        // service is dropped; the reader connections with the last `Db`), so that it can
        // be settled into one file and moved.
        drop(service);
        db.close().await;
        drop(db);
        ready?;
        let settling = candidate.clone();
        tokio::task::spawn_blocking(move || otpd_core::backup::settle(&settling)).await??;
        Ok(())
    }
    .await;
    if let Err(e) = opened {
        let _ = std::fs::remove_file(&candidate);
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(boot::with_suffix(&candidate, suffix));
        }
        bail!(
            "{e}: the configured master key does not open {} (or it is not a database this \
             version can open); nothing was changed",
            file.display()
        );
    }
    let kept = if db.exists() {
        // Fold the WAL into the file, so that the file alone is the whole previous database
        // (another command still using it makes this wait, then fail).
        if let Err(e) = otpd_core::backup::settle(&db) {
            let _ = std::fs::remove_file(&candidate);
            bail!(
                "{e}: another otpd command is using {}; nothing was changed",
                db.display()
            );
        }
        let now = otpd_core::Clock::now(&otpd_core::SystemClock);
        let kept = sibling(&db, &format!("before-restore-{now}"));
        std::fs::rename(&db, &kept)?;
        Some(kept)
    } else {
        None
    };
    // Run as root for a service that runs as its own user: the new file gets the owner of the
    // directory it lands in, as the previous one had.
    boot::own_like_directory(&candidate)?;
    std::fs::rename(&candidate, &db)?;
    print_copy(&report, "restored from", file);
    if let Some(kept) = kept {
        say!("the previous database is kept as {}", kept.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `<file>.<what>` beside `file`.
fn sibling(file: &std::path::Path, what: &str) -> std::path::PathBuf {
    boot::with_suffix(file, &format!(".{what}"))
}
