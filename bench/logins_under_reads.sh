#!/usr/bin/env bash
# Logins while a read flood keeps the cores busy (issue 17 item 3's other side): does the
# hashing threads' priority let cheap reads starve logins? One release server per hashing
# policy (bench/lib.sh hashing_policy: nice10, the server as it is; idle; split; batch;
# slice; workers-slice), each on a fresh SQLite file with ACCOUNTS accounts and a reader:
# wrk floods GET /api/user with READ_CONNECTIONS for DURATION, and from its third second
# LOGIN_CONNECTIONS log in for DURATION minus 5 s. Prints reads/s, logins/s and login
# p50/p99 per policy. Loopback only; every rate limit is far above the load and any refused
# request fails the run.
#
#   bench/logins_under_reads.sh
#   AERIE_BIN=/path/aerie POLICIES="nice10 slice" bench/logins_under_reads.sh
#
# Needs wrk (apt-get install wrk), curl, python3, and chrt (util-linux) for idle, split and
# batch.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

POLICIES=${POLICIES:-"nice10 idle split batch slice workers-slice"}
DURATION=${DURATION:-20}
READ_CONNECTIONS=${READ_CONNECTIONS:-64}
LOGIN_CONNECTIONS=${LOGIN_CONNECTIONS:-8}
ACCOUNTS=${ACCOUNTS:-8}
need wrk
need curl
need python3
(( DURATION > 5 )) || { echo "DURATION (seconds) must be more than 5" >&2; exit 1; }
BIN=${AERIE_BIN:-$(release_binary)}

login_lua "$WORK/login.lua" "$ACCOUNTS"

echo "| hashing threads | reads/s | logins/s | login p50 (ms) | login p99 (ms) |"
echo "|---|---|---|---|---|"
for policy in $POLICIES; do
    start_server "$policy" "$BIN"
    hashing_policy "$SERVER_PID" "$policy"
    url="http://127.0.0.1:$SERVER_PORT"
    register_accounts "$SERVER_PORT" "$ACCOUNTS"
    token=$(register "$SERVER_PORT" reader | python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["token"])')
    wrk -t2 -c"$READ_CONNECTIONS" -d"${DURATION}s" -H "Authorization: Token $token" "$url/api/user" \
        >"$WORK/$policy.reads" &
    reads_pid=$!
    sleep 3
    wrk -t1 -c"$LOGIN_CONNECTIONS" -d"$((DURATION - 5))s" --latency -s "$WORK/login.lua" "$url" \
        >"$WORK/$policy.logins"
    wait "$reads_pid"
    refused "$WORK/$policy.reads" "$WORK/$policy.logins"
    echo "| $policy | $(wrk_rate "$WORK/$policy.reads") | $(wrk_rate "$WORK/$policy.logins") | $(latency "$WORK/$policy.logins" 50) | $(latency "$WORK/$policy.logins" 99) |"
    stop_server "$SERVER_PID"
done
