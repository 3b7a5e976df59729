-- otpd schema, SQLite flavour. Kept column-for-column equal to migrations/postgres so one SQL
-- text per operation works on both (sqlx Any): booleans and timestamps are BIGINT (0/1, unix
-- seconds), ids and JSON are TEXT, sealed values are BLOB.

-- Data keys (seal.rs): random keys wrapped by the operator's master key. Exactly one is
-- active (the partial unique index); retired ones are deleted by `keys rotate` once no value
-- refers to them (the foreign keys below make that check the database's).
CREATE TABLE data_keys (
    id         BIGINT PRIMARY KEY,                -- the key id in every value it seals
    state      TEXT NOT NULL,                     -- active | retired
    wrapped    BLOB NOT NULL,                     -- sealed under the master key
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE UNIQUE INDEX data_keys_one_active ON data_keys(state) WHERE state = 'active';

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    uid           BIGINT NOT NULL UNIQUE,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,          -- lower-cased: names are unique case-insensitively
    full_name     TEXT NOT NULL DEFAULT '',
    email         TEXT,
    roles         TEXT NOT NULL DEFAULT '',      -- space-separated role names
    password_hash TEXT,                          -- NULL: password login disabled
    locked        BIGINT NOT NULL DEFAULT 0,
    profile       TEXT NOT NULL DEFAULT '{}',    -- TrueNAS UserEntry attributes (JSON)
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE authenticators (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL DEFAULT 'totp',
    state           TEXT NOT NULL,               -- pending | active
    secret          BLOB NOT NULL,               -- sealed (AEAD, see seal.rs)
    key_id          BIGINT NOT NULL REFERENCES data_keys(id),
    algorithm       TEXT NOT NULL,
    digits          BIGINT NOT NULL,
    interval_secs   BIGINT NOT NULL,
    enabled         BIGINT NOT NULL DEFAULT 1,
    comment         TEXT NOT NULL DEFAULT '',
    fingerprint     TEXT NOT NULL,
    last_used_step  BIGINT,
    drift           BIGINT NOT NULL DEFAULT 0,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    expires_at      BIGINT,                      -- pending enrollments only
    created_at      BIGINT NOT NULL,
    renewed_at      BIGINT,
    last_used_at    BIGINT
);
-- One authenticator of a kind per account for now; dropping this index allows several.
CREATE UNIQUE INDEX authenticators_account_kind ON authenticators(account_id, kind);
CREATE INDEX authenticators_key ON authenticators(key_id);   -- keys rotate, and the FK check

CREATE TABLE recovery_codes (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    lookup     TEXT NOT NULL,                    -- keyed hash of the code: consumed by one DELETE
    sealed     BLOB NOT NULL,                    -- the code itself, sealed, so its owner can list it
    key_id     BIGINT NOT NULL REFERENCES data_keys(id),
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX recovery_codes_lookup ON recovery_codes(account_id, lookup);
CREATE INDEX recovery_codes_key ON recovery_codes(key_id);

CREATE TABLE sessions (
    id               TEXT PRIMARY KEY,
    token_hash       TEXT NOT NULL UNIQUE,       -- SHA-256 of the token; the token is never stored
    account_id       TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,              -- session | challenge | enrollment
    method           TEXT NOT NULL,              -- how it was authenticated
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    second_factor_at BIGINT,
    door             TEXT NOT NULL,
    remote_addr      TEXT
);
CREATE INDEX sessions_account ON sessions(account_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    key_hash     TEXT NOT NULL UNIQUE,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX api_keys_account ON api_keys(account_id);

CREATE TABLE policy (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    document   TEXT NOT NULL,                    -- JSON of core::Policy
    updated_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    account     TEXT,                            -- the subject's username, if any
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    door        TEXT NOT NULL,
    remote_addr TEXT,
    request_id  TEXT
);
CREATE INDEX audit_events_account ON audit_events(account, at);
CREATE INDEX audit_events_action ON audit_events(action, at);
CREATE INDEX audit_events_at ON audit_events(at);
