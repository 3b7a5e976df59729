-- The verification path's audit rows are no longer entries of the account index: each
-- authenticator links its verification events newest first (see the SQLite migration of the
-- same name). `audit_head` names the newest event, `audit_events.chain_prev` the one before
-- (0: none); `audit_prev` is the head an update replaced, read back by the same statement so
-- that concurrent verifications of one authenticator, serialised by its row lock, link in
-- the order they took the lock. Event ids of a chain are drawn under that lock too, so they
-- fall along the chain.
ALTER TABLE authenticators ADD COLUMN audit_head BIGINT, ADD COLUMN audit_prev BIGINT;
ALTER TABLE audit_events ADD COLUMN chain_prev BIGINT;
DROP INDEX audit_events_account;
CREATE INDEX audit_events_account ON audit_events(account, id) WHERE chain_prev IS NULL;
