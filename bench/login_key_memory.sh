#!/usr/bin/env bash
# Memory held by login keys (issue 22.2): wrk sends failed logins whose email is 60 KB of
# text, each from its own X-Forwarded-For address (127.0.0.1 is a trusted proxy), for
# DURATION on CONNECTIONS connections, to each binary given (BEFORE, AFTER) on loopback.
# Prints the server's RSS before and after, the logins sent, and the growth per login: the
# limiter, trip and alert maps used to keep every such email as a key.
#
#   BEFORE=/path/to/main/aerie AFTER=/path/to/branch/aerie bench/login_key_memory.sh
#
# Needs wrk (apt-get install wrk), curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install wrk" >&2; exit 1; }
[ -n "${BEFORE:-}" ] && [ -n "${AFTER:-}" ] || { echo "set BEFORE and AFTER to aerie binaries" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

cat >"$WORK/huge.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local filler = string.rep("a", 60000)
local n = 0
request = function()
  n = n + 1
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  wrk.headers["X-Forwarded-For"] = ip
  local body = '{"user":{"email":"' .. filler .. n .. '@example.com","password":"not the password 1"}}'
  return wrk.format(nil, "/api/users/login", nil, body)
end
LUA

run() {
    local name=$1 bin=$2 port; port=$(free_port)
    mkdir -p "$WORK/$name"
    env -i PATH="$PATH" HOME="$WORK/$name" \
        AERIE_LISTEN="127.0.0.1:$port" AERIE_DATA_DIR="$WORK/$name" \
        AERIE_DATABASE_URL="sqlite://$WORK/$name/aerie.db?mode=rwc" AERIE_LOG=error \
        AERIE_TRUSTED_PROXIES=127.0.0.1/32 \
        AERIE_RATE_LIMIT_GLOBAL=1000000/1 AERIE_RATE_LIMIT_LOGIN_IP=1000000/1 \
        AERIE_RATE_LIMIT_LOGIN_ACCOUNT=5/900 \
        "$bin" serve >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 300); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    local before after logins
    kill -0 "$pid" 2>/dev/null || { echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
    before=$(rss_kb "$pid")
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/huge.lua" "http://127.0.0.1:$port" >"$WORK/$name.wrk"
    after=$(rss_kb "$pid")
    logins=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK/$name.wrk")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 -c "print(f'| $name | {$before/1024:.0f} | {$after/1024:.0f} | $logins | {($after-$before)*1024/max($logins,1):.0f} |')"
}

echo "| build | RSS before (MB) | RSS after (MB) | 60 KB-email logins sent | growth per login (bytes) |"
echo "|---|---|---|---|---|"
run before "$BEFORE"
run after "$AFTER"
