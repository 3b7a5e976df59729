-- The verification path's audit rows are no longer entries of the account index: under load
-- each such entry dirtied a random index page on top of the authenticator's own (every dirty
-- page costs a WAL write and a checkpoint write), which cut SQLite's verification rate by a
-- third. Instead each authenticator links its verification events newest first:
-- `authenticators.audit_head` names its newest event, `audit_events.chain_prev` the one before
-- (0: none). Rows with `chain_prev IS NULL` are found by account through the index, as before;
-- rows in a chain are reached from their authenticator. Deleting an authenticator first puts
-- its chain back into the index (`chain_prev = NULL`), so no event is ever lost to a query.
ALTER TABLE authenticators ADD COLUMN audit_head INTEGER;
ALTER TABLE audit_events ADD COLUMN chain_prev INTEGER;
DROP INDEX audit_events_account;
CREATE INDEX audit_events_account ON audit_events(account, id) WHERE chain_prev IS NULL;
