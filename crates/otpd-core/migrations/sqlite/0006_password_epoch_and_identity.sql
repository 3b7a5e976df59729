-- A password change moves the credential epoch too: the front doors that authenticate with
-- a password on every request (ONTAP's HTTP Basic) remember a successful check only while
-- the epoch stands, so a changed or disabled password is refused at its next request on
-- every instance.
CREATE TRIGGER accounts_epoch_password AFTER UPDATE OF password_hash ON accounts
BEGIN UPDATE credential_epoch SET epoch = epoch + 1 WHERE id = 1; END;

-- The deployment's stable identity as dialects name it (ONTAP's cluster and its one SVM),
-- created once, the same for every instance.
CREATE TABLE deployment_identity (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    cluster_uuid TEXT NOT NULL,
    cluster_name TEXT NOT NULL,
    svm_uuid     TEXT NOT NULL,
    svm_name     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
