#!/usr/bin/env bash
# bench/reads_beside_a_hog.sh: what any CPU-bound thread does to a read's p99 on this machine,
# for Aerie and for the bare server (examples/bare.rs), with no login at all (issue 17 item 3).
#
# Why: under a login flood Aerie's `GET /api/user` p99 rises 4-7x its idle p99, whatever the
# hashing threads' priority (nice 10, SCHED_IDLE, SCHED_BATCH, 0.1 ms slices: BENCHMARKS.md,
# login-flood section). This script asks whether that is Aerie's doing or the machine's: it
# reads with the same wrk load as bench/login_flood.sh (1 thread, READ_CONNECTIONS=4,
# READS=10s) while nothing else runs, then beside one CPU hog per core started outside the
# server, each mode in turn:
#   none           nothing beside the reads
#   argon2-nice10  examples/argon2_verify_time hashing on every core at nice 10: what Aerie's
#                  hashing pool does in a flood, minus the logins
#   argon2-idle    the same under SCHED_IDLE, which the kernel is meant to preempt at once
#   spin-idle      a shell busy loop per core under SCHED_IDLE: no memory traffic, no
#                  syscalls, the lowest priority Linux has
#   logins-nice10  a login flood (wrk, LOGIN_CONNECTIONS=8) against a second Aerie whose
#                  every thread runs at nice 10: the best any split of a login's work below
#                  the reads' priority (its hand-offs and writes as well as its hash) could do
# Both servers serve one SQLite database (the bare server takes Aerie's keys from its data
# folder), one at a time, ROUNDS times (default 2) in turn. Prints p50 and p99 per server,
# mode and round, and each p99 over the same server's `none` p99 of that round.
#
#   AERIE_BIN=target/release/aerie BARE_BIN=target/release/examples/bare \
#       bench/reads_beside_a_hog.sh
#
# Needs wrk, curl, jq and chrt (util-linux); builds what is not given (release mode).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need wrk
need curl
need jq
need chrt util-linux
ROUNDS=${ROUNDS:-2} READS=${READS:-10s} READ_CONNECTIONS=${READ_CONNECTIONS:-4}
MODES=(none argon2-nice10 argon2-idle spin-idle logins-nice10)
LOGIN_CONNECTIONS=${LOGIN_CONNECTIONS:-8}

if [[ -z ${AERIE_BIN:-} || -z ${BARE_BIN:-} ]]; then
    cargo build --release --locked --bin aerie --example bare >&2
fi
cargo build --release --locked --example argon2_verify_time >&2
target=${CARGO_TARGET_DIR:-target}/release
cp "${AERIE_BIN:-$target/aerie}" "$WORK/aerie.bin"
cp "${BARE_BIN:-$target/examples/bare}" "$WORK/bare.bin"
VERIFY_TIME="$target/examples/argon2_verify_time"
CORES=$(nproc)

# hog MODE: starts MODE's hog on every core in its own process group, HOG_PID; ended on exit.
HOG_PID=""
end_hog() {
    [[ -z $HOG_PID ]] || { kill -- -"$HOG_PID" 2>/dev/null || true; wait "$HOG_PID" 2>/dev/null || true; }
    HOG_PID=""
}
trap 'end_hog; bench_cleanup' EXIT
hog() {
    case $1 in
        argon2-nice10) setsid nice -n 10 "$VERIFY_TIME" 100000 "$CORES" >/dev/null & ;;
        argon2-idle) setsid chrt --idle 0 "$VERIFY_TIME" 100000 "$CORES" >/dev/null & ;;
        spin-idle) setsid chrt --idle 0 sh -c "for _ in \$(seq $CORES); do
            (while :; do :; done) & done; wait" >/dev/null & ;;
        logins-nice10) setsid wrk -t1 -c"$LOGIN_CONNECTIONS" -d1h -s "$WORK/login.lua" \
            "http://127.0.0.1:$FLOODED_PORT" >/dev/null & ;;
    esac
    HOG_PID=$!
}

# Aerie on its own SQLite file, with a reader whose token outlives the run; then the bare
# server beside it on the same file.
start_server aerie "$WORK/aerie.bin" AERIE_ACCESS_TOKEN_TTL_SECS=3600
AERIE_PORT=$SERVER_PORT AERIE_PID=$SERVER_PID
token=$(register "$AERIE_PORT" reader | jq -r .user.token)
start_bare bare "$WORK/bare.bin" "sqlite://$WORK/aerie/aerie.db" "$WORK/aerie"
BARE_PORT=$SERVER_PORT BARE_PID=$SERVER_PID
# The flooded server: a second Aerie, every thread at nice 10 (threads inherit it), on its own
# file, with the login-flood script's accounts.
printf '#!/bin/sh\nexec nice -n 10 %s "$@"\n' "$WORK/aerie.bin" >"$WORK/aerie-nice10"
chmod +x "$WORK/aerie-nice10"
start_server flooded "$WORK/aerie-nice10"
FLOODED_PORT=$SERVER_PORT FLOODED_PID=$SERVER_PID
register_accounts "$FLOODED_PORT" 8
login_lua "$WORK/login.lua" 8

: >"$WORK/rows"
for round in $(seq "$ROUNDS"); do
    for mode in "${MODES[@]}"; do
        [[ $mode == none ]] || { hog "$mode"; sleep 1; }
        for server in aerie bare; do
            port=AERIE_PORT; [[ $server == bare ]] && port=BARE_PORT
            out="$WORK/$server.$mode.$round"
            wrk -t1 -c"$READ_CONNECTIONS" -d"$READS" --latency \
                -H "Authorization: Token $token" "http://127.0.0.1:${!port}/api/user" >"$out"
            refused "$out"
            echo "$server $mode $round $(latency "$out" 50) $(latency "$out" 99)" >>"$WORK/rows"
        done
        end_hog # the whole group: the hog's threads, or the shell's busy loops
    done
done
stop_server "$AERIE_PID"
stop_server "$BARE_PID"
stop_server "$FLOODED_PID"

python3 - "$WORK/rows" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
idle = {(s, r): float(p99) for s, m, r, _, p99 in rows if m == "none"}
print("| server | beside the reads | round | GET /api/user p50 / p99 (ms) | p99 / p99 with nothing beside |")
print("|---|---|---|---|---|")
for server, mode, rnd, p50, p99 in sorted(rows, key=lambda r: (r[0], r[1] != "none", r[1], r[2])):
    print(f"| {server} | {mode} | {rnd} | {p50} / {p99} | {float(p99) / idle[server, rnd]:.1f}x |")
PY
