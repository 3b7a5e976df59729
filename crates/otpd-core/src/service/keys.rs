//! The data keys in use (see `seal.rs` for the envelope scheme), kept consistent across every
//! instance on one database without any instance talking to another:
//!
//! - **Sealing** reads the active key id inside the sealing transaction, so a value is never
//!   sealed under a key another instance has already retired; and every sealed column has a
//!   `key_id` foreign key, so a key can only be deleted once no value — committed or in
//!   flight — refers to it. The database decides both.
//! - **Opening** takes the key id from the value's header; an id this instance does not hold
//!   means another instance rotated, and the ring is reloaded from `data_keys`.
//! - **Recovery-code lookups** depend on the key, so consuming a code first checks that the
//!   ring holds every key the database lists.
//!
//! `keys rotate` adds a new active key and re-seals every value under it in batches, each a
//! compare-and-swap on the value it read (a concurrent renewal wins, and its row is re-read),
//! then deletes the retired keys. Nothing stops serving meanwhile.

use super::{Audit, Need, Service};
use crate::seal::hex_id;
use crate::store::Db;
use crate::{
    CoreError, CoreResult, DataKey, KeyRing, MasterKey, Principal, Purpose, RequestMeta,
    sealed_key_id,
};
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::sync::{Arc, RwLock};

/// Values re-sealed per transaction by `keys rotate`.
const BATCH: i64 = 500;
/// How many times `keys rotate` sweeps again when a value was sealed under a retired key
/// while it swept (only an instance mid-transaction at the moment of the switch can do so).
const MAX_PASSES: usize = 10;

/// The master key and the current snapshot of data keys.
pub(crate) struct Keys {
    master: MasterKey,
    ring: RwLock<Arc<KeyRing>>,
}

impl Keys {
    /// Loads the data keys, creating the first one on an empty database. Instances starting
    /// together race on the "one active key" unique index: the loser loads the winner's key.
    /// Fails with [`CoreError::WrongMasterKey`] when `master` did not wrap them.
    pub(crate) async fn open(master: MasterKey, db: &Db, now: i64) -> CoreResult<Self> {
        let mut conn = db.write.acquire().await?;
        let active: Option<i64> =
            sqlx::query_scalar("SELECT id FROM data_keys WHERE state = 'active'")
                .fetch_optional(&mut *conn)
                .await?;
        if active.is_none() {
            let key = DataKey::generate()?;
            let inserted = insert_active(&mut conn, &master, &key, now).await;
            match inserted {
                Err(CoreError::Storage(e)) if crate::store::is_unique_violation(&e) => {}
                other => other?,
            }
        }
        let ring = load(&master, &mut conn).await?;
        Ok(Keys {
            master,
            ring: RwLock::new(Arc::new(ring)),
        })
    }

    fn current(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(ring) => ring.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn reload(&self, conn: &mut AnyConnection) -> CoreResult<Arc<KeyRing>> {
        let ring = Arc::new(load(&self.master, conn).await?);
        match self.ring.write() {
            Ok(mut slot) => *slot = ring.clone(),
            Err(poisoned) => *poisoned.into_inner() = ring.clone(),
        }
        Ok(ring)
    }
}

async fn insert_active(
    conn: &mut AnyConnection,
    master: &MasterKey,
    key: &DataKey,
    now: i64,
) -> CoreResult<()> {
    sqlx::query(
        "INSERT INTO data_keys (id, state, wrapped, created_at) VALUES ($1, 'active', $2, $3)",
    )
    .bind(i64::from(key.id()))
    .bind(master.wrap(key)?)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

async fn load(master: &MasterKey, conn: &mut AnyConnection) -> CoreResult<KeyRing> {
    let rows = sqlx::query("SELECT id, state, wrapped FROM data_keys ORDER BY created_at DESC")
        .fetch_all(conn)
        .await?;
    let mut active = None;
    let mut older = Vec::new();
    for row in rows {
        let id = key_id(row.try_get("id")?)?;
        let key = master.unwrap(id, &row.try_get::<Vec<u8>, _>("wrapped")?)?;
        if row.try_get::<String, _>("state")? == "active" {
            active = Some(key);
        } else {
            older.push(key);
        }
    }
    let active = active.ok_or(CoreError::Internal("no active data key".into()))?;
    Ok(KeyRing::new(active, older))
}

fn key_id(stored: i64) -> CoreResult<u32> {
    u32::try_from(stored).map_err(|_| CoreError::Sealing)
}

/// What `keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The new active data key's id (hex).
    pub active_key: String,
    /// TOTP secrets (active and pending) re-sealed.
    pub resealed_secrets: u64,
    /// Recovery codes re-sealed (and their lookups recomputed).
    pub resealed_recovery_codes: u64,
    /// Retired data keys deleted.
    pub deleted_keys: u64,
}

/// The keys of the database, for `keys status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    /// The id of the master key this instance holds (hex).
    pub master_key: String,
    /// Every data key, the active one first.
    pub data_keys: Vec<DataKeyInfo>,
}

/// One data key and how many values it seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataKeyInfo {
    /// The key id (hex), as in every value's header.
    pub id: String,
    /// `active` or `retired`.
    pub state: String,
    /// When it was created (unix seconds).
    pub created_at: i64,
    /// TOTP secrets sealed under it.
    pub secrets: i64,
    /// Recovery codes sealed under it.
    pub recovery_codes: i64,
}

impl Service {
    /// The ring to seal with inside `conn`'s transaction: the database's active key, reloaded
    /// if another instance rotated since this one last looked.
    pub(crate) async fn sealing_ring(&self, conn: &mut AnyConnection) -> CoreResult<Arc<KeyRing>> {
        let active: i64 = sqlx::query_scalar("SELECT id FROM data_keys WHERE state = 'active'")
            .fetch_one(&mut *conn)
            .await?;
        let ring = self.inner.keys.current();
        if i64::from(ring.active().id()) == active {
            Ok(ring)
        } else {
            self.inner.keys.reload(conn).await
        }
    }

    /// A ring that holds the key `sealed` names (reloading once if it is new to this
    /// instance). The hot path: one shared read lock and an `Arc` clone when nothing changed.
    pub(crate) async fn opening_ring(&self, sealed: &[u8]) -> CoreResult<Arc<KeyRing>> {
        let ring = self.inner.keys.current();
        let id = sealed_key_id(sealed).ok_or(CoreError::Sealing)?;
        if ring.has(id) {
            return Ok(ring);
        }
        let mut conn = self.db().read.acquire().await?;
        self.inner.keys.reload(&mut conn).await
    }

    /// A ring holding every key the database lists, for recovery-code lookups.
    pub(crate) async fn lookup_ring(&self, conn: &mut AnyConnection) -> CoreResult<Arc<KeyRing>> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM data_keys")
            .fetch_all(&mut *conn)
            .await?;
        let ring = self.inner.keys.current();
        if ids
            .iter()
            .all(|&id| key_id(id).is_ok_and(|id| ring.has(id)))
        {
            Ok(ring)
        } else {
            self.inner.keys.reload(conn).await
        }
    }

    /// Whether this instance can serve: the database answers and the master key opens every
    /// data key it lists (one may be new, from a rotation by another instance). A readiness
    /// probe's check; [`CoreError::Storage`] when the database does not answer (or its SQLite
    /// file was moved or removed under the running server),
    /// [`CoreError::Sealing`] or [`CoreError::WrongMasterKey`] when a key does not open.
    pub async fn readiness(&self) -> CoreResult<()> {
        if let Some(lite) = self.db().lite()
            && !lite.still_in_place()
        {
            // The open connections still work on the old file, which no one will read again.
            return Err(CoreError::Storage(sqlx::Error::Protocol(
                "the database file was moved or removed under the running server".into(),
            )));
        }
        let mut conn = self.db().read.acquire().await?;
        self.lookup_ring(&mut conn).await.map(drop)
    }

    /// `otpd keys rotate`: a new active data key, every value re-sealed under it, the retired
    /// keys deleted. Safe while any number of instances serve; safe to interrupt (the next
    /// run finishes the job) and to run twice at once (both converge on the newest key).
    /// `progress(done, total)` is called after every batch.
    pub async fn rotate_keys(
        &self,
        principal: &Principal,
        meta: &RequestMeta,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> CoreResult<Rotation> {
        self.authorize(principal, None, Need::FullAdmin, false)?;
        let key = DataKey::generate()?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        sqlx::query(
            "UPDATE data_keys SET state = 'retired', retired_at = $1 WHERE state = 'active'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_active(&mut tx, &self.inner.keys.master, &key, now).await?;
        let actor = principal.actor();
        self.write_audit(&mut tx, Audit::success(&actor, None, "keys.rotate", meta))
            .await?;
        tx.commit().await?;

        let total = {
            let mut conn = self.db().read.acquire().await?;
            let mut n = 0i64;
            for count in [
                "SELECT COUNT(*) FROM authenticators WHERE key_id <> $1",
                "SELECT COUNT(*) FROM recovery_codes WHERE key_id <> $1",
            ] {
                let count: i64 = sqlx::query_scalar(count)
                    .bind(i64::from(key.id()))
                    .fetch_one(&mut *conn)
                    .await?;
                n = n.saturating_add(count);
            }
            u64::try_from(n).unwrap_or(0)
        };
        let mut report = Rotation {
            active_key: hex_id(key.id()),
            resealed_secrets: 0,
            resealed_recovery_codes: 0,
            deleted_keys: 0,
        };
        progress(0, total);
        for _ in 0..MAX_PASSES {
            loop {
                let (secrets, codes, active) = self.reseal_batch().await?;
                report.active_key = hex_id(active);
                report.resealed_secrets += secrets;
                report.resealed_recovery_codes += codes;
                let done = report.resealed_secrets + report.resealed_recovery_codes;
                progress(done.min(total), total.max(done));
                if secrets == 0 && codes == 0 {
                    break;
                }
            }
            // The foreign keys refuse this while any value (even one being written right
            // now by another instance) still names a retired key; then sweep again.
            match sqlx::query("DELETE FROM data_keys WHERE state = 'retired'")
                .execute(&self.db().write)
                .await
            {
                Ok(done) => {
                    report.deleted_keys = done.rows_affected();
                    let mut conn = self.db().read.acquire().await?;
                    self.inner.keys.reload(&mut conn).await?;
                    return Ok(report);
                }
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Conflict(
            "values are still being sealed under a retired key; run keys rotate again".into(),
        ))
    }

    /// Re-seals up to [`BATCH`] secrets and [`BATCH`] recovery codes not under the active
    /// key, in one transaction; returns how many of each changed and the active key id.
    async fn reseal_batch(&self) -> CoreResult<(u64, u64, u32)> {
        let mut tx = self.db().begin().await?;
        let sealing = self.sealing_ring(&mut tx).await?;
        let active = sealing.active().id();
        let rows = sqlx::query("SELECT id, secret FROM authenticators WHERE key_id <> $1 LIMIT $2")
            .bind(i64::from(active))
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
        let mut secrets = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            let old: Vec<u8> = row.try_get("secret")?;
            let plain = self
                .opening_ring(&old)
                .await?
                .open(Purpose::TotpSecret, &id, &old)?;
            let new = sealing.seal(Purpose::TotpSecret, &id, &plain)?;
            // Compare-and-swap on the sealed bytes: a renewal that landed since the read
            // keeps its new secret; the next batch picks the row up again if need be.
            let done = sqlx::query(
                "UPDATE authenticators SET secret = $1, key_id = $2 WHERE id = $3 AND secret = $4",
            )
            .bind(new)
            .bind(i64::from(active))
            .bind(id)
            .bind(old)
            .execute(&mut *tx)
            .await?;
            secrets += done.rows_affected();
        }
        let rows = sqlx::query(
            "SELECT id, account_id, sealed, key_id FROM recovery_codes WHERE key_id <> $1 LIMIT $2",
        )
        .bind(i64::from(active))
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let mut codes = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            let account_id: String = row.try_get("account_id")?;
            let old: Vec<u8> = row.try_get("sealed")?;
            let old_key: i64 = row.try_get("key_id")?;
            let plain = self
                .opening_ring(&old)
                .await?
                .open(Purpose::RecoveryCode, &id, &old)?;
            let code = std::str::from_utf8(&plain).map_err(|_| CoreError::Sealing)?;
            // Codes never change in place (regeneration deletes and inserts), so the key id
            // is enough to detect a concurrent change.
            let done = sqlx::query(
                "UPDATE recovery_codes SET sealed = $1, lookup = $2, key_id = $3 WHERE id = $4 AND key_id = $5",
            )
            .bind(sealing.seal(Purpose::RecoveryCode, &id, code.as_bytes())?)
            .bind(sealing.lookup(&account_id, code))
            .bind(i64::from(active))
            .bind(id)
            .bind(old_key)
            .execute(&mut *tx)
            .await?;
            codes += done.rows_affected();
        }
        tx.commit().await?;
        Ok((secrets, codes, active))
    }

    /// `otpd keys rewrap`: wraps every data key under `new_master` instead of the current
    /// master key, in one transaction. Values are untouched. Instances that are running keep
    /// their keys in memory; each must be restarted with the new master key (until then it
    /// cannot load a data key created later).
    pub async fn rewrap_keys(
        &self,
        principal: &Principal,
        new_master: &MasterKey,
        meta: &RequestMeta,
    ) -> CoreResult<u64> {
        self.authorize(principal, None, Need::FullAdmin, false)?;
        let mut tx = self.db().begin().await?;
        let rows = sqlx::query("SELECT id, wrapped FROM data_keys")
            .fetch_all(&mut *tx)
            .await?;
        let mut n = 0;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let key = self
                .inner
                .keys
                .master
                .unwrap(key_id(id)?, &row.try_get::<Vec<u8>, _>("wrapped")?)?;
            sqlx::query("UPDATE data_keys SET wrapped = $1 WHERE id = $2")
                .bind(new_master.wrap(&key)?)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        let actor = principal.actor();
        self.write_audit(&mut tx, Audit::success(&actor, None, "keys.rewrap", meta))
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// The master key id and every data key with the number of values it seals.
    pub async fn key_status(&self, principal: &Principal) -> CoreResult<KeyStatus> {
        self.authorize(principal, None, Need::AnyAdmin, false)?;
        let rows = sqlx::query(
            "SELECT k.id, k.state, k.created_at, \
             (SELECT COUNT(*) FROM authenticators a WHERE a.key_id = k.id) AS secrets, \
             (SELECT COUNT(*) FROM recovery_codes r WHERE r.key_id = k.id) AS codes \
             FROM data_keys k ORDER BY k.state, k.created_at DESC",
        )
        .fetch_all(&self.db().read)
        .await?;
        let data_keys = rows
            .iter()
            .map(|row| {
                Ok(DataKeyInfo {
                    id: hex_id(key_id(row.try_get("id")?)?),
                    state: row.try_get("state")?,
                    created_at: row.try_get("created_at")?,
                    secrets: row.try_get("secrets")?,
                    recovery_codes: row.try_get("codes")?,
                })
            })
            .collect::<CoreResult<_>>()?;
        Ok(KeyStatus {
            master_key: hex_id(self.inner.keys.master.id()),
            data_keys,
        })
    }
}
