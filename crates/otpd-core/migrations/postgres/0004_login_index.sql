-- The account lookup of every verification (`username_key` → `id`, `username`) answered by an
-- index-only scan, as on SQLite: the accounts table's rows carry the TrueNAS profile.
CREATE INDEX accounts_login ON accounts (username_key) INCLUDE (id, username);
