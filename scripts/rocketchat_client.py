#!/usr/bin/env python3
"""The `rocketchat_API` Python client (PyPI) run against otpd's Rocket.Chat dialect, so that
the dialect is proven against a client Rocket.Chat bots use. Used by the integration test
`rocketchat_python_client`; runnable by hand against a fresh server:

    otpd serve --listen 127.0.0.1:8470 &
    python3 scripts/rocketchat_client.py http://127.0.0.1:8470 ADMIN_PASSWORD

With `server_url=<server>/rocketchat`, as the administrator: `info()`, `users_create()` for
`alice` and `bob` (the database should not have them yet). As alice: `method.call` of
`2fa:enable` and `2fa:validateTempToken` with a code pyotp computes from the returned
secret (12 backup codes of 8 characters); the client's own `login()` without a code then
fails with `RocketAuthenticationException`; a raw login with the next code succeeds and its
token drives a client (`me()`, `users_info()`, `2fa:checkCodesRemaining`); a backup code
logs in once. The administrator resets alice's TOTP with `users.resetTOTP`, proving itself
with the SHA-256 of its password (`x-2fa-method: password`: it has no TOTP), which ends
alice's sessions. Bob enrolls and resets his own TOTP with a code in `x-2fa-code`. Exits 0
and prints "ok" when every answer is as expected.
"""

import hashlib
import json
import sys
import time

import pyotp
import requests
from rocketchat_API.APIExceptions.RocketExceptions import (
    RocketApiException,
    RocketAuthenticationException,
)
from rocketchat_API.rocketchat import RocketChat

PASSWORD = "correct horse battery"


def method(client, name, *params):
    """A Meteor method through `method.call`: its result, or its error object."""
    message = json.dumps({"msg": "method", "id": "42", "method": name, "params": list(params)})
    answer = client.call_api_post(f"method.call/{name}", message=message)
    assert answer["success"] is True, answer
    inner = json.loads(answer["message"])
    assert inner["msg"] == "result" and inner["id"] == "42", inner
    assert "error" not in inner, inner
    return inner.get("result")


def code_at(secret, offset):
    return pyotp.TOTP(secret).at(time.time() + offset)


def raw_login(url, **body):
    return requests.post(url + "/api/v1/login", json=body, timeout=10)


def enroll(client):
    """Enrolls the client's user; returns the secret and the backup codes."""
    begun = method(client, "2fa:enable")
    secret = begun["secret"]
    assert begun["url"].startswith("otpauth://totp/"), begun
    codes = method(client, "2fa:validateTempToken", code_at(secret, 0))["codes"]
    assert len(codes) == 12 and all(len(c) == 8 for c in codes), codes
    return secret, codes


def main(base, admin_password):
    url = base.rstrip("/") + "/rocketchat"
    admin = RocketChat("admin", admin_password, server_url=url)
    assert admin.info()["version"], "info answers a version"
    for name in ("alice", "bob"):
        created = admin.users_create(f"{name}@example.org", name.title(), PASSWORD, name)
        assert created["success"] and created["user"]["username"] == name, created

    alice = RocketChat("alice", PASSWORD, server_url=url)
    secret, backup = enroll(alice)
    assert method(alice, "2fa:checkCodesRemaining") == {"remaining": 12}

    # The client's own login sends no code: Rocket.Chat answers 401, it raises.
    try:
        RocketChat("alice", PASSWORD, server_url=url)
        raise AssertionError("a login without the second factor succeeded")
    except RocketAuthenticationException:
        pass
    missing = raw_login(url, user="alice", password=PASSWORD)
    assert missing.status_code == 401 and missing.json()["error"] == "totp-required", missing.text

    # The confirming code cannot log in; the next one does, and its token drives a client.
    used = raw_login(url, user="alice", password=PASSWORD, code=code_at(secret, 0))
    assert used.status_code == 401 and used.json()["error"] == "totp-invalid", used.text
    answer = raw_login(url, user="alice", password=PASSWORD, code=code_at(secret, 30))
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["me"]["services"]["totp"]["enabled"] is True, data
    session = RocketChat(auth_token=data["authToken"], user_id=data["userId"], server_url=url)
    assert session.me()["username"] == "alice"
    assert session.users_info(username="alice")["user"]["_id"] == data["userId"]

    # A backup code logs in once.
    assert raw_login(url, username="alice", password=PASSWORD, code=backup[0]).status_code == 200
    again = raw_login(url, username="alice", password=PASSWORD, code=backup[0])
    assert again.status_code == 401, again.text
    assert method(session, "2fa:checkCodesRemaining") == {"remaining": 11}

    # Without proof the reset is refused; the administrator, who has no TOTP, proves itself
    # with its password's SHA-256 and resets alice, whose sessions all end.
    try:
        admin.call_api_post("users.resetTOTP", userId=data["userId"])
        raise AssertionError("a reset without the 2FA check succeeded")
    except RocketApiException as e:
        assert e.error_type == "totp-required", e.response_json
    admin.headers["x-2fa-method"] = "password"
    admin.headers["x-2fa-code"] = hashlib.sha256(admin_password.encode()).hexdigest()
    assert admin.call_api_post("users.resetTOTP", userId=data["userId"]) == {"success": True}
    try:
        session.me()
        raise AssertionError("alice's session survived the reset")
    except RocketApiException as e:
        assert e.status_code == 401, e
    RocketChat("alice", PASSWORD, server_url=url)  # no second factor any more

    # Bob resets his own TOTP with a code in the headers.
    bob = RocketChat("bob", PASSWORD, server_url=url)
    bob_secret, _ = enroll(bob)
    bob.headers["x-2fa-method"] = "totp"
    bob.headers["x-2fa-code"] = "000000" if code_at(bob_secret, 30) != "000000" else "111111"
    try:
        bob.call_api_post("users.resetTOTP")
        raise AssertionError("a wrong code reset the TOTP")
    except RocketApiException as e:
        assert e.error_type == "totp-invalid", e.response_json
    bob.headers["x-2fa-code"] = code_at(bob_secret, 30)
    assert bob.call_api_post("users.resetTOTP") == {"success": True}
    assert bob.me()["services"]["totp"]["enabled"] is False
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
