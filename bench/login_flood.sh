#!/usr/bin/env bash
# A login flood against one release server, on loopback only (issue 17 items 1-3):
#   ceiling  one core's argon2id verification time at the configured parameters
#            (examples/argon2_verify_time.rs, the server's own hasher), and cores / time:
#            the most logins per second this machine could do if hashing scaled with its
#            cores; and what one hashing thread per core does all at once ("all cores"),
#            the most it does. Both are measured just before and just after each server's
#            first flood and averaged, since this VM's speed drifts by 10-40 % in minutes
#   memory   the server's RSS idle, after a FLOOD of successful logins, and after a second
#            one (no growth wanted)
#   logins   logins/s during the first flood (each opens a session, mints a refresh token
#            and appends an audit record), beside both ceilings
#   cpu      where the first flood's CPU went, in ms per login: the hashing threads, the
#            server's other threads by kind, and wrk itself
#   reads    GET /api/user p50/p99 idle, then again during the second flood (in one run)
# For each binary given (BEFORE, AFTER; AFTER defaults to building this checkout). Every rate
# limit is set far above the load, and the script fails if any login or read was refused, so
# what is measured is work, not 429s.
#
#   bench/login_flood.sh
#   BEFORE=/path/to/main/aerie AFTER=/path/to/branch/aerie bench/login_flood.sh
#   FLOOD=30s READS=10s LOGIN_CONNECTIONS=8 READ_CONNECTIONS=4 ACCOUNTS=8 ...
#   BEFORE=$bin AFTER=$bin AFTER_HASHING=idle bench/login_flood.sh   # one binary, two policies
# BEFORE_HASHING / AFTER_HASHING (nice10, idle, split, batch, slice, workers-slice; default
# nice10): the scheduling of each server's hashing threads (bench/lib.sh hashing_policy), for
# priority experiments.
#
# Needs wrk (apt-get install wrk), curl and python3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

FLOOD=${FLOOD:-30s}
READS=${READS:-10s}
LOGIN_CONNECTIONS=${LOGIN_CONNECTIONS:-8}
READ_CONNECTIONS=${READ_CONNECTIONS:-4}
ACCOUNTS=${ACCOUNTS:-8}
VERIFICATIONS=${VERIFICATIONS:-40}
need wrk
need curl
AFTER=${AFTER:-$(release_binary)}

CORES=$(nproc)
cargo build --release --locked --example argon2_verify_time >&2
VERIFY_TIME="${CARGO_TARGET_DIR:-target}/release/examples/argon2_verify_time"

# hashing_now: one thread's median verify time (ms), then all cores' verifications per second.
hashing_now() { echo "$("$VERIFY_TIME" "$VERIFICATIONS") $("$VERIFY_TIME" "$VERIFICATIONS" "$CORES")"; }

login_lua "$WORK/login.lua" "$ACCOUNTS"

run() {
    local name=$1 bin=$2 hashing=$3 port pid token
    start_server "$name" "$bin"
    port=$SERVER_PORT pid=$SERVER_PID
    hashing_policy "$pid" "$hashing"
    local label=$name
    [[ $hashing == nice10 ]] || label="$name, hashing $hashing"
    register_accounts "$port" "$ACCOUNTS"
    # The reader is not one of the flooded accounts: their logins end their oldest sessions.
    register "$port" reader >"$WORK/$name.reader.json"
    token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["user"]["token"])' "$WORK/$name.reader.json")
    local url="http://127.0.0.1:$port"
    local reads=(wrk -t1 -c"$READ_CONNECTIONS" -d"$READS" --latency -H "Authorization: Token $token" "$url/api/user")
    local idle_rss; idle_rss=$(rss_kb "$pid")
    "${reads[@]}" >"$WORK/$name.idle"
    local hashing_before; hashing_before=$(hashing_now)
    thread_cpu "$pid" >"$WORK/$name.cpu0"
    local TIMEFORMAT="wrk %U %S"
    { time wrk -t1 -c"$LOGIN_CONNECTIONS" -d"$FLOOD" -s "$WORK/login.lua" "$url" >"$WORK/$name.flood1"; } 2>"$WORK/$name.wrk_cpu"
    thread_cpu "$pid" >"$WORK/$name.cpu1"
    cpu_per_login "$label" "$WORK/$name" >>"$WORK/cpu_rows"
    local rss1; rss1=$(rss_kb "$pid")
    local hashing_after; hashing_after=$(hashing_now)
    wrk -t1 -c"$LOGIN_CONNECTIONS" -d"$FLOOD" -s "$WORK/login.lua" "$url" >"$WORK/$name.flood2" &
    local flood_pid=$!
    sleep 5
    "${reads[@]}" >"$WORK/$name.loaded"
    wait "$flood_pid"
    local rss2; rss2=$(rss_kb "$pid")
    stop_server "$pid"
    refused "$WORK/$name.idle" "$WORK/$name.flood1" "$WORK/$name.flood2" "$WORK/$name.loaded"
    python3 - "$label" "$idle_rss" "$rss1" "$rss2" "$(wrk_rate "$WORK/$name.flood1")" "$CORES" \
        "$(latency "$WORK/$name.idle" 50)" "$(latency "$WORK/$name.idle" 99)" \
        "$(latency "$WORK/$name.loaded" 50)" "$(latency "$WORK/$name.loaded" 99)" \
        "$(wrk_rate "$WORK/$name.idle")" "$(wrk_rate "$WORK/$name.loaded")" "$(wrk_rate "$WORK/$name.flood2")" \
        "$hashing_before" "$hashing_after" <<'PY' >>"$WORK/rows"
import sys
(name, idle_rss, rss1, rss2, logins, cores, p50i, p99i, p50f, p99f, rate_i, rate_f, logins2,
 before, after) = sys.argv[1:]
mb = lambda kb: f"{int(kb) / 1024:.0f}"
f = float
(verify_before, together_before), (verify_after, together_after) = (
    map(f, before.split()), map(f, after.split()))
verify = (verify_before + verify_after) / 2
ceiling = f(cores) * 1000 / verify
together = (together_before + together_after) / 2
print(f"| {name} | {mb(idle_rss)} | {mb(rss1)} | {mb(rss2)} | {f(rss2) / f(rss1):.2f} "
      f"| {f(logins):.1f} | {verify_before:.1f} / {verify_after:.1f} | {ceiling:.1f} "
      f"| {100 * f(logins) / ceiling:.0f}% | {together:.1f} | {100 * f(logins) / together:.0f}% "
      f"| {p50i} / {p99i} | {p50f} / {p99f} | {f(p99f) / f(p99i):.1f}x "
      f"| {f(rate_i):.0f} / {f(rate_f):.0f} | {f(logins2):.1f} |")
PY
}

# cpu_per_login LABEL PREFIX: where the CPU of flood 1 went, per login: each kind of server
# thread (from PREFIX.cpu0 and .cpu1) and wrk (PREFIX.wrk_cpu), in ms per login; and how often
# the server's Tokio workers and SQLite worker threads went to sleep to be woken, per login.
cpu_per_login() {
    python3 - "$1" "$2" "$(wrk_requests "$2.flood1")" <<'PY'
import sys
label, prefix, logins = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(path):
    return {kind: (float(s), int(w)) for kind, s, w in (line.split() for line in open(path))}
before, after = load(prefix + ".cpu0"), load(prefix + ".cpu1")
_, user, system = open(prefix + ".wrk_cpu").read().split()
used = {kind: s - before.get(kind, (0, 0))[0] for kind, (s, _) in after.items()}
woken = {kind: w - before.get(kind, (0, 0))[1] for kind, (_, w) in after.items()}
used["wrk"] = float(user) + float(system)
hashing = used.pop("aerie-argon2-", 0)
other = sum(used.values())
kinds = sorted((kind for kind in used if used[kind] > 0), key=lambda k: -used[k])
per = lambda seconds: f"{1000 * seconds / logins:.2f}"
sleeps = lambda kind: f"{woken.get(kind, 0) / logins:.1f}"
print(f"| {label} | {per(hashing)} | {per(other)} | "
      + ", ".join(f"{kind} {per(used[kind])}" for kind in kinds)
      + f" | {sleeps('tokio-rt-worker')} / {sleeps('sqlx-sqlite-wor')} |")
PY
}

[ -z "${BEFORE:-}" ] || run before "$BEFORE" "${BEFORE_HASHING:-nice10}"
run after "$AFTER" "${AFTER_HASHING:-nice10}"
echo "| build | RSS idle (MB) | RSS after flood 1 (MB) | RSS after flood 2 (MB) | flood 2 / flood 1 | logins/s | one verify before / after (ms) | ceiling | of ceiling | all cores hashing (verifies/s) | of all cores | GET /api/user p50 / p99 idle (ms) | p50 / p99 under flood (ms) | p99 flood / idle | reads/s idle / flood | logins/s with reads |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
cat "$WORK/rows"
echo
echo "CPU per login during flood 1 (ms): the hashing threads, and everything else on the machine's cores that the flood made (the server's other threads and wrk)"
echo
echo "| build | hashing | everything else | of which | voluntary context switches per login: Tokio workers / SQLite worker threads |"
echo "|---|---|---|---|---|"
cat "$WORK/cpu_rows"
