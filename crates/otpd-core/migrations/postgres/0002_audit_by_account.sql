-- One account's audit history is read newest first by id (`WHERE account = $1 ORDER BY id`):
-- an index on (account, id) serves it as a range, where (account, at) needed a sort.
DROP INDEX audit_events_account;
CREATE INDEX audit_events_account ON audit_events(account, id);
