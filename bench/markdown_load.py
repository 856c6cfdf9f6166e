"""The client side of bench/markdown.sh: one server, measured; prints one JSON object.

Arguments: name port pid samples probes loaders hostile_timeout. Standard library only.
"""
import http.client
import json
import statistics
import sys
import threading
import time

name, port, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
samples, probes, loaders, hostile_timeout = (int(v) for v in sys.argv[4:8])
errors = 0


def request(method, path, body=None, token=None, timeout=60.0):
    """Status, body bytes and milliseconds of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {}
    payload = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        payload = json.dumps(body)
    if token:
        headers["Authorization"] = f"Token {token}"
    start = time.perf_counter()
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, data, (time.perf_counter() - start) * 1000
    finally:
        conn.close()


def heavy_allowed_body():
    """Within every default limit: the same shape as the integration test's."""
    parts = [f"{'>' * d} quoted at depth {d}\n" for d in range(1, 33)]
    parts.append("\n" + "|col" * 64 + "|\n" + "|---" * 64 + "|\n")
    parts += [f"|{row}" * 64 + "|\n" for row in range(40)]
    parts.append("\n")
    parts += [f"{'  ' * d}- item *{d}* with [a link](https://example.com)\n" for d in range(16)]
    parts.append('\n```\nlet code = "<script>";\n```\n\n')
    body = "".join(parts)
    while len(body) < 40_000:
        body += "Plain **prose** with `code` and _emphasis_, repeated to weigh.\n\n"
    return body


status, data, _ = request("POST", "/api/users", {"user": {
    "username": "bench", "email": "bench@example.com",
    "password": "correct horse battery staple 42!"}})
assert status in (200, 201), (status, data[:200])
token = json.loads(data)["user"]["token"]

article = {"article": {"title": "Heavy", "description": "d", "body": heavy_allowed_body()}}
status, data, _ = request("POST", "/api/articles", article, token)
assert status == 201, (status, data[:200])
slug = json.loads(data)["article"]["slug"]

times, htmls, size = [], set(), 0
for _ in range(samples):
    status, data, ms = request("GET", f"/api/articles/{slug}")
    errors += status != 200
    times.append(ms)
    size = len(data)
    htmls.add(json.loads(data)["article"].get("bodyHtml", ""))


def probe_healthz():
    result = []
    for _ in range(probes):
        status, _, ms = request("GET", "/healthz")
        result.append(ms)
        time.sleep(0.05)
    return result


idle = probe_healthz()
stop = threading.Event()
loader_gets = [0]


def reader():
    global errors
    while not stop.is_set():
        try:
            status, _, _ = request("GET", f"/api/articles/{slug}")
            errors += status != 200
            loader_gets[0] += 1
        except OSError:
            errors += 1


threads = [threading.Thread(target=reader, daemon=True) for _ in range(loaders)]
for t in threads:
    t.start()
time.sleep(0.5)
loaded = probe_healthz()
stop.set()
for t in threads:
    t.join(timeout=hostile_timeout)

hostile = {"article": {"title": "Hostile", "description": "d", "body": ">" * 60_000}}
status, data, _ = request("POST", "/api/articles", hostile, token)
hostile_post, hostile_get, hostile_error = status, "not stored", ""
if status == 201:
    hostile_slug = json.loads(data)["article"]["slug"]
    try:
        get_status, get_data, ms = request(
            "GET", f"/api/articles/{hostile_slug}", timeout=hostile_timeout)
        hostile_get = f"{get_status} in {ms / 1000:.1f} s, {len(get_data) / 1e6:.1f} MB"
    except (TimeoutError, OSError):
        hostile_get = f"no answer within {hostile_timeout} s"
else:
    hostile_error = data.decode()

peak_kb = 0
with open(f"/proc/{pid}/status") as status_file:
    for line in status_file:
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])

print(json.dumps({
    "article_p50": statistics.median(times),
    "article_max": max(times),
    "article_bytes": size / 1000,
    "article_html_same": len(htmls) == 1,
    "healthz_idle_p50": statistics.median(idle),
    "healthz_loaded_p50": statistics.median(loaded),
    "healthz_loaded_max": max(loaded),
    "loader_gets": loader_gets[0],
    "hostile_post": hostile_post,
    "hostile_get": hostile_get,
    "hostile_error": hostile_error,
    "peak_rss_mb": peak_kb / 1024,
    "errors": errors,
}))
