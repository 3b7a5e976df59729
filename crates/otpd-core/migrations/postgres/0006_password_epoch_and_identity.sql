-- A password change moves the credential epoch too; see the SQLite migration of the same
-- name. BEFORE the statement, like the triggers of 0005, for the same lock order.
CREATE TRIGGER accounts_epoch_password BEFORE UPDATE OF password_hash ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_credential_epoch();

CREATE TABLE deployment_identity (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    cluster_uuid TEXT NOT NULL,
    cluster_name TEXT NOT NULL,
    svm_uuid     TEXT NOT NULL,
    svm_name     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Names order bytewise on both backends (SQLite compares TEXT by bytes): a directory page
-- then ends where a name prefix ends, whatever the database's locale, and the name
-- indexes serve prefix searches.
ALTER TABLE accounts ALTER COLUMN username_key TYPE TEXT COLLATE "C";
