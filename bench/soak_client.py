#!/usr/bin/env python3
"""The load and the sampler of bench/soak (read its header first). Standard library only.

Worker threads each own one account and its session; a pacer thread hands out work at the
target rate (open loop: a request that cannot start on time is counted as late, never
dropped). Every request goes to the next instance in turn. A sampler thread records RSS, open
file descriptors and database connections every --interval seconds. Exit status: 0 when every
check passes, 1 otherwise.
"""

import argparse
import http.client
import itertools
import json
import math
import os
import queue
import random
import subprocess
import sys
import threading
import time

PASSWORD = "correct horse battery staple 42"
EXPECTED = {
    "register": {201},
    "setup-article": {201},
    "list": {200},
    "user": {200},
    "article": {201},
    "comment": {200},
    "refresh": {200},
    "logout": {204},
    "revoked": {401},
    "login": {200},
}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {}  # kind -> [seconds]
        self.codes = {}  # (kind, code) -> n
        self.unexpected = []  # first few unexpected answers, for the report
        self.late = 0

    def record(self, kind, code, seconds, body=b""):
        with self.lock:
            self.latency.setdefault(kind, []).append(seconds)
            self.codes[(kind, code)] = self.codes.get((kind, code), 0) + 1
            if code not in EXPECTED[kind] and len(self.unexpected) < 20:
                self.unexpected.append((kind, code, body[:300]))


class Client:
    """Keep-alive connections to every instance; each request goes to the next one in turn."""

    rr = itertools.count()

    def __init__(self, instances, stats):
        self.instances = instances
        self.stats = stats
        self.conns = [None] * len(instances)

    def request(self, kind, method, path, body=None, token=None, instance=None):
        i = next(Client.rr) % len(self.instances) if instance is None else instance
        headers = {"Accept": "application/json", "User-Agent": "aerie-soak"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Token " + token
        start = time.monotonic()
        for attempt in (0, 1):
            conn = self.conns[i]
            if conn is None:
                host, port = self.instances[i].rsplit(":", 1)
                conn = self.conns[i] = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                conn.request(method, path, body=data, headers=headers)
                reply = conn.getresponse()
                payload = reply.read()
                code = reply.status
                if reply.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self.conns[i] = None
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A keep-alive connection the server closed between requests: retry once on a
                # new one (what any HTTP client does); a second failure is an error.
                conn.close()
                self.conns[i] = None
                if attempt == 1:
                    code, payload = "error", repr(e).encode()
            except OSError as e:
                conn.close()
                self.conns[i] = None
                code, payload = "error", repr(e).encode()
                break
        self.stats.record(kind, code, time.monotonic() - start, payload)
        try:
            parsed = json.loads(payload) if payload and code != "error" else None
        except ValueError:
            parsed = None
        return code, parsed, i


class Worker:
    def __init__(self, n, client):
        self.n = n
        self.client = client
        self.name = f"soak{n}"
        self.email = f"soak{n}@example.com"
        self.token = None
        self.refresh_token = None
        self.slug = None
        self.articles = 0

    def take(self, user):
        self.token = user["token"]
        self.refresh_token = user["refreshToken"]

    def setup(self):
        code, body, _ = self.client.request(
            "register", "POST", "/api/users",
            {"user": {"username": self.name, "email": self.email, "password": PASSWORD}})
        if code != 201:
            raise SystemExit(f"register {self.name}: {code} {body}")
        self.take(body["user"])
        self.slug = self.post_article("setup-article")
        if self.slug is None:
            raise SystemExit(f"first article of {self.name} failed")

    def post_article(self, kind):
        self.articles += 1
        code, body, _ = self.client.request(
            kind, "POST", "/api/articles",
            {"article": {"title": f"Soak {self.n} {self.articles} {random.getrandbits(32)}",
                         "description": "a soak article",
                         "body": "Some *Markdown* with a [link](https://example.com).\n\n- one\n- two\n",
                         "tagList": ["soak", f"w{self.n % 8}"]}},
            token=self.token)
        return body["article"]["slug"] if code == 201 and body else None

    def login(self):
        code, body, _ = self.client.request(
            "login", "POST", "/api/users/login",
            {"user": {"email": self.email, "password": PASSWORD}})
        if code == 200 and body:
            self.take(body["user"])

    def do(self, kind):
        if self.token is None:  # a failed login earlier: try again first
            self.login()
            if self.token is None:
                return
        if kind == "list":
            self.client.request("list", "GET", "/api/articles?limit=20")
        elif kind == "user":
            self.client.request("user", "GET", "/api/user", token=self.token)
        elif kind == "article":
            self.post_article("article")
        elif kind == "comment":
            self.client.request(
                "comment", "POST", f"/api/articles/{self.slug}/comments",
                {"comment": {"body": f"A soak comment, {random.getrandbits(32)}."}},
                token=self.token)
        elif kind == "refresh":
            code, body, _ = self.client.request(
                "refresh", "POST", "/api/auth/refresh", {"refreshToken": self.refresh_token})
            if code == 200 and body:
                self.take(body["user"])
        elif kind == "relogin":
            old = self.token
            code, _, where = self.client.request(
                "logout", "POST", "/api/auth/logout", {}, token=old)
            self.token = self.refresh_token = None
            if code == 204:
                self.client.request("revoked", "GET", "/api/user", token=old, instance=where)
            self.login()


def pacer(deadline, rate, login_rate, mix, workers_queue, stats, stop):
    """Hands out work at `rate` requests per second in total: `login_rate` relogin cycles
    (3 requests each) and the rest by the weights of `mix`."""
    other = max(rate - 3 * login_rate, 0.0)
    kinds = [k for k, _ in mix]
    weights = [w for _, w in mix]
    # Events per second: relogin cycles plus single requests.
    events = login_rate + other
    if events <= 0:
        return
    p_relogin = login_rate / events
    step = 1.0 / events
    t = time.monotonic()
    while not stop.is_set() and t < deadline:
        now = time.monotonic()
        if t > now:
            time.sleep(t - now)
        elif now - t > 1.0:
            with stats.lock:
                stats.late += 1
        kind = "relogin" if random.random() < p_relogin else random.choices(kinds, weights)[0]
        workers_queue.put(kind)
        t += step


def worker_loop(worker, work, stop):
    while not stop.is_set():
        try:
            kind = work.get(timeout=0.2)
        except queue.Empty:
            continue
        worker.do(kind)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def db_connections(psql_url, database):
    out = subprocess.run(
        ["psql", "-Atq", psql_url, "-c",
         f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'"],
        capture_output=True, text=True, timeout=10)
    return int(out.stdout.strip() or -1)


def sampler(args, pids, samples, stop, start):
    while True:
        t = time.monotonic() - start
        row = {"t": t, "db": db_connections(args.psql_url, args.database)}
        for i, pid in enumerate(pids):
            try:
                row[f"rss{i}"] = rss_kb(pid)
                row[f"fd{i}"] = len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                row[f"rss{i}"] = row[f"fd{i}"] = 0
        samples.append(row)
        print(f"  t={t:6.1f}s  " + "  ".join(
            f"inst{i}: rss {row[f'rss{i}'] / 1024:.1f} MiB fds {row[f'fd{i}']}"
            for i in range(len(pids))) + f"  db conns {row['db']}", file=sys.stderr, flush=True)
        if stop.wait(args.interval):
            return


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    # Nearest rank: the smallest value with at least p % of the values at or below it.
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", required=True)
    ap.add_argument("--pids", required=True)
    ap.add_argument("--psql-url", required=True)
    ap.add_argument("--database", required=True)
    ap.add_argument("--pool", type=int, default=10)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--rate", type=float, default=150)
    ap.add_argument("--login-rate", type=float, default=10)
    ap.add_argument("--mix", default="list=40,user=25,comment=15,article=10,refresh=10")
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--interval", type=float, default=10)
    ap.add_argument("--warmup-pct", type=float, default=20)
    ap.add_argument("--drift-pct", type=float, default=10)
    args = ap.parse_args()
    instances = args.instances.split(",")
    pids = [int(p) for p in args.pids.split(",")]
    mix = []
    for part in args.mix.split(","):
        k, w = part.split("=")
        if k not in ("list", "user", "comment", "article", "refresh"):
            raise SystemExit(f"MIX: unknown kind {k}")
        mix.append((k, float(w)))

    stats = Stats()
    workers = [Worker(n, Client(instances, stats)) for n in range(args.users)]
    for w in workers:
        w.setup()
    print(f"{len(workers)} accounts registered, one article each; soak for {args.duration:.0f} s "
          f"at {args.rate:g} req/s ({args.login_rate:g} relogins/s) across {len(instances)} instances",
          file=sys.stderr, flush=True)
    # The setup's requests are not part of the soak's figures.
    stats = Stats()
    for w in workers:
        w.client.stats = stats

    stop = threading.Event()
    work = queue.Queue()
    start = time.monotonic()
    deadline = start + args.duration
    samples = []
    threads = [threading.Thread(target=worker_loop, args=(w, work, stop), daemon=True) for w in workers]
    for t in threads:
        t.start()
    sampling = threading.Thread(target=sampler, args=(args, pids, samples, stop, start), daemon=True)
    sampling.start()
    pacer(deadline, args.rate, args.login_rate, mix, work, stats, stop)
    # Drain what is queued (bounded), then stop.
    drain_deadline = time.monotonic() + 30
    while not work.empty() and time.monotonic() < drain_deadline:
        time.sleep(0.1)
    left = work.qsize()
    stop.set()
    for t in threads:
        t.join(timeout=35)
    sampling.join(timeout=15)
    elapsed = time.monotonic() - start

    # ---- report
    failures = []
    total = sum(stats.codes.values())
    print(f"\n== soak: {elapsed:.0f} s, {total} requests, {total / elapsed:.1f} req/s achieved "
          f"(target {args.rate:g}); {stats.late} pacing slots started over 1 s late; "
          f"{left} queued at the end, not sent")
    kinds = ["list", "user", "article", "comment", "refresh", "logout", "revoked", "login"]
    print("\n| kind | requests | statuses | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    n5xx = n4xx_unexpected = nerror = 0
    for kind in kinds:
        lat = sorted(stats.latency.get(kind, []))
        codes = sorted((c, n) for (k, c), n in stats.codes.items() if k == kind)
        print(f"| {kind} | {len(lat)} | " + ", ".join(f"{c}: {n}" for c, n in codes)
              + f" | {percentile(lat, 50) * 1000:.1f} | {percentile(lat, 99) * 1000:.1f} |")
        for c, n in codes:
            if c == "error":
                nerror += n
            elif c >= 500:
                n5xx += n
            elif c not in EXPECTED[kind]:
                n4xx_unexpected += n  # any 4xx not intended (and an unexpected 2xx/3xx as well)
    all_codes = {}
    for (k, c), n in stats.codes.items():
        all_codes[c] = all_codes.get(c, 0) + n
    print("\nstatus codes: " + ", ".join(f"{c}: {n}" for c, n in sorted(all_codes.items(), key=str)))
    print(f"5xx: {n5xx}; connection errors/timeouts: {nerror}; unexpected client answers: {n4xx_unexpected}"
          f" (intended: 401 on the logged-out token, {stats.codes.get(('revoked', 401), 0)} times)")
    for kind, code, body in stats.unexpected:
        print(f"  unexpected: {kind} -> {code}: {body.decode(errors='replace')}")
    if n5xx:
        failures.append(f"{n5xx} responses 5xx")
    if nerror:
        failures.append(f"{nerror} connection errors or timeouts")
    if n4xx_unexpected:
        failures.append(f"{n4xx_unexpected} unexpected client answers")
    if left:
        failures.append(f"the client fell behind: {left} requests never sent")

    warm = args.duration * args.warmup_pct / 100
    after = [s for s in samples if s["t"] >= warm]
    print(f"\nwarm-up: the first {args.warmup_pct:g} % ({warm:.0f} s); {len(after)} samples after it, every {args.interval:g} s")
    if len(after) < 2:
        failures.append("fewer than two samples after warm-up: run longer")
    else:
        print("\n| instance | measure | first after warm-up | max | last | drift (last) | drift (peak) |")
        print("|---|---|---|---|---|---|---|")
        for i in range(len(pids)):
            for key, label, scale, unit in ((f"rss{i}", "RSS", 1 / 1024, " MiB"), (f"fd{i}", "open fds", 1, "")):
                first, peak, last = after[0][key], max(s[key] for s in after), after[-1][key]
                drift = (last - first) / first * 100 if first else float("inf")
                peak_drift = (peak - first) / first * 100 if first else float("inf")
                fmt = (lambda v: f"{v * scale:.1f}{unit}") if scale != 1 else (lambda v: f"{v}")
                print(f"| {'ab'[i] if i < 2 else i} | {label} | {fmt(first)} | {fmt(peak)} | {fmt(last)} "
                      f"| {drift:+.1f} % | {peak_drift:+.1f} % |")
                if abs(drift) > args.drift_pct:
                    failures.append(f"instance {i} {label} drifted {drift:+.1f} % after warm-up "
                                    f"(limit {args.drift_pct:g} %)")
        dbs = [s["db"] for s in after]
        print(f"\ndatabase connections after warm-up (both instances): min {min(dbs)}, max {max(dbs)} "
              f"(pools allow {2 * args.pool}); whole run: min {min(s['db'] for s in samples)}, "
              f"max {max(s['db'] for s in samples)}")
        if max(s["db"] for s in samples) > len(pids) * args.pool:
            failures.append("more database connections than the pools allow")
    if failures:
        print("\nFAIL: " + "; ".join(failures))
        return 1
    print("\nPASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
