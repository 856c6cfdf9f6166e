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
source "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-32}
need wrk
need curl
[ -n "${BEFORE:-}" ] && [ -n "${AFTER:-}" ] || { echo "set BEFORE and AFTER to aerie binaries" >&2; exit 1; }

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
    local name=$1 bin=$2 port pid
    # The per-account limit at a real value: every login here is for a new account.
    start_server "$name" "$bin" AERIE_TRUSTED_PROXIES=127.0.0.1/32 AERIE_RATE_LIMIT_LOGIN_ACCOUNT=5/900
    port=$SERVER_PORT pid=$SERVER_PID
    local before after logins
    before=$(rss_kb "$pid")
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/huge.lua" "http://127.0.0.1:$port" >"$WORK/$name.wrk"
    after=$(rss_kb "$pid")
    logins=$(wrk_requests "$WORK/$name.wrk")
    stop_server "$pid"
    python3 -c "print(f'| $name | {$before/1024:.0f} | {$after/1024:.0f} | $logins | {($after-$before)*1024/max($logins,1):.0f} |')"
}

echo "| build | RSS before (MB) | RSS after (MB) | 60 KB-email logins sent | growth per login (bytes) |"
echo "|---|---|---|---|---|"
run before "$BEFORE"
run after "$AFTER"
