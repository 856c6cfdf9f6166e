#!/usr/bin/env bash
# What reading Markdown costs, before (main: rendered and sanitised on every GET, on an async
# worker) and after (rendered once when written, on the blocking pool, within limits; reads
# serve the stored HTML). Boots both release servers on loopback, one after the other, each
# with its own SQLite file and the rate limits skipped for 127.0.0.1, and measures:
#   article   GET /api/articles/{slug} of a heavy body the limits allow (quotes 32 deep, a
#             64-column table, nested lists, ~40 KB of prose): SAMPLES sequential GETs
#   healthz   GET /healthz, idle and while LOADERS clients GET that article in a loop
#   hostile   POST of ">" x 60,000 (the review's body); before: one GET of it (cut off at
#             HOSTILE_TIMEOUT seconds); after: the POST must be a 422
# and peak RSS (VmHWM) of each server. Prints the medians and the ratios before/after.
#
#   BEFORE_BIN=/path/to/aerie-built-from-main bench/markdown.sh
#   SAMPLES=40 PROBES=40 LOADERS=4 BEFORE_BIN=... bench/markdown.sh
#   AFTER_BIN=/path/to/aerie BEFORE_BIN=... bench/markdown.sh   # skip building this checkout
#
# BEFORE_BIN is a release binary built from main before this change, e.g.
#   git worktree add /tmp/aerie-main <main-commit> && (cd /tmp/aerie-main && cargo build --release --locked --bin aerie)
set -euo pipefail
cd "$(dirname "$0")/.."

SAMPLES=${SAMPLES:-20}
PROBES=${PROBES:-20}
LOADERS=${LOADERS:-2}
HOSTILE_TIMEOUT=${HOSTILE_TIMEOUT:-60}
[ -n "${BEFORE_BIN:-}" ] || { echo "set BEFORE_BIN to a release binary built from main" >&2; exit 1; }

if [ -z "${AFTER_BIN:-}" ]; then
    cargo build --release --locked --bin aerie >&2
    AFTER_BIN="${CARGO_TARGET_DIR:-target}/release/aerie"
fi
WORK=$(mktemp -d)
# Private copies: a shared CARGO_TARGET_DIR may be rebuilt from another checkout meanwhile.
cp "$BEFORE_BIN" "$WORK/before"
cp "$AFTER_BIN" "$WORK/after"
grep -q aerie_markdown_renders_total "$WORK/after" || {
    echo "the built binary does not store rendered HTML: was it built from another checkout?" >&2; exit 1; }
if grep -q aerie_markdown_renders_total "$WORK/before"; then
    echo "BEFORE_BIN already stores rendered HTML: build it from main before this change" >&2; exit 1
fi

PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "machine: $(nproc) cores, $(uname -sr); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "samples: $SAMPLES article GETs, $PROBES /healthz probes idle and under $LOADERS article readers"
for name in before after; do
    port=$(free_port)
    mkdir -p "$WORK/$name.d"
    env -i PATH="$PATH" HOME="$WORK/$name.d" \
        AERIE_LISTEN="127.0.0.1:$port" \
        AERIE_DATA_DIR="$WORK/$name.d" \
        AERIE_DATABASE_URL="sqlite://$WORK/$name.d/aerie.db?mode=rwc" \
        AERIE_LOG=error \
        AERIE_RATE_LIMIT_ALLOWLIST=127.0.0.1/32 \
        "$WORK/$name" serve >"$WORK/$name.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "measuring $name" >&2
    python3 bench/markdown_load.py "$name" "$port" "$PID" "$SAMPLES" "$PROBES" "$LOADERS" \
        "$HOSTILE_TIMEOUT" >"$WORK/$name.json"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
done

python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
b, a = (json.load(open(f"{work}/{n}.json")) for n in ("before", "after"))
def row(label, key, unit="ms", fmt="{:.1f}"):
    x, y = b[key], a[key]
    ratio = "n/a" if not y else f"{x / y:.1f}"
    print(f"| {label} | {fmt.format(x)} {unit} | {fmt.format(y)} {unit} | {ratio} |")
print()
print("| measure | before (main) | after | before / after |")
print("|---|---|---|---|")
row("article GET, p50", "article_p50")
row("article GET, max", "article_max")
row("article response size", "article_bytes", "KB", "{:.0f}")
row("/healthz idle, p50", "healthz_idle_p50")
row("/healthz under article readers, p50", "healthz_loaded_p50")
row("/healthz under article readers, max", "healthz_loaded_max")
row("article GETs completed while probing", "loader_gets", "", "{:.0f}")
row("peak RSS", "peak_rss_mb", "MB", "{:.0f}")
print()
print(f"hostile body before: POST {b['hostile_post']}, one GET {b['hostile_get']}")
print(f"hostile body after:  POST {a['hostile_post']} {a['hostile_error']}")
ok = a["hostile_post"] == 422 and a["article_html_same"] and a["errors"] == 0
print(f"after: stored HTML identical on every GET: {a['article_html_same']}; request errors: before {b['errors']}, after {a['errors']}")
sys.exit(0 if ok else 1)
PY
