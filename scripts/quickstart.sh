#!/usr/bin/env bash
# The README quick start, run for real: start the server, log in as the bootstrap admin,
# create an account, enroll it, confirm with a code computed by oathtool, verify, and see a
# replay refused. CI runs this against the built binary so the documentation cannot rot.
#
#   scripts/quickstart.sh [path/to/otpd]      (default: target/debug/otpd)
set -euo pipefail
otpd=$(realpath "${1:-target/debug/otpd}")
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
base="http://127.0.0.1:$port"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
post() { curl -sS --fail-with-body -X POST "$base$1" -H 'content-type: application/json' "${@:3}" -d "$2"; }

# 1. Start the server (embedded SQLite in the data directory).
cd "$work"
"$otpd" serve --listen "127.0.0.1:$port" > serve.log 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$base/readyz" >/dev/null || { cat serve.log; exit 1; }
# The README points a browser at /ui/: it leads to the sign-in page.
curl -sfL "$base/ui/" | grep -q '<form method="post" action="/ui/sign-in"' || { echo "no sign-in page at /ui/"; exit 1; }

# 2. Log in as the bootstrap admin (its one-time password is printed and written to a file).
admin_password=$(cat otpd-data/initial-admin-password)
admin=$(post /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$admin_password\"}" | json '["token"]')

# 3. Create an account.
post /api/v1/accounts '{"username":"alice","password":"correct horse battery"}' -H "authorization: Bearer $admin" >/dev/null
alice=$(post /api/v1/auth/login '{"username":"alice","password":"correct horse battery"}' | json '["token"]')

# 4. Enroll: a pending secret and its otpauth:// URI (scan it, or compute codes from it).
secret=$(post /api/v1/accounts/alice/totp/enroll '{}' -H "authorization: Bearer $alice" | json '["secret"]')

# 5. Confirm with a code computed by oathtool: the authenticator becomes active and the
#    recovery codes are shown once.
code=$(oathtool --totp -b "$secret")
post /api/v1/accounts/alice/totp/confirm "{\"code\":\"$code\"}" -H "authorization: Bearer $alice" | json '["recovery_codes"][0]' >/dev/null

# 6. A service verifies codes with an API key of a `verifier` account: it may verify codes
#    for any account and do nothing else. The confirming step is already used, so take the
#    next step's code (inside the default window of ±1 step).
post /api/v1/accounts '{"username":"backend","roles":["verifier"]}' -H "authorization: Bearer $admin" >/dev/null
key=$(post /api/v1/api-keys '{"name":"backend","account":"backend"}' -H "authorization: Bearer $admin" | json '["key"]')
next=$(oathtool --totp -b -N "@$(( $(date +%s) + 30 ))" "$secret")
first=$(post /api/v1/accounts/alice/totp/verify "{\"code\":\"$next\"}" -H "authorization: Bearer $key")
echo "verify:        $first"
[ "$(echo "$first" | json '["valid"]')" = "True" ]

# 7. The same code again is a replay, refused.
again=$(post /api/v1/accounts/alice/totp/verify "{\"code\":\"$next\"}" -H "authorization: Bearer $key")
echo "verify again:  $again"
[ "$(echo "$again" | json '["reason"]')" = "replayed" ]

# 8. The verifier key can do nothing else: reading the account is refused.
status=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v1/accounts/alice" -H "authorization: Bearer $key")
[ "$status" = "403" ]

# 9. Logging in now asks for the second factor.
challenge=$(post /api/v1/auth/login '{"username":"alice","password":"correct horse battery"}' | json '["challenge"]')
[ -n "$challenge" ]
echo "quickstart: 1 passed, 0 failed"
