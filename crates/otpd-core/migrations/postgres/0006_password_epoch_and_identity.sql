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
-- indexes serve prefix searches. A column named in a trigger cannot change type: the
-- epoch trigger of 0005 is dropped and made again around the change.
DROP TRIGGER accounts_epoch ON accounts;
ALTER TABLE accounts ALTER COLUMN username_key TYPE TEXT COLLATE "C";
CREATE TRIGGER accounts_epoch BEFORE UPDATE OF id, username_key, username, roles, locked OR DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_credential_epoch();
