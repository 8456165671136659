#!/usr/bin/env python3
"""Steady traffic for scripts/demo.sh: requests to Envoy on one keep-alive connection, one
after the other, until the file STOP exists; then one line on stdout, e.g.
`sent 1843, failed 0 (blue 1700, green 143)`.

Usage: demo_load.py PORT STOP

It also stops when the directory of STOP is gone, and at most 30 s after it started.
A failed request is an answer other than 200 (Envoy's 503 "no_cluster" when a route names
a cluster it does not have yet) or a broken connection (then a new one is opened).
"""
import http.client
import os
import socket
import sys
import time


def main(argv):
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    port, stop = int(argv[0]), argv[1]
    sent = failed = 0
    served = {}
    conn = None
    deadline = time.monotonic() + 30
    while not os.path.exists(stop) and os.path.isdir(os.path.dirname(stop) or "."):
        if time.monotonic() > deadline:
            break
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # the request below fails and counts
        sent += 1
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace").strip()
        except (OSError, http.client.HTTPException):
            failed += 1
            conn.close()
            conn = None
            continue
        if resp.status == 200:
            served[body] = served.get(body, 0) + 1
        else:
            failed += 1
    split = ", ".join(f"{name} {n}" for name, n in sorted(served.items()))
    print(f"sent {sent}, failed {failed} ({split})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
