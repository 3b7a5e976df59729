#!/usr/bin/env python3
"""A small TrueNAS JSON-RPC client (websocket-client + pyotp) run against otpd's TrueNAS
dialect, so that a non-Rust client is proven against it. Used by the integration test
`truenas_python_client`; runnable by hand:

    python3 scripts/truenas_client.py ws://127.0.0.1:8470/api/current ADMIN_PASSWORD

It creates the accounts `alice` and `bob` (the database should not have them yet), then:
password login, OTP_REQUIRED after enrollment, OTP_TOKEN computed by pyotp from the returned
provisioning_uri, replay refused, renewal as self and as FULL_ADMIN, a plain user refused
with TrueNAS's exact error, and TrueNAS's validation errors. Exits 0 and prints "ok" when
every answer is as TrueNAS gives it.
"""

import itertools
import json
import sys

import pyotp
import websocket

PASSWORD = "correct horse battery"


class Client:
    _ids = itertools.count(1)

    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=10)

    def call(self, method, *params):
        """Returns ("result", value) or ("error", error object)."""
        call_id = next(self._ids)
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method,
                                 "params": list(params)}))
        answer = json.loads(self.ws.recv())
        assert answer["jsonrpc"] == "2.0" and answer["id"] == call_id, answer
        if "error" in answer:
            return "error", answer["error"]
        return "result", answer["result"]

    def ok(self, method, *params):
        kind, value = self.call(method, *params)
        assert kind == "result", f"{method}: {value}"
        return value

    def login(self, username, password):
        return self.ok("auth.login_ex", {"mechanism": "PASSWORD_PLAIN", "username": username,
                                         "password": password})


def expect_call_error(answer, errname, message):
    kind, error = answer
    assert kind == "error", answer
    assert error["code"] == -32001 and error["message"] == "Method call error", error
    assert error["data"]["errname"] == errname, error
    assert error["data"]["reason"] == f"[{errname}] {message}", error


def expect_validation(answer, attribute, message):
    kind, error = answer
    assert kind == "error", answer
    assert error["code"] == -32602 and error["message"] == "Invalid params", error
    assert error["data"]["error"] == 22 and error["data"]["errname"] == "EINVAL", error
    assert error["data"]["extra"] == [[attribute, message, 22]], error


def main(url, admin_password):
    admin = Client(url)
    assert admin.ok("core.ping") == "pong"
    assert admin.login("admin", admin_password)["response_type"] == "SUCCESS"
    for name in ("alice", "bob"):
        admin.ok("user.create", {"username": name, "full_name": name.title(),
                                 "password": PASSWORD})

    # The first renewal gives alice a secret (and claims the current step); a second one by
    # the admin replaces it with an unused one, 8 digits.
    first = admin.ok("user.renew_2fa_secret", "alice", {})
    assert first["twofactor_auth_configured"] is True
    renewed = admin.ok("user.renew_2fa_secret", "alice", {"otp_digits": 8})
    config = renewed["twofactor_config"]
    assert config["otp_digits"] == 8 and config["interval"] == 30, config
    totp = pyotp.parse_uri(config["provisioning_uri"])
    assert totp.digits == 8

    alice = Client(url)
    assert alice.login("alice", PASSWORD) == {"response_type": "OTP_REQUIRED",
                                              "username": "alice"}
    code = totp.now()
    answer = alice.ok("auth.login_ex_continue", {"mechanism": "OTP_TOKEN", "otp_token": code})
    assert answer["response_type"] == "SUCCESS", answer
    assert answer["user_info"]["two_factor_config"]["secret_configured"] is True

    replay = Client(url)
    assert replay.login("alice", PASSWORD)["response_type"] == "OTP_REQUIRED"
    answer = replay.ok("auth.login_ex_continue", {"mechanism": "OTP_TOKEN", "otp_token": code})
    assert answer == {"response_type": "AUTH_ERR"}, answer

    mine = alice.ok("user.renew_2fa_secret", "alice", {"interval": 60})
    assert mine["twofactor_config"]["interval"] == 60
    assert mine["twofactor_config"]["otp_digits"] == 8

    bob = Client(url)
    assert bob.login("bob", PASSWORD)["response_type"] == "SUCCESS"
    expect_call_error(
        bob.call("user.renew_2fa_secret", "alice", {}), "EPERM",
        "alice: currently authenticated credential may not renew two-factor authentication "
        "for this user.")

    expect_validation(admin.call("user.renew_2fa_secret", "alice", {"otp_digits": 5}),
                      "twofactor_options.otp_digits", "Input should be greater than or equal to 6")
    expect_validation(admin.call("user.renew_2fa_secret", "alice", {"interval": 4}),
                      "twofactor_options.interval", "Input should be greater than or equal to 5")
    expect_validation(admin.call("user.renew_2fa_secret", "alice", {"unknown": True}),
                      "twofactor_options.unknown", "Extra inputs are not permitted")
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
