-- A counter that every change to what an API key authenticates moves forward, so that an
-- instance may keep the keys it has seen in memory and still see a revocation, a locked
-- owner or a changed role at the very next request — whichever process made the change
-- (another instance, the CLI): each request reads this one row, in the same snapshot as it
-- would read the key, and trusts a remembered key only if it was read at the same epoch.
-- New keys need no bump: only keys found are remembered. The epoch only ever grows.
CREATE TABLE credential_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO credential_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER api_keys_epoch_update AFTER UPDATE OF id, key_hash, account_id ON api_keys
BEGIN UPDATE credential_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_epoch_delete AFTER DELETE ON api_keys
BEGIN UPDATE credential_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER accounts_epoch_update AFTER UPDATE OF id, username_key, username, roles, locked ON accounts
BEGIN UPDATE credential_epoch SET epoch = epoch + 1 WHERE id = 1; END;
CREATE TRIGGER accounts_epoch_delete AFTER DELETE ON accounts
BEGIN UPDATE credential_epoch SET epoch = epoch + 1 WHERE id = 1; END;
