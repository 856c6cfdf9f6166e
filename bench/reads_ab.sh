#!/usr/bin/env bash
# bench/reads_ab.sh NAME=BINARY [NAME=BINARY...]: `GET /api/user` on each server binary side
# by side in one run. Each boots on its own SQLite file (every defence on, rate limits raised
# by bench/lib.sh), one user signs up, and wrk reads the account with its token: 4 connections,
# 3 s warm-up, then 8 s measured; the binaries take turns, two rounds, so drift on a busy
# machine hits each alike. Prints reads/s, p50 and p99 per binary and round.
#
#   cp target/release/aerie /tmp/aerie-new; git stash; cargo build --release; ...
#   bench/reads_ab.sh before=/tmp/aerie-old after=/tmp/aerie-new
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need wrk
need curl
[[ $# -ge 1 ]] || { echo "usage: $0 NAME=BINARY [NAME=BINARY...]" >&2; exit 2; }
declare -A PORT
for spec in "$@"; do
    name=${spec%%=*} bin=${spec#*=}
    cp "$bin" "$WORK/$name.bin"
    start_server "$name" "$WORK/$name.bin"
    PORT[$name]=$SERVER_PORT
    token=$(register "$SERVER_PORT" alice | python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["token"])')
    echo "wrk.headers[\"Authorization\"] = \"Token $token\"" > "$WORK/$name.lua"
done
for round in 1 2; do
    for spec in "$@"; do
        name=${spec%%=*} port=${PORT[${spec%%=*}]}
        url="http://127.0.0.1:$port/api/user"
        wrk -t1 -c4 -d3s -s "$WORK/$name.lua" "$url" >/dev/null
        wrk -t1 -c4 -d8s --latency -s "$WORK/$name.lua" "$url" >"$WORK/$name.txt"
        [[ $(wrk_non2xx "$WORK/$name.txt") == 0 ]] || { echo "$name answered errors" >&2; cat "$WORK/$name.txt" >&2; exit 1; }
        printf 'round %s  %-10s reads/s %8s  p50 %8s  p99 %8s\n' "$round" "$name" \
            "$(sed -n 's/^Requests\/sec: *//p' "$WORK/$name.txt")" \
            "$(awk '/^ *50%/ {print $2}' "$WORK/$name.txt")" \
            "$(awk '/^ *99%/ {print $2}' "$WORK/$name.txt")"
    done
done
