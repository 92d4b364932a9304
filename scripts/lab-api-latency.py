#!/usr/bin/env python3
"""Times GETs against a running lab control API (`kmslab up`), one keep-alive connection.

    python3 scripts/lab-api-latency.py [ADDR] [N]

ADDR defaults to the lab address file of `kmslab up`; N [1000] requests per path. Prints
p50, p99 and max in milliseconds for `GET /api/v1/lab`, one machine's status, a page of 100
machines and the whole machine list (N/10 of those).
"""
import http.client
import os
import sys
import tempfile
import time


def lab_addr():
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        path = os.path.join(runtime, "kmslab", "lab.addr")
    else:
        path = os.path.join(tempfile.gettempdir(), "kmslab-" + os.environ.get("USER", "user"), "lab.addr")
    with open(path) as f:
        return f.read().strip()


def main():
    addr = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else lab_addr()
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    paths = [
        ("/api/v1/lab", n),
        ("/api/v1/lab/machines/machine-5000/status", n),
        ("/api/v1/lab/machines?offset=5000&limit=100", n),
        ("/api/v1/lab/machines", max(1, n // 10)),
    ]
    for path, count in paths:
        times = []
        size = 0
        for _ in range(count):
            t = time.perf_counter()
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            times.append((time.perf_counter() - t) * 1000)
            if r.status != 200:
                sys.exit(f"GET {path}: {r.status} {body[:200]!r}")
            size = len(body)
        times.sort()
        p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
        print(f"GET {path}: {count} requests, {size} bytes each: p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {times[-1]:.2f} ms")


if __name__ == "__main__":
    main()
