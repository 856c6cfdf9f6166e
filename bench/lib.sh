# Shared by the bench scripts (source it after `set -euo pipefail`): a scratch directory and
# every server started here removed and ended on exit, a free loopback port, a process's
# RSS, a private copy of the release binary, and a server booted on a fresh SQLite file.
# Everything listens on 127.0.0.1 only.

cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORK=$(mktemp -d)
PIDS=()
bench_cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap bench_cleanup EXIT

# need COMMAND [DEBIAN_PACKAGE]
need() {
    command -v "$1" >/dev/null || { echo "bench needs $1: apt-get install ${2:-$1}" >&2; exit 1; }
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# status_kb PID FIELD: one field of /proc/PID/status (VmRSS, RssAnon, RssFile...), in KiB.
status_kb() { awk -v field="$2:" '$1 == field {print $2}' "/proc/$1/status"; }

# rss_kb PID: resident memory now, in KiB.
rss_kb() { status_kb "$1" VmRSS; }

# thread_cpu PID: CPU seconds (user + system) and voluntary context switches (times it went
# to sleep waiting to be woken: a hand-off from or to another thread) each kind of thread of
# a process has had so far, one "kind seconds switches" line per kind; threads are grouped by
# name without their trailing number (aerie-argon2-0 and -1 are aerie-argon2-).
thread_cpu() {
    local task
    for task in /proc/"$1"/task/*; do
        echo "$(tr ' ' _ <"$task/comm" | sed 's/[0-9]*$//') $(cut -d' ' -f14,15 "$task/stat") $(status_kb "$1/task/${task##*/}" voluntary_ctxt_switches)"
    done 2>/dev/null | awk -v hz="$(getconf CLK_TCK)" '{cpu[$1] += ($2 + $3) / hz; sw[$1] += $4} END {for (k in cpu) print k, cpu[k], sw[k]}'
}

# process_cpu_seconds PID: CPU seconds (user + system) all of a process's threads have had so far.
process_cpu_seconds() {
    cut -d' ' -f14,15 "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{print ($1 + $2) / hz}'
}

# release_binary: builds this checkout's server in release mode and prints the path of a
# private copy (a shared CARGO_TARGET_DIR may be rebuilt from another checkout meanwhile).
release_binary() {
    cargo build --release --locked --bin aerie >&2
    cp "${CARGO_TARGET_DIR:-target}/release/aerie" "$WORK/aerie"
    echo "$WORK/aerie"
}

# start_server NAME BIN [VAR=VALUE...]: boots BIN on its own SQLite file with every rate limit
# and the per-address connection cap far above what a bench sends (later VAR=VALUE pairs
# override these), waits for START_POLL_PATH (default /healthz; polled every START_POLL_STEP
# seconds, default 0.1, for at most 30 s), and sets SERVER_PORT, SERVER_PID and
# SERVER_START_MS (milliseconds from launch to the first 2xx answer). Exits with the server's
# log if it does not come up.
start_server() {
    local name=$1 bin=$2 launched; shift 2
    SERVER_PORT=$(free_port)
    mkdir -p "$WORK/$name"
    launched=$(date +%s%N)
    env -i PATH="$PATH" HOME="$WORK/$name" \
        AERIE_LISTEN="127.0.0.1:$SERVER_PORT" AERIE_DATA_DIR="$WORK/$name" \
        AERIE_DATABASE_URL="sqlite://$WORK/$name/aerie.db?mode=rwc" AERIE_LOG=error \
        AERIE_RATE_LIMIT_GLOBAL=1000000/1 AERIE_RATE_LIMIT_LOGIN_IP=1000000/1 \
        AERIE_RATE_LIMIT_LOGIN_ACCOUNT=1000000/1 AERIE_RATE_LIMIT_REFRESH=1000000/1 \
        AERIE_RATE_LIMIT_REGISTER=1000000/1 AERIE_MAX_CONNECTIONS_PER_ADDRESS=4096 \
        "$@" "$bin" serve >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    await_server "$name" "$launched"
}

# await_server NAME LAUNCHED: waits (for at most 30 s from LAUNCHED, in date +%s%N) until
# SERVER_PORT answers START_POLL_PATH (default /healthz, polled every START_POLL_STEP seconds,
# default 0.1) with a 2xx, and sets SERVER_START_MS; exits with $WORK/NAME.log if SERVER_PID
# ends or the time runs out first.
await_server() {
    local name=$1 launched=$2
    local poll=${START_POLL_PATH:-/healthz} step=${START_POLL_STEP:-0.1}
    local deadline=$((launched + 30000000000))
    while (( $(date +%s%N) < deadline )); do
        if curl -fsS --max-time 1 "http://127.0.0.1:$SERVER_PORT$poll" >/dev/null 2>&1; then
            SERVER_START_MS=$(( ($(date +%s%N) - launched) / 1000000 ))
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep "$step"
    done
    echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1
}

# start_bare NAME BIN DATABASE_URL DATA_DIR: the bare server (examples/bare.rs) on an Aerie
# database, with the keys from that Aerie's data folder; waits for its /readyz and sets
# SERVER_PORT, SERVER_PID and SERVER_START_MS as start_server does (log: $WORK/NAME.log).
start_bare() {
    local name=$1 bin=$2 url=$3 data=$4 launched
    SERVER_PORT=$(free_port)
    launched=$(date +%s%N)
    env -i PATH="$PATH" BARE_LISTEN="127.0.0.1:$SERVER_PORT" BARE_DATABASE_URL="$url" \
        BARE_DATA_DIR="$data" "$bin" >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    START_POLL_PATH=/readyz await_server "$name" "$launched"
}

# stop_server PID
stop_server() { kill "$1"; wait "$1" 2>/dev/null || true; }

# register PORT USERNAME: signs a user up (password `correct horse battery staple 42`, email
# USERNAME@example.com) and prints the JSON reply.
register() {
    curl -fsS -H 'Content-Type: application/json' "http://127.0.0.1:$1/api/users" \
        -d "{\"user\":{\"username\":\"$2\",\"email\":\"$2@example.com\",\"password\":\"correct horse battery staple 42\"}}"
}

# post_article PORT TOKEN: posts a short Markdown article as TOKEN's user and prints its slug
# (what bench/reads_ab.sh and bench/instructions.sh read).
post_article() {
    curl -fsS -X POST -H 'Content-Type: application/json' -H "Authorization: Token $2" \
        -d '{"article":{"title":"Read side by side","description":"d","body":"# Heading\n\nSome *Markdown* text.","tagList":["rust","http"]}}' \
        "http://127.0.0.1:$1/api/articles" | jq -r .article.slug
}

# wrk_requests FILE: the request count of a wrk report.
wrk_requests() { sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$1"; }

# wrk_non2xx FILE: responses that were not 2xx or 3xx (0 when wrk printed none).
wrk_non2xx() { sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$1" | grep . || echo 0; }

# latency FILE PERCENT: a wrk --latency figure, in ms.
latency() {
    python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
value, unit = re.search(rf"^\s*{sys.argv[2]}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
print(f"{float(value) * {'us': 0.001, 'ms': 1, 's': 1000}[unit]:.2f}")
PY
}

# wrk_rate FILE: requests per second.
wrk_rate() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"; }

# refused FILE...: fails when a wrk run got anything but 2xx.
refused() {
    local file
    for file in "$@"; do
        [ "$(wrk_non2xx "$file")" = 0 ] || { echo "$file: refused responses:" >&2; cat "$file" >&2; exit 1; }
    done
}

# hashing_policy PID POLICY: how a running server's argon2 threads (aerie-argon2-N) are
# scheduled, for experiments with the hashing pool's priority (issue 17 item 3), not a server
# setting. With chrt (util-linux): `nice10`, as the server set them; `idle`, every one under
# SCHED_IDLE; `split`, every one but aerie-argon2-0 under SCHED_IDLE; `batch`, every one
# under SCHED_BATCH, nice 10 kept. With custom EEVDF slices (Linux 6.12+,
# bench/sched_slice.py): `slice`, the hashing threads at nice 10 with the shortest slice,
# 0.1 ms, so a waking worker waits at most that long for a core they hold; `workers-slice`,
# every other thread of the server at 0.1 ms instead.
hashing_policy() {
    local pid=$1 policy=$2 task tid hashing=() spare=() others=()
    case $policy in
        nice10) return 0 ;;
        idle | split | batch) need chrt util-linux ;;
        slice | workers-slice) ;;
        *) echo "hashing policy $policy: not nice10, idle, split, batch, slice or workers-slice" >&2; exit 1 ;;
    esac
    for task in /proc/"$pid"/task/*; do
        case $(cat "$task/comm" 2>/dev/null) in
            aerie-argon2-0) hashing+=("${task##*/}") ;;
            aerie-argon2-*) hashing+=("${task##*/}") spare+=("${task##*/}") ;;
            *) others+=("${task##*/}") ;;
        esac
    done
    local slicer; slicer="$(dirname "${BASH_SOURCE[0]}")/sched_slice.py"
    case $policy in
        idle) for tid in "${hashing[@]}"; do chrt --idle --pid 0 "$tid"; done ;;
        split) for tid in "${spare[@]}"; do chrt --idle --pid 0 "$tid"; done ;;
        batch) for tid in "${hashing[@]}"; do chrt --batch --pid 0 "$tid"; done ;;
        slice) python3 "$slicer" 10 100000 "${hashing[@]}" >&2 ;;
        workers-slice) python3 "$slicer" 0 100000 "${others[@]}" >&2 ;;
    esac
}

# register_accounts PORT COUNT: signs up bench0 .. bench(COUNT-1), the accounts login_lua uses.
register_accounts() {
    local i
    for i in $(seq 0 $(($2 - 1))); do register "$1" "bench$i" >/dev/null; done
}

# login_lua FILE ACCOUNTS: a wrk script logging in as bench0 .. bench(ACCOUNTS-1) in turn, with
# the password `register` gives them.
login_lua() {
    cat >"$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = '{"user":{"email":"bench' .. (n % $2) .. '@example.com","password":"correct horse battery staple 42"}}'
  return wrk.format(nil, "/api/users/login", nil, body)
end
LUA
}
