#!/usr/bin/env python3
"""Sends exactly N requests over C keep-alive connections (one thread each) and
prints the count of each status. For counting a process's cost per request
(instructions under callgrind, CPU ticks), where the number must be fixed and the
client's own speed does not matter.

    fixed-requests.py URL TOKEN N C [--post BODY]
"""
import http.client
import sys
import threading
import urllib.parse
from collections import Counter

url, token, total, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
body = sys.argv[6] if len(sys.argv) > 6 and sys.argv[5] == "--post" else None
parts = urllib.parse.urlsplit(url)
path = parts.path + ("?" + parts.query if parts.query else "")
statuses = Counter()
lock = threading.Lock()


def worker(n):
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    seen = Counter()
    for _ in range(n):
        conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        seen[response.status] += 1
    with lock:
        statuses.update(seen)


threads = [
    threading.Thread(target=worker, args=(total // conns + (1 if i < total % conns else 0),))
    for i in range(conns)
]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join(f"{status}x{count}" for status, count in sorted(statuses.items())))
