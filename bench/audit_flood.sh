#!/usr/bin/env bash
# Refresh latency under a failed-login flood (issue 22.6): every failed login appends an audit
# event, and so does every refresh; when appends serialise, refreshes queue behind the flood.
# For each binary given (BEFORE, AFTER), on loopback only: boots it on a fresh SQLite, signs
# one user up, and measures the p50 of PROBES sequential refreshes (each rotates the token,
# each waits for its own audit row) first idle, then while wrk sends failed logins for
# unknown accounts on CONNECTIONS connections for DURATION. Prints p50 idle, p50 under flood
# and their ratio per binary.
#
#   BEFORE=/path/to/main/aerie AFTER=/path/to/branch/aerie bench/audit_flood.sh
#   AFTER=/path/to/branch/aerie bench/audit_flood.sh       # one binary only
#   DURATION=20s CONNECTIONS=256 PROBES=40 ...
#
# Needs wrk (apt-get install wrk), curl and python3. Every limit is set far above what wrk
# sends, so the flood measures appends, not 429s.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-256}
PROBES=${PROBES:-40}
need wrk
need curl
[ -n "${AFTER:-}" ] || { echo "set AFTER (and BEFORE to compare) to aerie binaries" >&2; exit 1; }

cat >"$WORK/login.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = '{"user":{"email":"flood' .. n .. '@example.com","password":"not the password 1"}}'
  return wrk.format(nil, "/api/users/login", nil, body)
end
LUA

# Sequential refreshes, each with the token the previous one returned; prints the p50 in ms.
cat >"$WORK/probe.py" <<'PY'
import json, statistics, sys, time, urllib.request
port, probes, token_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
token = open(token_file).read().strip()
times = []
for _ in range(probes):
    body = json.dumps({"refreshToken": token}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/auth/refresh", body,
                                     {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as reply:
        token = json.load(reply)["user"]["refreshToken"]
    times.append((time.perf_counter() - started) * 1000)
open(token_file, "w").write(token)
print(f"{statistics.median(times):.1f}")
PY

run() {
    local name=$1 bin=$2 port pid
    start_server "$name" "$bin"
    port=$SERVER_PORT pid=$SERVER_PID
    register "$port" bench |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["refreshToken"])' >"$WORK/$name.token"
    local idle flood
    idle=$(python3 "$WORK/probe.py" "$port" "$PROBES" "$WORK/$name.token")
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/login.lua" "http://127.0.0.1:$port" >"$WORK/$name.wrk" &
    local wrk_pid=$!
    sleep 3
    flood=$(timeout 120 python3 "$WORK/probe.py" "$port" "$PROBES" "$WORK/$name.token")
    wait "$wrk_pid"
    local logins; logins=$(wrk_requests "$WORK/$name.wrk")
    stop_server "$pid"
    python3 -c "print(f'| $name | $idle | $flood | {float($flood)/float($idle):.1f}x | $logins |')"
}

echo "| build | refresh p50 idle (ms) | refresh p50 under flood (ms) | flood / idle | failed logins sent |"
echo "|---|---|---|---|---|"
[ -z "${BEFORE:-}" ] || run before "$BEFORE"
run after "$AFTER"
