#!/usr/bin/env python3
"""A tiny HTTP server for health-check tests and the failover demo.

Answers every GET with the next status of --status (a comma-separated list,
used in turn and repeated), and the server's --name in the body. Listens on
IPv4 and IPv6 (wildcard) on --port, or only on --bind. SIGUSR1 switches to
status 200, SIGUSR2 to 500, so a test can make a real fail and recover.
"""
import argparse
import http.server
import itertools
import os
import signal
import socket
import sys
import threading


def main():
    parser = argparse.ArgumentParser(prog="httpstatus.py", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--status", default="200", help="statuses answered in turn, e.g. 200,500 (default 200)")
    parser.add_argument("--name", default="httpstatus", help="the body of every answer")
    parser.add_argument("--bind", help="listen on this address only (default: every address, IPv4 and IPv6)")
    parser.add_argument("--pidfile", help="written once listening; removed on exit")
    args = parser.parse_args()

    lock = threading.Lock()
    state = {"statuses": itertools.cycle([int(s) for s in args.status.split(",")])}

    def switch(status):
        def handler(_signum, _frame):
            with lock:
                state["statuses"] = itertools.cycle([status])
        return handler

    # A parent may have blocked these (Foundation's Process does); the switches need them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM})
    signal.signal(signal.SIGUSR1, switch(200))
    signal.signal(signal.SIGUSR2, switch(500))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with lock:
                status = next(state["statuses"])
            body = (args.name + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if args.bind is None or ":" in args.bind else socket.AF_INET
        daemon_threads = True

        def server_bind(self):
            if self.address_family == socket.AF_INET6 and args.bind is None:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    server = Server((args.bind or "::", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.rename(args.pidfile + ".tmp", args.pidfile)
    try:
        server.serve_forever()
    finally:
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass


if __name__ == "__main__":
    main()
