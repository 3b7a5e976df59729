//! A fresh service per test: its own database (a SQLite file, or a throw-away PostgreSQL
//! database when OTPD_TEST_DATABASE_URL is set), a manual clock, a generated master key.

use otpd_core::*;
use std::sync::Arc;
use zeroize::Zeroizing;

/// 2026-11-22 00:00:15 UTC: mid-step, so ±30 s stays in the neighbouring steps.
pub const T0: i64 = 1_795_305_615;

pub struct Env {
    pub service: Service,
    pub clock: ManualClock,
    pub master: MasterKey,
    pub db: otpd_core::testing::TestDatabase,
    pub dir: tempfile::TempDir,
}

pub fn meta() -> RequestMeta {
    RequestMeta {
        door: Door::Rest,
        remote_addr: Some("127.0.0.1".into()),
        request_id: None,
    }
}

pub async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = otpd_core::testing::TestDatabase::create(dir.path())
        .await
        .unwrap();
    let master = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0);
    let service = start(db.url(), master.clone(), clock.clone())
        .await
        .unwrap();
    Env {
        service,
        clock,
        master,
        db,
        dir,
    }
}

pub async fn start(url: &str, master: MasterKey, clock: ManualClock) -> CoreResult<Service> {
    let db = Db::connect(url, &DbOptions::default()).await?;
    Service::new(db, master, Arc::new(clock), Passwords::new(2).await?).await
}

pub fn pw(s: &str) -> Zeroizing<String> {
    Zeroizing::new(s.to_owned())
}

pub const PASSWORD: &str = "correct horse battery";

impl Env {
    /// Creates an account with `roles` and returns a principal for it, through a real
    /// password login (no second factor yet).
    pub async fn account(&self, name: &str, roles: &[Role]) -> Principal {
        let new = NewAccount {
            username: name.into(),
            password: Some(pw(PASSWORD)),
            roles: roles.iter().copied().collect(),
            ..NewAccount::default()
        };
        self.service
            .create_account(&Principal::Cli, new, &meta())
            .await
            .unwrap();
        self.login(name).await
    }

    pub async fn login(&self, name: &str) -> Principal {
        match self
            .service
            .login(name, pw(PASSWORD), &meta())
            .await
            .unwrap()
        {
            LoginOutcome::Session(t) => self.service.authenticate(t.token.expose()).await.unwrap(),
            other => panic!("expected a session, got {other:?}"),
        }
    }

    /// Enrolls and confirms an authenticator for `name` as the CLI; returns its secret.
    pub async fn enroll(&self, name: &str) -> (otp::Secret, Vec<Shown>) {
        let e = self
            .service
            .begin_enrollment(&Principal::Cli, name, &TotpOptions::default(), &meta())
            .await
            .unwrap();
        let secret = otp::Secret::from_base32(e.secret.expose()).unwrap();
        let codes = self
            .service
            .confirm_enrollment(
                &Principal::Cli,
                name,
                &self.code(&secret),
                RecoveryCodeSet::Policy,
                &meta(),
            )
            .await
            .unwrap();
        // The confirming step is claimed: move on to the next one.
        self.clock.advance(30);
        (secret, codes)
    }

    /// Changes the policy as the CLI.
    pub async fn policy(&self, change: impl FnOnce(&mut Policy)) {
        let mut policy = self.service.get_policy(&Principal::Cli).await.unwrap();
        change(&mut policy);
        self.service
            .set_policy(&Principal::Cli, policy, &meta())
            .await
            .unwrap();
    }

    /// A code that is wrong now: not the current one.
    pub fn wrong_code(&self, secret: &otp::Secret) -> &'static str {
        if self.code(secret) == "000000" {
            "111111"
        } else {
            "000000"
        }
    }

    pub fn code(&self, secret: &otp::Secret) -> String {
        self.code_at(secret, 0)
    }

    /// The code `steps` steps away from now (default TOTP parameters).
    pub fn code_at(&self, secret: &otp::Secret, steps: i64) -> String {
        let t = u64::try_from(self.clock.now() + steps * 30).unwrap();
        otp::Totp::default().generate(secret, t).to_string()
    }
}
