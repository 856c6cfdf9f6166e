#!/usr/bin/env bash
# Idle memory of release servers side by side (issue 17 item 4's idle RSS): each binary given
# is started ROUNDS times, alternating, on a fresh SQLite file, and 2 s after it is ready its
# VmRSS is read with the two parts the kernel reports: RssAnon (what the process itself
# holds) and RssFile (pages of the binary and its libraries faulted in from the page cache).
# Prints the median of each per binary. Before each start the binary's pages are dropped from
# the page cache (posix_fadvise DONTNEED), so every start is a cold one, as after a boot or a
# deploy: how much of the binary a start maps depends on what of it the cache already holds
# (a binary just copied is all there, and measured 2 MB more RssFile than the same code
# after a few starts). Loopback only.
#
#   bench/idle_rss.sh                                  # this checkout's release build
#   BINARIES="/tmp/aerie-a /tmp/aerie-b" ROUNDS=5 bench/idle_rss.sh
#
# Needs curl and python3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
SETTLE=${SETTLE:-2}
need curl
BINARIES=${BINARIES:-$(release_binary)}

for round in $(seq "$ROUNDS"); do
    index=0
    for bin in $BINARIES; do
        index=$((index + 1))
        python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$bin"
        start_server "idle-$round-$index" "$bin"
        sleep "$SETTLE"
        echo "$bin $(status_kb "$SERVER_PID" VmRSS) $(status_kb "$SERVER_PID" RssAnon)" \
            "$(status_kb "$SERVER_PID" RssFile)" >>"$WORK/samples"
        stop_server "$SERVER_PID"
    done
done

python3 - "$WORK/samples" <<'PY'
import os, statistics, sys
from collections import defaultdict
samples = defaultdict(list)
for line in open(sys.argv[1]):
    binary, *kib = line.split()
    samples[binary].append([int(k) for k in kib])
print("| binary | size (MB) | VmRSS (MB) | RssAnon (MB) | RssFile (MB) | rounds |")
print("|---|---|---|---|---|---|")
for binary, rows in samples.items():
    medians = [statistics.median(column) / 1024 for column in zip(*rows)]
    size = os.path.getsize(binary) / 1e6
    print(f"| {binary} | {size:.1f} | " + " | ".join(f"{m:.1f}" for m in medians) + f" | {len(rows)} |")
PY
