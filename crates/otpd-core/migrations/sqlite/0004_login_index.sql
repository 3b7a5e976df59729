-- The account lookup of every verification (`username_key` → `id`, `username`) answered from
-- one index alone: without it each lookup also descended the accounts table, whose rows carry
-- the TrueNAS profile and are the largest part of the database (about 300 of 800 MB with a
-- million accounts), so it cost three more page reads and kept the table in the page cache.
-- The hot path names this index (`INDEXED BY`): the planner prefers the unique index on
-- `username_key` alone.
CREATE INDEX accounts_login ON accounts(username_key, id, username);
