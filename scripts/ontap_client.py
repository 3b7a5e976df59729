#!/usr/bin/env python3
"""NetApp's own Python client library (`netapp-ontap`, PyPI) run against otpd's ONTAP
dialect over HTTPS, so that the dialect is proven against the client ONTAP tools use. Used by
the integration test `ontap_python_client`; runnable by hand against a fresh server:

    otpd serve --tls-self-signed on --listen 127.0.0.1:8470 &
    python3 scripts/ontap_client.py 127.0.0.1 8470 ADMIN_PASSWORD

It creates the accounts `alice` and `readonly1` through the native API (the database should
not have them yet), then, with `HostConnection(host, username, password, verify=False)`:
`Cluster.get()`, `Svm.get_collection()`, `Totp.post(return_records=True)` (the secret read
from the HTTP response), `Totp.get_collection()`, `Totp.get()`, `Totp.patch()` (the comment
by the user; `enabled` by an admin; ONTAP's 144834564 surfacing to the user as
`NetAppRestError`), `Totp.delete()` after an admin switched the profile off (ONTAP's
lost-key procedure) and a new `post()`. A code pyotp computes from `secret_key` and an
`emergency_codes` entry are verified through the native API. Exits 0 and prints "ok" when
every answer is as expected.
"""

import sys
import time

import pyotp
import requests
import urllib3
from netapp_ontap import HostConnection, NetAppRestError
from netapp_ontap.resources import Cluster, Svm, Totp

PASSWORD = "correct horse battery"

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


class Native:
    """The native REST API as the administrator (to make accounts and verify codes)."""

    def __init__(self, base, admin_password):
        self.base = base
        token = self.post("/api/v1/auth/login", {"username": "admin", "password": admin_password})
        self.token = token["token"]

    def post(self, path, body, status=200):
        headers = {"Authorization": f"Bearer {self.token}"} if hasattr(self, "token") else {}
        r = requests.post(self.base + path, json=body, headers=headers, verify=False, timeout=10)
        assert r.status_code == status, (path, r.status_code, r.text)
        return r.json()

    def verify(self, name, code):
        return self.post(f"/api/v1/accounts/{name}/totp/verify", {"code": code})


def connection(host, port, user, password):
    return HostConnection(host, username=user, password=password, verify=False, port=port)


def ontap_error(call):
    """Runs `call`, which must fail: the HTTP status and ONTAP's error object."""
    try:
        call()
    except NetAppRestError as e:
        return e.status_code, e.response_body["error"]
    raise AssertionError("expected a NetAppRestError")


def next_code(secret):
    """A code for the next step: the current one was disclosed, and its step claimed."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def main():
    host, port, admin_password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    native = Native(f"https://{host}:{port}", admin_password)
    native.post("/api/v1/accounts", {"username": "alice", "password": PASSWORD}, 201)
    native.post("/api/v1/accounts",
                {"username": "readonly1", "password": PASSWORD, "roles": ["readonly_admin"]}, 201)
    alice = connection(host, port, "alice", PASSWORD)
    admin = connection(host, port, "admin", admin_password)

    with alice:
        cluster = Cluster()
        cluster.get()
        assert cluster.version.generation == 9 and cluster.version.major >= 13, cluster
        svms = list(Svm.get_collection())
        assert len(svms) == 1, svms
        svm_uuid = svms[0].uuid

        # Create: the keys come from the Location header, the secret from the response.
        totp = Totp(account={"name": "alice"}, owner={"uuid": svm_uuid})
        response = totp.post(return_records=True)
        assert response.http_response.status_code == 201
        assert totp.account.name == "alice" and totp.owner.uuid == svm_uuid
        record = response.http_response.json()["records"][0]
        secret = record["secret_key"]
        assert secret in record["install_url"], record
        assert record["verification_code"] == pyotp.TOTP(secret).now() or \
            record["verification_code"] == pyotp.TOTP(secret).at(time.time() - 30)
        assert native.verify("alice", next_code(secret))["valid"] is True
        used = native.verify("alice", record["emergency_codes"][0])
        assert used["valid"] is True and used["method"] == "recovery_code", used

        # Read: the collection (own profile only) and the record, never the secret.
        mine = list(Totp.get_collection(fields="comment,enabled"))
        assert [t.account.name for t in mine] == ["alice"], mine
        assert mine[0].enabled is True
        one = Totp(owner={"uuid": svm_uuid}, account={"name": "alice"})
        one.get()
        assert one.scope == "cluster" and len(one.sha_fingerprint) == 64
        assert not hasattr(one, "secret_key")

        # The comment is the user's; the status is not.
        one.comment = "phone"
        one.patch()
        one.get()
        assert one.comment == "phone"
        one.enabled = False
        status, error = ontap_error(one.patch)
        assert status == 403 and error["code"] == "144834564", error
        assert error["message"] == \
            "Only users with the admin role are allowed to modify the TOTP status."

        # An active second factor is not deleted with a password alone (otpd's rule).
        status, error = ontap_error(Totp(owner={"uuid": svm_uuid}, account={"name": "alice"}).delete)
        assert status == 403 and error["code"] == "6", error

    # A read-only admin sees every profile.
    with connection(host, port, "readonly1", PASSWORD):
        assert "alice" in [t.account.name for t in Totp.get_collection()]

    # The lost-key procedure: the admin switches the profile off...
    with admin:
        off = Totp(owner={"uuid": svm_uuid}, account={"name": "alice"})
        off.enabled = False
        off.patch()
        off.get()
        assert off.enabled is False
        assert "alice" in [t.account.name for t in Totp.get_collection()]
    # ... the user deletes it and creates a new one.
    with alice:
        Totp(owner={"uuid": svm_uuid}, account={"name": "alice"}).delete()
        again = Totp(account={"name": "alice"})
        fresh = again.post(return_records=True).http_response.json()["records"][0]
        assert fresh["secret_key"] != secret
        assert native.verify("alice", next_code(fresh["secret_key"]))["valid"] is True
        stale = native.verify("alice", pyotp.TOTP(secret).at(time.time() + 60))
        assert stale["valid"] is False, stale
    # An admin deletes any profile.
    with admin:
        Totp(owner={"uuid": svm_uuid}, account={"name": "alice"}).delete()
        assert "alice" not in [t.account.name for t in Totp.get_collection()]
    print("ok")


if __name__ == "__main__":
    main()
