#!/usr/bin/env bash
# bench/reads_ab.sh NAME=BINARY [NAME=BINARY...]: one read route on each server binary side by
# side in one run. Each boots on its own SQLite file (every defence on, rate limits raised by
# bench/lib.sh), or with ENGINE=postgres on its own scratch database on
# AERIE_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres, dropped on
# exit), and one user signs up. ROUTE picks what wrk reads:
#   user     (default) `GET /api/user` with the user's token;
#   article  `GET /api/articles/{slug}` anonymously, an article the user posted.
# wrk: THREADS (default 1) and CONNECTIONS (default 4), WARMUP (3s) then DURATION (8s)
# measured; the binaries take turns, two rounds, so drift on a busy machine hits each alike.
# Prints reads/s, p50 and p99 per binary and round, and the server's own CPU time per read
# (user + system, all its threads, over the measured run: steadier than reads/s, which also
# moves with wrk's share of the cores); fails on any non-2xx answer.
#
#   cp target/release/aerie /tmp/aerie-new; git stash; cargo build --release; ...
#   bench/reads_ab.sh before=/tmp/aerie-old after=/tmp/aerie-new
#   ROUTE=article THREADS=2 CONNECTIONS=32 bench/reads_ab.sh before=… after=…
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need wrk
need curl
need jq
ROUTE=${ROUTE:-user} THREADS=${THREADS:-1} CONNECTIONS=${CONNECTIONS:-4}
WARMUP=${WARMUP:-3s} DURATION=${DURATION:-8s}
[[ $ROUTE == user || $ROUTE == article ]] || { echo "ROUTE is user or article, not $ROUTE" >&2; exit 2; }
ENGINE=${ENGINE:-sqlite}
[[ $ENGINE == sqlite || $ENGINE == postgres ]] || { echo "ENGINE is sqlite or postgres, not $ENGINE" >&2; exit 2; }
PG_URL=${AERIE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DBS=()
drop_databases() {
    for db in "${PG_DBS[@]}"; do
        psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
# Servers end first (bench_cleanup), then their databases go.
trap 'bench_cleanup; drop_databases' EXIT
[[ $ENGINE == sqlite ]] || need psql postgresql-client
[[ $# -ge 1 ]] || { echo "usage: $0 NAME=BINARY [NAME=BINARY...]" >&2; exit 2; }
declare -A URL SERVER
for spec in "$@"; do
    name=${spec%%=*} bin=${spec#*=}
    cp "$bin" "$WORK/$name.bin"
    if [[ $ENGINE == postgres ]]; then
        db="aerie_reads_ab_$$_${#PG_DBS[@]}"
        psql -q "$PG_URL" -c "CREATE DATABASE $db" >/dev/null
        PG_DBS+=("$db")
        start_server "$name" "$WORK/$name.bin" AERIE_DATABASE_URL="${PG_URL%/*}/$db"
    else
        start_server "$name" "$WORK/$name.bin"
    fi
    SERVER[$name]=$SERVER_PID
    base="http://127.0.0.1:$SERVER_PORT"
    token=$(register "$SERVER_PORT" alice | jq -r .user.token)
    if [[ $ROUTE == user ]]; then
        URL[$name]="$base/api/user"
        echo "wrk.headers[\"Authorization\"] = \"Token $token\"" > "$WORK/$name.lua"
    else
        slug=$(post_article "$SERVER_PORT" "$token")
        URL[$name]="$base/api/articles/$slug"
        echo "-- an anonymous read: no headers" > "$WORK/$name.lua"
    fi
done
for round in 1 2; do
    for spec in "$@"; do
        name=${spec%%=*} url=${URL[${spec%%=*}]}
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$WORK/$name.lua" "$url" >/dev/null
        cpu_before=$(process_cpu_seconds "${SERVER[$name]}")
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/$name.lua" "$url" >"$WORK/$name.txt"
        cpu_after=$(process_cpu_seconds "${SERVER[$name]}")
        [[ $(wrk_non2xx "$WORK/$name.txt") == 0 ]] || { echo "$name answered errors" >&2; cat "$WORK/$name.txt" >&2; exit 1; }
        reads=$(awk '/requests in/ {print $1}' "$WORK/$name.txt")
        printf 'round %s  %-10s reads/s %8s  p50 %8s  p99 %8s  server CPU per read %6.1f us\n' "$round" "$name" \
            "$(sed -n 's/^Requests\/sec: *//p' "$WORK/$name.txt")" \
            "$(awk '/^ *50%/ {print $2}' "$WORK/$name.txt")" \
            "$(awk '/^ *99%/ {print $2}' "$WORK/$name.txt")" \
            "$(echo "$cpu_before $cpu_after $reads" | awk '{print ($2 - $1) * 1e6 / $3}')"
    done
done
