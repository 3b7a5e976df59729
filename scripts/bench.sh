#!/usr/bin/env bash
# The measurements of docs/performance.md, reproducible: `scripts/bench.sh sqlite` or
# `scripts/bench.sh postgres` (needs OTPD_BENCH_PG_URL: an empty database it may fill), or
# `scripts/bench.sh metrics` (throughput with metrics on against the same build with them off).
#
# Everything runs on this machine against loopback: release builds of otpd and otpd-bench,
# a fresh data directory (or database), accounts provisioned through the Service, then
# `otpd-bench load` with --repeat, whose median rows are what the documentation quotes.
# Results (JSON lines, one per run, and the chart) go to $OUT (default bench-results/).
# Not part of CI: it takes about ten minutes and wants the machine to itself.
set -euo pipefail

cd "$(dirname "$0")/.."
what=${1:-sqlite}
REPEAT=${REPEAT:-5}
REPEAT_ALL=$REPEAT
DURATION=${DURATION:-5}
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
B="${CARGO_TARGET_DIR:-target}/release"
cargo build --release --locked -p otpd -p otpd-bench
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# serve PORT [global args…] [-- serve args…]: starts otpd serve in the background and waits
# until it answers.
serve() {
    local port=$1
    shift
    local global=()
    while [[ $# -gt 0 && $1 != -- ]]; do
        global+=("$1")
        shift
    done
    [[ ${1:-} == -- ]] && shift
    "$B/otpd" "${global[@]}" serve --listen "127.0.0.1:$port" --rate-limits off "$@" >"$WORK/serve-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$WORK/serve-$port.log" >&2
    return 1
}

# load PORT PID JSON MODE [args…]
load() {
    local port=$1 pid=$2 json=$3
    shift 3
    "$B/otpd-bench" load --target "127.0.0.1:$port" --api-key "$KEY" --server-pid "$pid" \
        --duration "$DURATION" --repeat "$REPEAT" --json "$json" --mode "$@"
}

case "$what" in
sqlite)
    D="$WORK/data"
    serve 8470 --data-dir "$D"
    PID=${PIDS[-1]}
    KEY=$("$B/otpd" --data-dir "$D" apikey create --account admin --name bench | tail -1)

    # The database size alone: wrong codes (the same reads and a write of the same shape as
    # a valid code) with accounts that do not lock within the runs. Valid codes cannot be
    # used for this: 10,000 accounts yield only 10,000 fresh codes per 30 s step.
    echo "== 10,000 accounts"
    "$B/otpd-bench" --data-dir "$D" provision --accounts 10000 --batch 5000
    "$B/otpd" --data-dir "$D" policy set max_failures=1000 >/dev/null
    load 8470 "$PID" "$OUT/sqlite-10k.jsonl" healthz
    load 8470 "$PID" "$OUT/sqlite-10k.jsonl" wrong --accounts 10000

    echo "== 1,000,000 accounts"
    "$B/otpd-bench" --data-dir "$D" provision --first 10000 --accounts 990000 --batch 5000
    load 8470 "$PID" "$OUT/sqlite-1m.jsonl" healthz
    load 8470 "$PID" "$OUT/sqlite-1m.jsonl" wrong --accounts 1000000

    # The same comparison interleaved: a second server on a fresh 10,000-account database,
    # and the two measured in turn, so that both see the same machine (which drifts over
    # the minutes the provisioning takes).
    echo "== 10,000 against 1,000,000 accounts, interleaved"
    D10="$WORK/data-10k"
    serve 8471 --data-dir "$D10"
    PID10=${PIDS[-1]}
    KEY10=$("$B/otpd" --data-dir "$D10" apikey create --account admin --name bench | tail -1)
    "$B/otpd-bench" --data-dir "$D10" provision --accounts 10000 --batch 5000
    "$B/otpd" --data-dir "$D10" policy set max_failures=1000 >/dev/null
    rm -f "$OUT/sqlite-sizes-10k.jsonl" "$OUT/sqlite-sizes-1m.jsonl"
    for _ in $(seq "$REPEAT"); do
        KEY=$KEY10 REPEAT=1 load 8471 "$PID10" "$OUT/sqlite-sizes-10k.jsonl" wrong --accounts 10000
        REPEAT=1 load 8470 "$PID" "$OUT/sqlite-sizes-1m.jsonl" wrong --accounts 1000000
    done
    python3 - "$OUT/sqlite-sizes-10k.jsonl" "$OUT/sqlite-sizes-1m.jsonl" <<'EOF'
import json, statistics, sys
small, large = ([json.loads(l)["rps"] for l in open(p)] for p in sys.argv[1:])
a, b = statistics.median(small), statistics.median(large)
print(f"interleaved, wrong codes: 10,000 accounts {a:.0f} req/s, 1,000,000 accounts "
      f"{b:.0f} req/s: {100 * (a - b) / a:.1f} % slower ({len(small)} rounds)")
EOF

    # Valid codes before any wrong code under the default policy: by now the wrong-code
    # phases have left most accounts a few failures, which lock nothing while the limit is
    # 1,000 but would lock accounts at the first failure more under a limit of 10 — and a
    # valid code for a locked account is (rightly) refused. So every wrong-code run with
    # lockout on comes after the last valid-code run.
    echo "== 1,000,000 accounts, default policy (lockout after 10 failures)"
    "$B/otpd" --data-dir "$D" policy set max_failures=10 >/dev/null
    load 8470 "$PID" "$OUT/sqlite-1m-policy.jsonl" healthz
    load 8470 "$PID" "$OUT/sqlite-1m-policy.jsonl" valid --accounts 1000000

    echo "== against concurrency"
    REPEAT=3
    for mode in healthz valid wrong; do
        load 8470 "$PID" "$OUT/sqlite-sweep.jsonl" "$mode" --accounts 1000000 --concurrency 1,8,64
    done
    "$B/otpd-bench" chart --input "$OUT/sqlite-sweep.jsonl" --output "$OUT/sqlite-sweep.svg"

    echo "== 1,000,000 accounts, default policy, wrong codes (lockout after 10 failures)"
    REPEAT=$REPEAT_ALL
    load 8470 "$PID" "$OUT/sqlite-1m-policy.jsonl" wrong --accounts 1000000
    ;;
postgres)
    : "${OTPD_BENCH_PG_URL:?set OTPD_BENCH_PG_URL to a PostgreSQL database the bench may fill}"
    export OTPD_DATABASE_URL="$OTPD_BENCH_PG_URL"
    export OTPD_MASTER_KEY_FILE="$WORK/master.key"
    head -c 32 /dev/urandom | base64 >"$OTPD_MASTER_KEY_FILE"
    chmod 600 "$OTPD_MASTER_KEY_FILE"
    serve 8481 --data-dir "$WORK/one"
    P1=${PIDS[-1]}
    serve 8482 --data-dir "$WORK/two"
    P2=${PIDS[-1]}
    KEY=$("$B/otpd" --data-dir "$WORK/one" apikey create --account admin --name bench | tail -1)
    "$B/otpd-bench" --data-dir "$WORK/one" provision --accounts 200000 --batch 5000
    "$B/otpd" --data-dir "$WORK/one" policy set max_failures=1000 >/dev/null
    for mode in valid wrong; do
        rm -f "$OUT/pg-$mode-1.jsonl" "$OUT/pg-$mode-2.jsonl"
        # Two load generators at once, one per instance, on disjoint accounts.
        load 8481 "$P1" "$OUT/pg-$mode-1.jsonl" "$mode" --accounts 100000 --concurrency 32 &
        L1=$!
        load 8482 "$P2" "$OUT/pg-$mode-2.jsonl" "$mode" --accounts 100000 --first-account 100000 --concurrency 32 &
        L2=$!
        wait "$L1" "$L2"
        python3 - "$OUT/pg-$mode-1.jsonl" "$OUT/pg-$mode-2.jsonl" <<'EOF'
import json, statistics, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
sums = [x["rps"] + y["rps"] for x, y in zip(a, b)]
print(f"both instances, {a[0]['mode']}: median {statistics.median(sums):.0f} req/s "
      f"(range {min(sums):.0f}-{max(sums):.0f}, {len(sums)} runs)")
EOF
    done
    ;;
metrics)
    # Issue 20: the cost of metrics. Two servers of the same build on two fresh 10,000-account
    # databases, one with metrics on (the default) and one with `--metrics off`, measured in
    # turn (the order alternating), so that both see the same machine. Wrong codes: the same
    # reads and a write of the same shape as a valid code, and they never run out.
    declare -A PORT=([on]=8491 [off]=8492) SPID KEYS
    for side in on off; do
        serve "${PORT[$side]}" --data-dir "$WORK/metrics-$side" -- --metrics "$side"
        SPID[$side]=${PIDS[-1]}
        KEYS[$side]=$("$B/otpd" --data-dir "$WORK/metrics-$side" apikey create --account admin --name bench | tail -1)
        "$B/otpd-bench" --data-dir "$WORK/metrics-$side" provision --accounts 10000 --batch 5000
        "$B/otpd" --data-dir "$WORK/metrics-$side" policy set max_failures=1000 >/dev/null
        rm -f "$OUT/metrics-$side-wrong.jsonl" "$OUT/metrics-$side-healthz.jsonl"
    done
    for round in $(seq "$REPEAT"); do
        order=(on off)
        ((round % 2 == 0)) && order=(off on)
        for mode in wrong healthz; do
            for side in "${order[@]}"; do
                KEY=${KEYS[$side]} REPEAT=1 load "${PORT[$side]}" "${SPID[$side]}" \
                    "$OUT/metrics-$side-$mode.jsonl" "$mode" --accounts 10000
            done
        done
    done
    python3 - "$OUT" <<'EOF'
import json, statistics, sys
out = sys.argv[1]
for mode in ("wrong", "healthz"):
    on, off = ([json.loads(l)["rps"] for l in open(f"{out}/metrics-{side}-{mode}.jsonl")]
               for side in ("on", "off"))
    a, b = statistics.median(on), statistics.median(off)
    pairs = sorted(100 * (x - y) / y for x, y in zip(on, off))
    print(f"{mode}: metrics on {a:.0f} req/s, off {b:.0f} req/s: {100 * (a - b) / b:+.1f} % "
          f"(rounds: {', '.join(f'{p:+.1f}' for p in pairs)} %)")
EOF
    curl -fsS "http://127.0.0.1:${PORT[on]}/metrics" >"$OUT/metrics-sample.txt"
    ;;
*)
    echo "usage: $0 sqlite|postgres|metrics" >&2
    exit 2
    ;;
esac
