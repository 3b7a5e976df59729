-- The admin console searches accounts by the start of their name, as a range of keys
-- compared byte by byte (`username_key COLLATE "C"`), whatever the database's collation:
-- this index serves that range, so a search stays fast on a million accounts.
CREATE INDEX accounts_name_bytes ON accounts (username_key COLLATE "C");
