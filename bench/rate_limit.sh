#!/usr/bin/env bash
# What a rate-limit check costs: boots the release server three ways, on loopback only --
#   none    every policy skipped (127.0.0.1 is in AERIE_RATE_LIMIT_ALLOWLIST)
#   memory  the global policy checked in process (governor)
#   redis   the global policy checked in Redis (one EVALSHA per request)
# -- and loads the same cheap route (GET /healthz, which passes the global limiter) with wrk,
# interleaved (none, memory, redis, none, ...) so drift in machine load hits all three alike.
# Prints p50/p99 latency and throughput per store (median of the rounds) and the ratios
# memory/none and redis/none, and fails if any request was refused (the limits are set far
# above what wrk can send, so a 429 would mean the measurement measured something else).
#
#   bench/rate_limit.sh                     # 3 rounds of 5 s per store
#   ROUNDS=5 DURATION=10s bench/rate_limit.sh
#
# Needs wrk (apt-get install wrk) and a Redis (AERIE_BENCH_REDIS_URL, default
# redis://127.0.0.1:6379; keys go under a per-run prefix and expire on their own).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-8}
THREADS=${THREADS:-1}
REDIS_URL=${AERIE_BENCH_REDIS_URL:-redis://127.0.0.1:6379}
ROUTE=/healthz

command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install wrk" >&2; exit 1; }
cargo build --release --locked --bin aerie >&2
WORK=$(mktemp -d)
# A private copy: a shared CARGO_TARGET_DIR may be rebuilt from another checkout meanwhile.
BIN="$WORK/aerie"
cp "${CARGO_TARGET_DIR:-target}/release/aerie" "$BIN"
grep -q aerie_rate_limit_store_errors_total "$BIN" || {
    echo "the built binary has no Redis store: was it built from another checkout?" >&2; exit 1; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A PORT
start() {
    local name=$1; shift
    local port; port=$(free_port)
    mkdir -p "$WORK/$name"
    env -i PATH="$PATH" HOME="$WORK/$name" \
        AERIE_LISTEN="127.0.0.1:$port" \
        AERIE_DATA_DIR="$WORK/$name" \
        AERIE_DATABASE_URL="sqlite://$WORK/$name/aerie.db?mode=rwc" \
        AERIE_LOG=error \
        AERIE_RATE_LIMIT_GLOBAL=1000000/1 \
        "$@" "$BIN" serve >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    PORT[$name]=$port
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port$ROUTE" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$name server did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1
}

start none env AERIE_RATE_LIMIT_ALLOWLIST=127.0.0.1/32
start memory env
start redis env AERIE_REDIS_URL="$REDIS_URL" AERIE_REDIS_PREFIX="aerie-bench-$$:" AERIE_REDIS_FAILURE=closed

evalsha_calls() {
    redis-cli -u "$REDIS_URL" info commandstats 2>/dev/null |
        sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\).*/\1/p' | grep . || echo 0
}
EVALSHA_BEFORE=$(evalsha_calls)

# Warm-up: connections, caches, the script in Redis' cache.
for name in none memory redis; do
    wrk -t1 -c2 -d1s "http://127.0.0.1:${PORT[$name]}$ROUTE" >/dev/null
done
for round in $(seq "$ROUNDS"); do
    for name in none memory redis; do
        echo "round $round: $name" >&2
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
            "http://127.0.0.1:${PORT[$name]}$ROUTE" >"$WORK/$name.$round.txt"
    done
done

if command -v redis-cli >/dev/null; then
    echo "Redis script calls during the run: $(( $(evalsha_calls) - EVALSHA_BEFORE ))"
fi
echo "machine: $(nproc) cores, $(uname -sr); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: $THREADS thread(s), $CONNECTIONS connections, $DURATION x $ROUNDS rounds per store, GET $ROUTE"
python3 - "$WORK" "$ROUNDS" <<'PY'
import re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
unit = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}
def micros(text):
    value, suffix = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * unit[suffix]
results, refused = {}, 0
for name in ("none", "memory", "redis"):
    p50s, p99s, rps = [], [], []
    for r in range(1, rounds + 1):
        out = open(f"{work}/{name}.{r}.txt").read()
        p50s.append(micros(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)))
        p99s.append(micros(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)))
        rps.append(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)))
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        refused += int(bad.group(1)) if bad else 0
        errors = re.search(r"Socket errors:.*", out)
        if errors:
            print(f"{name} round {r}: {errors.group(0)}")
    results[name] = (statistics.median(p50s), statistics.median(p99s), statistics.median(rps))
print()
print("| store | p50 (µs) | p99 (µs) | requests/s | p50 / none | p99 / none | throughput / none |")
print("|---|---|---|---|---|---|---|")
base = results["none"]
for name, (p50, p99, rps) in results.items():
    print(f"| {name} | {p50:.0f} | {p99:.0f} | {rps:.0f} | {p50/base[0]:.2f} | {p99/base[1]:.2f} | {rps/base[2]:.2f} |")
print()
print(f"non-2xx responses (429s included): {refused}")
sys.exit(1 if refused else 0)
PY
