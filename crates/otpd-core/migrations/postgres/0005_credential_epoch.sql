-- A counter that every change to what an API key authenticates moves forward; see the
-- SQLite migration of the same name. Statement triggers: one bump per statement, even one
-- that changed no row (a spurious bump only costs each instance one re-read per key).
-- BEFORE the statement, so that every transaction takes the epoch's row lock before the
-- rows the statement locks: taken after them, an account's deletion (its keys, then its
-- row) and a concurrent update of the account or revocation of one of its keys deadlocked.
CREATE TABLE credential_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO credential_epoch (id, epoch) VALUES (1, 0);

CREATE FUNCTION bump_credential_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE credential_epoch SET epoch = epoch + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_epoch BEFORE UPDATE OF id, key_hash, account_id OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bump_credential_epoch();
CREATE TRIGGER accounts_epoch BEFORE UPDATE OF id, username_key, username, roles, locked OR DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION bump_credential_epoch();
