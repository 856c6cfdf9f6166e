#!/usr/bin/env bash
# bench/instructions.sh NAME=BINARY [NAME=BINARY...]: user-space instructions per read, counted
# by valgrind's callgrind (apt-get install valgrind), for each server binary on one route.
#
# Why: on a shared VM the read rate of one build swings by up to 30 % between rounds
# (BENCHMARKS.md), so a change worth 5-15 % of a read's CPU cannot be shown by wrk. An
# instruction count does not swing (repeated runs agree within 1 %). It leaves out the kernel
# (socket and futex work, about half a read's CPU, much the same in every build) and the
# cost of cache misses, so it measures the program's own work, not a rate.
#
# Each binary serves the same SQLite database (seeded once through the first binary: one user,
# one article) twice under callgrind: SHORT (200) and LONG (1,200) sequential reads on one
# keep-alive connection. (LONG - SHORT) / (LONG - SHORT reads) is the cost of one read, with
# start-up, shutdown and the sign-up cancelled out (quanta's clock calibration, whose length
# varies, is taken out of each run). ROUTE: `article` (default; anonymous
# `GET /api/articles/{slug}`) or `user` (`GET /api/user` with a token from that server).
# BARE=path/to/bare adds the bare server (examples/bare.rs) on the same database, article
# route only. KEEP=dir keeps the callgrind files there, to read with callgrind_annotate
# (the LONG run's file less the SHORT one's is where a read's instructions go). About a minute
# per binary.
#
#   bench/instructions.sh before=/tmp/aerie-old after=target/release/aerie
#   BARE=target/release/examples/bare bench/instructions.sh aerie=target/release/aerie
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need valgrind
need curl
need jq
ROUTE=${ROUTE:-article} SHORT=${SHORT:-200} LONG=${LONG:-1200}
[[ $ROUTE == user || $ROUTE == article ]] || { echo "ROUTE is user or article, not $ROUTE" >&2; exit 2; }
[[ -z ${BARE:-} || $ROUTE == article ]] || { echo "BARE serves the article route only here" >&2; exit 2; }
[[ $# -ge 1 ]] || { echo "usage: $0 NAME=BINARY [NAME=BINARY...]" >&2; exit 2; }

# The shared database, through the first binary.
start_server seed "${1#*=}"
token=$(register "$SERVER_PORT" alice | jq -r .user.token)
slug=$(post_article "$SERVER_PORT" "$token")
stop_server "$SERVER_PID"
DATA="$WORK/seed"

# count NAME KIND BINARY READS: the program's instructions over a whole run of READS reads.
count() {
    local name=$1 kind=$2 bin=$3 reads=$4 port out pid i path=/api/articles/$slug auth=""
    port=$(free_port)
    out="$WORK/callgrind.$name.$reads"
    if [[ $kind == aerie ]]; then
        env -i PATH="$PATH" HOME="$DATA" AERIE_LISTEN="127.0.0.1:$port" AERIE_DATA_DIR="$DATA" \
            AERIE_DATABASE_URL="sqlite://$DATA/aerie.db?mode=rwc" AERIE_LOG=error \
            AERIE_RATE_LIMIT_GLOBAL=1000000/1 AERIE_RATE_LIMIT_REGISTER=1000000/1 \
            valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve >"$WORK/$name.log" 2>&1 &
    else
        env -i PATH="$PATH" BARE_LISTEN="127.0.0.1:$port" BARE_DATABASE_URL="sqlite://$DATA/aerie.db" \
            BARE_DATA_DIR="$DATA" valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" \
            >"$WORK/$name.log" 2>&1 &
    fi
    pid=$!
    PIDS+=("$pid")
    for i in $(seq 600); do
        curl -fsS --max-time 1 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || { echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    if [[ $ROUTE == user ]]; then
        # A token names the server that issued it, so each run signs its own user up.
        path=/api/user
        auth=$(register "$port" "reader$name$reads" | jq -r .user.token)
    fi
    python3 - "$port" "$path" "$reads" "$auth" <<'PY'
import http.client, sys
port, path, reads, token = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
headers = {"Authorization": "Token " + token} if token else {}
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(reads):
    connection.request("GET", path, headers=headers)
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"{path} answered {answer.status}")
PY
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    [[ -z ${KEEP:-} ]] || { mkdir -p "$KEEP" && cp "$out" "$KEEP/"; }
    local total calibration
    total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$out")
    # quanta (a metrics dependency) calibrates its clock once, at start, for as long as the
    # clock takes to settle: 7-16 million instructions that vary from run to run, up to
    # 7,000 per read of noise over 1,000 reads. Left out; it is not a read's work. In a build
    # with fat LTO the calibration is inlined into the `OnceCell` that holds the clock, so
    # that is what is left out there (with the other one-time cells, the same in both runs).
    calibration=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
        awk '/quanta::Calibration::calibrate |once_cell::imp::OnceCell<T>::initialize \[/{gsub(",", "", $1); print $1; exit}')
    echo $((total - ${calibration:-0}))
}

measure() {
    local name=$1 kind=$2 bin=$3 short long
    short=$(count "$name" "$kind" "$bin" "$SHORT")
    long=$(count "$name" "$kind" "$bin" "$LONG")
    printf '%-12s %8d instructions per read (%s)\n' "$name" $(((long - short) / (LONG - SHORT))) "$ROUTE"
}

for spec in "$@"; do
    measure "${spec%%=*}" aerie "${spec#*=}"
done
[[ -z ${BARE:-} ]] || measure bare bare "$BARE"
