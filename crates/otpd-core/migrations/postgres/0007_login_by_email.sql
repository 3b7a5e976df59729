-- Rocket.Chat clients log in with an e-mail address as readily as with a name: the
-- lookup is by the address folded to lower case (ASCII on SQLite, which is what addresses
-- use), and an address shared by two accounts logs in to neither.
CREATE INDEX accounts_email_lower ON accounts (lower(email));
