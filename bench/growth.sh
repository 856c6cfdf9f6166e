#!/usr/bin/env bash
# Reads as data grows (issue 20): the same list routes at 20 articles and again at N, on
# SQLite and PostgreSQL, measured from outside with wrk against the release build on
# loopback. Every defence stays on; the rate limits are raised (not skipped) so wrk is not
# refused. Prints, per engine and route, req/s and p99 at 20 and at N, and the ratios
# (target: req/s ratio >= 0.7 and p99 ratio <= 2).
#
# Seeding is direct SQL inside the database (recursive CTE / generate_series), not HTTP, so
# 100,000 articles take seconds: 40 users (registered over HTTP, for real tokens), each
# article 3 of 50 tags, favorited by 2 users, each user following 5 others. The migrations'
# triggers keep tag_counts, article_totals and the denormalized creation times as they would
# for articles written through the API. After each seeding: ANALYZE on SQLite, VACUUM ANALYZE on
# PostgreSQL (what autovacuum does after a bulk write: the triggers leave dead versions of the
# counter rows behind).
#
#   bench/growth.sh                          # N=100000, 4 s per route, both engines
#   N=20000 DURATION=2s ENGINES=sqlite bench/growth.sh
#   AERIE_BENCH_BIN=target/debug/aerie N=200 DURATION=1s bench/growth.sh   # try the script
#
# Needs wrk, curl, jq, sqlite3, psql; PostgreSQL at AERIE_BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres; a scratch database is created and dropped).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
DURATION=${DURATION:-4s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
ENGINES=${ENGINES:-"sqlite postgres"}
PG_URL=${AERIE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
USERS=40
BASE=20
MAX_OFFSET=10000
DEEP_OFFSET=$((MAX_OFFSET - 20))

for tool in wrk curl jq sqlite3 psql; do
    command -v "$tool" >/dev/null || { echo "bench needs $tool" >&2; exit 1; }
done
WORK=$(mktemp -d)
BIN="$WORK/aerie"
if [[ -n ${AERIE_BENCH_BIN:-} ]]; then
    cp "$AERIE_BENCH_BIN" "$BIN"   # an already built binary (for trying the script)
else
    cargo build --release --locked --bin aerie >&2
    cp "${CARGO_TARGET_DIR:-target}/release/aerie" "$BIN"
fi

SERVER_PID=""
PG_DB=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
    [[ -n "$PG_DB" ]] && psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# sql ENGINE TEXT: runs SQL on the bench database.
sql() {
    if [[ $1 == sqlite ]]; then sqlite3 "$WORK/sqlite/aerie.db" "$2" >/dev/null
    else psql -q -v ON_ERROR_STOP=1 "$DB_URL" -c "$2" >/dev/null; fi
}

start() {
    local engine=$1 port; port=$(free_port)
    mkdir -p "$WORK/$engine"
    if [[ $engine == sqlite ]]; then
        DB_URL="sqlite://$WORK/sqlite/aerie.db?mode=rwc"
    else
        PG_DB="aerie_growth_$$"
        psql -q "$PG_URL" -c "CREATE DATABASE $PG_DB" >/dev/null
        DB_URL="${PG_URL%/*}/$PG_DB"
    fi
    env -i PATH="$PATH" HOME="$WORK/$engine" \
        AERIE_LISTEN="127.0.0.1:$port" AERIE_DATA_DIR="$WORK/$engine" \
        AERIE_DATABASE_URL="$DB_URL" AERIE_LOG=error \
        AERIE_RATE_LIMIT_GLOBAL=1000000/1 AERIE_RATE_LIMIT_REGISTER=1000000/1 \
        AERIE_RATE_LIMIT_WRITES=1000000/1 AERIE_RATE_LIMIT_LOGIN_IP=1000000/1 \
        AERIE_RATE_LIMIT_LOGIN_ACCOUNT=1000000/1 \
        AERIE_MAX_LIST_OFFSET=$MAX_OFFSET \
        "$BIN" serve >"$WORK/$engine.log" 2>&1 &
    SERVER_PID=$!
    ADDR="http://127.0.0.1:$port"
    for _ in $(seq 100); do
        curl -fsS "$ADDR/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$engine server did not start:" >&2; cat "$WORK/$engine.log" >&2; exit 1
}

stop() {
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    if [[ -n "$PG_DB" ]]; then psql -q "$PG_URL" -c "DROP DATABASE $PG_DB" >/dev/null; PG_DB=""; fi
}

register_users() {
    for i in $(seq 1 $USERS); do
        local body="{\"user\":{\"username\":\"user$i\",\"email\":\"user$i@example.com\",\"password\":\"correct horse battery staple $i\"}}"
        local token
        token=$(curl -fsS -H 'content-type: application/json' -d "$body" "$ADDR/api/users" | jq -r .user.token)
        if [[ $i == 1 ]]; then TOKEN=$token; fi
    done
}

# seed ENGINE FROM TO: articles FROM..TO, one second apart, with tags and favorites.
seed() {
    local engine=$1 from=$2 to=$3 numbers
    if [[ $engine == sqlite ]]; then
        numbers="WITH RECURSIVE n(i) AS (SELECT $from UNION ALL SELECT i + 1 FROM n WHERE i < $to)"
    else
        numbers="WITH n(i) AS (SELECT generate_series($from, $to))"
    fi
    local first="(SELECT id FROM articles WHERE slug = 'seed-$from')"
    sql "$engine" "$numbers INSERT INTO articles (slug, title, description, body, body_html, author_id, created_at, updated_at)
        SELECT 'seed-' || i, 'Seed ' || i, 'About ' || i, 'Body ' || i, '<p>Body ' || i || '</p>',
               (SELECT id FROM users WHERE username_key = 'user' || (1 + i % $USERS)),
               1700000000000 + i * 1000, 1700000000000 + i * 1000 FROM n"
    sql "$engine" "INSERT INTO article_tags (article_id, tag)
        SELECT id, 'tag' || ((id + k) % 50) FROM articles, (SELECT 0 AS k UNION ALL SELECT 17 UNION ALL SELECT 33) ks
        WHERE id >= $first"
    sql "$engine" "INSERT INTO favorites (user_id, article_id)
        SELECT u.id, a.id FROM articles a, (SELECT 0 AS k UNION ALL SELECT 13) ks, users u
        WHERE a.id >= $first AND u.username_key = 'user' || (1 + (a.id + ks.k) % $USERS)"
    if [[ $engine == sqlite ]]; then sql "$engine" "ANALYZE"; else sql "$engine" "VACUUM ANALYZE"; fi
}

follow_users() {
    sql "$1" "INSERT INTO follows (follower_id, followee_id)
        SELECT f.id, e.id FROM users f, users e
        WHERE f.id <> e.id AND (e.id - f.id + $USERS) % $USERS BETWEEN 1 AND 5"
}

ROUTES=(
    "list|/api/articles?limit=20"
    "deep offset|/api/articles?limit=20&offset=$DEEP_OFFSET"
    "cursor|CURSOR"
    "tag|/api/articles?tag=tag7"
    "author|/api/articles?author=user7"
    "favorited|/api/articles?favorited=user7"
    "feed|/api/articles/feed"
    "tags|/api/tags"
)

declare -A RPS P99
# measure ENGINE SIZE
measure() {
    local engine=$1 size=$2
    # The cursor route resumes after the deep-offset page: as deep as offset may go.
    local cursor
    cursor=$(curl -fsS "$ADDR/api/articles?limit=20&offset=$((DEEP_OFFSET > size ? 0 : DEEP_OFFSET))" | jq -r '.nextCursor // empty')
    for entry in "${ROUTES[@]}"; do
        local name=${entry%%|*} path=${entry#*|} header=()
        [[ $path == CURSOR ]] && path="/api/articles?limit=20${cursor:+&after=$cursor}"
        [[ $name == feed ]] && header=(-H "Authorization: Token $TOKEN")
        local code
        code=$(curl -s -o /dev/null -w '%{http_code}' "${header[@]}" "$ADDR$path")
        [[ $code == 200 ]] || { echo "$engine $name $path: HTTP $code" >&2; exit 1; }
        wrk -t1 -c2 -d1s "${header[@]}" "$ADDR$path" >/dev/null
        local out
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${header[@]}" "$ADDR$path")
        if grep -q "Non-2xx" <<<"$out"; then echo "$engine $name: refused requests" >&2; echo "$out" >&2; exit 1; fi
        RPS[$engine,$size,$name]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        P99[$engine,$size,$name]=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
        echo "  $engine $size $name: ${RPS[$engine,$size,$name]} req/s, p99 ${P99[$engine,$size,$name]} ms" >&2
    done
}

for engine in $ENGINES; do
    echo "== $engine" >&2
    start "$engine"
    register_users
    follow_users "$engine"
    seed "$engine" 1 $BASE
    measure "$engine" $BASE
    SECONDS=0
    seed "$engine" $((BASE + 1)) "$N"
    echo "  seeded $N articles in ${SECONDS}s" >&2
    measure "$engine" "$N"
    stop
done

printf '\n| engine | route | req/s at %s | req/s at %s | ratio | p99 ms at %s | p99 ms at %s | ratio |\n' $BASE "$N" $BASE "$N"
printf '|---|---|---|---|---|---|---|---|\n'
for engine in $ENGINES; do
    for entry in "${ROUTES[@]}"; do
        name=${entry%%|*}
        r0=${RPS[$engine,$BASE,$name]} r1=${RPS[$engine,$N,$name]}
        p0=${P99[$engine,$BASE,$name]} p1=${P99[$engine,$N,$name]}
        awk -v e="$engine" -v n="$name" -v r0="$r0" -v r1="$r1" -v p0="$p0" -v p1="$p1" 'BEGIN {
            printf "| %s | %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n", e, n, r0, r1, r1 / r0, p0, p1, p1 / p0 }'
    done
done
