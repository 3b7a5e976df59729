#!/usr/bin/env python3
"""The `python-zimbra` client (PyPI) run against otpd's Zimbra dialect, so that the dialect is
proven against a client Zimbra integrations use. Used by the integration test
`zimbra_python_client`; runnable by hand against a fresh server:

    otpd serve --listen 127.0.0.1:8470 &
    python3 scripts/zimbra_client.py http://127.0.0.1:8470 ADMIN_PASSWORD

It creates the account `alice@example.org` through the native API (the database should not
have it yet), then with python-zimbra at `<server>/service/soap`:
`pythonzimbra.tools.auth.authenticate(…, use_password=True)` (XML and JSON), the two steps
of `EnableTwoFactorAuthRequest` through `Communication.send_request` — step 1 as a JSON
request, step 2 as an XML request with the enablement token and a code pyotp computes from
the returned `secret` — then `AuthRequest` with the `twoFactorCode` in one request, the
two-step `AuthRequest` completed with a scratch code, and a fault for a wrong code. Exits 0
and prints "ok" when every answer is as expected.
"""

import sys
import time

import pyotp
import requests
from pythonzimbra.communication import Communication
from pythonzimbra.tools import auth

PASSWORD = "correct horse battery"
ALICE = "alice@example.org"
ACCOUNT = "urn:zimbraAccount"


def native_account(base, admin_password):
    token = requests.post(
        base + "/api/v1/auth/login",
        json={"username": "admin", "password": admin_password},
        timeout=10,
    ).json()["token"]
    r = requests.post(
        base + "/api/v1/accounts",
        json={"username": ALICE, "password": PASSWORD},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text


def send(comm, request_type, name, body):
    request = comm.gen_request(request_type=request_type)
    request.add_request(name, body, ACCOUNT)
    return comm.send_request(request)


def value(v):
    """python-zimbra gives a text as a string (XML) or {'_content': …} (JSON)."""
    return v["_content"] if isinstance(v, dict) else v


def main(base, admin_password):
    native_account(base, admin_password)
    url = base.rstrip("/") + "/service/soap"
    for request_type in ("xml", "json"):
        token = auth.authenticate(url, ALICE, PASSWORD, use_password=True, request_type=request_type)
        assert value(token).startswith("otpd_s_"), token
    assert auth.authenticate(url, ALICE, "wrong password", use_password=True) is None

    comm = Communication(url)
    # Step 1 (JSON): the secret and a single-use enablement token.
    r = send(comm, "json", "EnableTwoFactorAuthRequest",
             {"name": {"_content": ALICE}, "password": {"_content": PASSWORD}})
    assert not r.is_fault(), r.get_response()
    step1 = r.get_response()["EnableTwoFactorAuthResponse"]
    secret = value(step1["secret"])
    enable_token = value(step1["authToken"])
    totp = pyotp.TOTP(secret)

    # Step 2 (XML): the token and a code.
    r = send(comm, "xml", "EnableTwoFactorAuthRequest",
             {"name": {"_content": ALICE}, "authToken": {"_content": enable_token},
              "twoFactorCode": {"_content": totp.now()}})
    assert not r.is_fault(), r.get_response()
    step2 = r.get_response()["EnableTwoFactorAuthResponse"]
    codes = [value(c) for c in step2["scratchCodes"]["scratchCode"]]
    assert len(codes) == 10 and all(len(c) == 8 for c in codes), codes
    assert value(step2["authToken"]).startswith("otpd_s_")

    # The enablement token was single use.
    r = send(comm, "xml", "EnableTwoFactorAuthRequest",
             {"name": {"_content": ALICE}, "authToken": {"_content": enable_token},
              "twoFactorCode": {"_content": totp.now()}})
    assert r.is_fault() and r.get_fault_code() == "account.AUTH_FAILED", r.get_response()

    # A password alone now asks for the second factor.
    r = send(comm, "xml", "AuthRequest",
             {"account": {"by": "name", "_content": ALICE}, "password": {"_content": PASSWORD}})
    first = r.get_response()["AuthResponse"]
    assert value(first["twoFactorAuthRequired"]) == "true", first
    # The confirming code cannot log in; the next one does (password and code at once).
    r = send(comm, "json", "AuthRequest",
             {"account": {"by": "name", "_content": ALICE}, "password": {"_content": PASSWORD},
              "twoFactorCode": {"_content": totp.now()}})
    assert r.is_fault() and r.get_fault_code() == "account.TWO_FACTOR_AUTH_FAILED", r.get_response()
    r = send(comm, "xml", "AuthRequest",
             {"account": {"by": "name", "_content": ALICE}, "password": {"_content": PASSWORD},
              "twoFactorCode": {"_content": totp.at(time.time() + 30)}})
    assert not r.is_fault(), r.get_response()
    assert value(r.get_response()["AuthResponse"]["authToken"]).startswith("otpd_s_")

    # Step 2 of a login with the two-factor token and a scratch code.
    r = send(comm, "json", "AuthRequest",
             {"account": {"by": "name", "_content": ALICE},
              "authToken": {"_content": value(first["authToken"])},
              "twoFactorCode": {"_content": codes[0]}})
    assert not r.is_fault(), r.get_response()
    session = value(r.get_response()["AuthResponse"]["authToken"])

    # The session reads the remaining scratch codes.
    request = comm.gen_request(request_type="xml", token=session)
    request.add_request("GetScratchCodesRequest", {}, ACCOUNT)
    r = comm.send_request(request)
    assert not r.is_fault(), r.get_response()
    left = [value(c) for c in r.get_response()["GetScratchCodesResponse"]["scratchCodes"]["scratchCode"]]
    assert len(left) == 9 and codes[0] not in left, left
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
