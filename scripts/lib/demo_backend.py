#!/usr/bin/env python3
"""A backend for scripts/demo.sh: answers every GET with its name.

Usage: demo_backend.py NAME PORT_FILE

Listens on 127.0.0.1 on a free port, writes that port to PORT_FILE (through a rename, so a
reader never sees a partial number) and serves until it is killed. It logs nothing.
"""
import http.server
import os
import sys


def handler(body):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # the head and the body go in two writes: without TCP_NODELAY the body waits for
        # the peer's delayed ACK (40 ms a request)
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def main(argv):
    if len(argv) != 2:
        print("usage: demo_backend.py NAME PORT_FILE", file=sys.stderr)
        return 2
    name, port_file = argv
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(name.encode() + b"\n"))
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
