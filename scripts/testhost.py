#!/usr/bin/env python3
"""Test hosts for Petrel's namespace topology (scripts/topology.sh).

  serve   runs inside a real: answers every TCP line and every UDP datagram with
          the real's name, from the address the client talked to (the VIP).
  client  runs inside the client: makes N TCP connections or N UDP exchanges
          (or holds N of them open for several rounds) and prints one JSON object
          saying which real answered each.

Python 3 standard library only. See scripts/README.md for examples.
"""

import argparse
import errno
import ipaddress
import json
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time
from collections import Counter, deque

# Linux values; Python's socket module does not export IP_PKTINFO.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
CMSG_SPACE = 64

IN_PROGRESS = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EAGAIN)


def raise_fd_limit():
    """Many connections at once need many descriptors: take the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def family_of(address):
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        raise SystemExit(f"testhost.py: --vip {address!r} is not an IPv4 or IPv6 address")
    return socket.AF_INET if version == 4 else socket.AF_INET6


# MARK: - serve


class Stop(Exception):
    """Raised from the SIGTERM/SIGINT handler to leave the event loop."""


class TcpPeer:
    """One accepted connection: every complete line received gets one reply line."""

    def __init__(self, sock):
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.closing = False


class Server:
    def __init__(self, name, tcp_ports, udp_ports):
        self.reply = (name + "\n").encode()
        self.selector = selectors.DefaultSelector()
        self.sockets = []
        for port in tcp_ports:
            for family in (socket.AF_INET, socket.AF_INET6):
                self.listen_tcp(family, port)
        for port in udp_ports:
            for family in (socket.AF_INET, socket.AF_INET6):
                self.listen_udp(family, port)

    @staticmethod
    def wildcard(family, port):
        return ("0.0.0.0", port) if family == socket.AF_INET else ("::", port)

    def new_socket(self, family, kind):
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.sockets.append(sock)
        return sock

    def listen_tcp(self, family, port):
        sock = self.new_socket(family, socket.SOCK_STREAM)
        sock.bind(self.wildcard(family, port))
        sock.listen(4096)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, (self.accept, None))

    def listen_udp(self, family, port):
        sock = self.new_socket(family, socket.SOCK_DGRAM)
        # With the datagram's destination in hand, the reply leaves from the VIP
        # even though the socket is bound to the wildcard address.
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        sock.bind(self.wildcard(family, port))
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, (self.answer_datagram, None))

    def accept(self, listener, _mask, _context):
        for _ in range(256):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. EMFILE: keep serving the others
                print(f"testhost.py serve: accept: {error}", file=sys.stderr)
                return
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, (self.on_peer, TcpPeer(sock)))

    def on_peer(self, sock, mask, peer):
        try:
            if mask & selectors.EVENT_READ:
                data = sock.recv(65536)
                if not data:
                    if peer.inbox:  # a last line without its newline still gets an answer
                        peer.outbox += self.reply
                        peer.inbox = b""
                    peer.closing = True
                else:
                    peer.inbox += data
                    lines = peer.inbox.count(b"\n")
                    if lines:
                        peer.outbox += self.reply * lines
                        peer.inbox = peer.inbox[peer.inbox.rindex(b"\n") + 1:]
            if peer.outbox:
                sent = sock.send(peer.outbox)
                peer.outbox = peer.outbox[sent:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.drop(sock)
            return
        if peer.closing and not peer.outbox:
            self.drop(sock)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.outbox else 0)
        if peer.closing:
            events = selectors.EVENT_WRITE
        self.selector.modify(sock, events, (self.on_peer, peer))

    def drop(self, sock):
        self.selector.unregister(sock)
        sock.close()

    def answer_datagram(self, sock, _mask, _context):
        for _ in range(256):
            try:
                data, ancillary, _flags, source = sock.recvmsg(65536, CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP errors queued on the socket: nothing to answer
                continue
            reply_ancillary = []
            for level, kind, payload in ancillary:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(payload) >= 12:
                    # struct in_pktinfo { ifindex; spec_dst; addr }: answer from addr.
                    destination = payload[8:12]
                    reply = struct.pack("i4s4s", 0, destination, b"\0" * 4)
                    reply_ancillary = [(socket.IPPROTO_IP, IP_PKTINFO, reply)]
                elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(payload) >= 20:
                    # struct in6_pktinfo { addr; ifindex }
                    reply = struct.pack("16si", payload[:16], 0)
                    reply_ancillary = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, reply)]
            try:
                sock.sendmsg([self.reply], reply_ancillary, 0, source)
            except OSError as error:
                print(f"testhost.py serve: udp reply to {source}: {error}", file=sys.stderr)

    def run(self):
        while True:
            for key, mask in self.selector.select():
                callback, context = key.data
                callback(key.fileobj, mask, context)

    def close(self):
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


def serve(args):
    raise_fd_limit()
    tcp_ports = [p for p in (args.tcp_port or [80]) if p]
    udp_ports = [p for p in (args.udp_port or [53]) if p]
    if not tcp_ports and not udp_ports:
        raise SystemExit("testhost.py serve: nothing to serve (all ports are 0)")

    def stop(_signum, _frame):
        raise Stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = Server(args.name, tcp_ports, udp_ports)
    # The pid file is written once every socket listens: its presence means ready.
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(args.pidfile + ".tmp", args.pidfile)
    print(f"testhost.py serve: {args.name} ready, tcp {tcp_ports} udp {udp_ports}", file=sys.stderr)
    try:
        server.run()
    except Stop:
        pass
    finally:
        server.close()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except FileNotFoundError:
                pass
    return 0


# MARK: - client


class Flow:
    """One TCP connection or one UDP socket (fixed source port) towards the VIP."""

    def __init__(self, index, proto, family, target, source_port):
        self.index = index
        self.proto = proto
        self.family = family
        self.target = target
        self.source_port = source_port
        self.sock = None
        self.started = False
        self.connected = False
        self.dead = None            # why the flow can no longer be used
        self.inbox = b""
        self.outstanding = deque()  # rounds whose reply is still to come, oldest first
        self.answers = {}           # round -> real name
        self.errors = {}            # round -> error
        self.deadline = None

    def open(self):
        kind = socket.SOCK_STREAM if self.proto == "tcp" else socket.SOCK_DGRAM
        self.sock = socket.socket(self.family, kind)
        self.sock.setblocking(False)
        if self.source_port:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("0.0.0.0" if self.family == socket.AF_INET else "::", self.source_port))
        code = self.sock.connect_ex(self.target)
        if code == 0:
            self.connected = True
        elif code not in IN_PROGRESS:
            raise OSError(code, os.strerror(code))
        self.source_port = self.sock.getsockname()[1]

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Client:
    def __init__(self, args):
        self.args = args
        self.family = family_of(args.vip)
        self.target = (args.vip, args.port)
        self.selector = selectors.DefaultSelector()
        self.flows = [
            Flow(i, args.proto, self.family, self.target,
                 args.source_port + i if args.source_port else 0)
            for i in range(args.count)
        ]
        self.started = time.monotonic()
        self.active = set()
        self.total_deadline = self.started + args.total_timeout

    # The event loop: runs until `done()` or the deadline; expires per-flow deadlines.
    def pump(self, done, deadline):
        deadline = min(deadline, self.total_deadline)
        while not done():
            now = time.monotonic()
            if now >= deadline:
                return
            self.expire(now)
            if done():
                return
            if not self.selector.get_map():
                time.sleep(min(0.05, deadline - now))
                continue
            for key, mask in self.selector.select(min(0.05, deadline - now)):
                self.on_event(key.data, mask)

    def watch(self, flow, events):
        if flow.sock is None:
            return
        try:
            self.selector.modify(flow.sock, events, flow)
        except KeyError:
            self.selector.register(flow.sock, events, flow)

    def unwatch(self, flow):
        if flow.sock is not None:
            try:
                self.selector.unregister(flow.sock)
            except KeyError:
                pass

    def fail(self, flow, reason):
        """The flow is unusable: every round still waiting on it failed."""
        flow.dead = flow.dead or reason
        self.active.discard(flow)
        while flow.outstanding:
            flow.errors.setdefault(flow.outstanding.popleft(), reason)
        self.unwatch(flow)
        flow.close()

    def expire(self, now):
        for flow in list(self.active):
            if flow.deadline is not None and now >= flow.deadline:
                flow.deadline = None
                if not flow.connected:
                    self.fail(flow, "connect timeout")
                else:
                    # A late reply still belongs to its round: keep the queue, mark the round.
                    for round_ in flow.outstanding:
                        flow.errors.setdefault(round_, "timeout")
                    if not self.args.hold:
                        self.fail(flow, "timeout")

    def on_event(self, flow, mask):
        if not flow.connected:
            code = flow.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.fail(flow, f"connect: {os.strerror(code)}")
                return
            flow.connected = True
            if flow.outstanding:
                self.send(flow)
            else:
                flow.deadline = None
                self.unwatch(flow)
            return
        try:
            data = flow.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self.fail(flow, f"recv: {os.strerror(error.errno) if error.errno else error}")
            return
        if flow.proto == "udp":
            self.record(flow, data.decode(errors="replace").strip())
            return
        if not data:
            self.fail(flow, "closed by peer")
            return
        flow.inbox += data
        while b"\n" in flow.inbox:
            line, flow.inbox = flow.inbox.split(b"\n", 1)
            self.record(flow, line.decode(errors="replace").strip())

    def record(self, flow, name):
        if not flow.outstanding:
            return  # an unsolicited extra line: nothing to match it to
        round_ = flow.outstanding.popleft()
        if round_ in flow.errors:
            flow.answers.setdefault(-1 - round_, name)  # late reply, kept apart
        else:
            flow.answers[round_] = name
        if not flow.outstanding:
            flow.deadline = None
            if self.args.hold:
                self.unwatch(flow)
            else:
                self.finish(flow)
        else:
            self.watch(flow, selectors.EVENT_READ)

    def send(self, flow):
        round_ = flow.outstanding[-1]
        line = f"{self.args.message} {flow.index} {round_}\n".encode()
        try:
            flow.sock.send(line)
        except OSError as error:
            self.fail(flow, f"send: {os.strerror(error.errno) if error.errno else error}")
            return
        flow.deadline = time.monotonic() + self.args.timeout
        self.watch(flow, selectors.EVENT_READ)

    def start(self, flow, round_):
        """Opens the flow if needed, then asks one question in `round_`."""
        if flow.dead:
            flow.errors[round_] = flow.dead
            return
        flow.started = True
        flow.outstanding.append(round_)
        if flow.sock is None:
            try:
                flow.open()
            except OSError as error:
                self.fail(flow, f"connect: {os.strerror(error.errno) if error.errno else error}")
                return
            if not flow.connected:
                flow.deadline = time.monotonic() + self.args.timeout
                self.watch(flow, selectors.EVENT_WRITE)
                return
        self.send(flow)

    def finish(self, flow):
        """Single-shot mode: a TCP flow is done once answered; UDP keeps its port busy."""
        self.unwatch(flow)
        if flow.proto == "tcp":
            flow.close()
        self.active.discard(flow)

    # MARK: single shot

    def run_once(self):
        self.active = set()
        pending = deque(self.flows)
        while pending or self.active:
            while pending and len(self.active) < self.args.parallel:
                flow = pending.popleft()
                self.active.add(flow)
                self.start(flow, 0)
            self.pump(lambda: not self.active or (pending and len(self.active) < self.args.parallel),
                      self.total_deadline)
            if time.monotonic() >= self.total_deadline:
                break
        for flow in self.flows:
            if 0 not in flow.answers and 0 not in flow.errors:
                flow.errors[0] = "total timeout" if flow.started else "not started"
            flow.close()
        return self.report_once()

    def report_once(self):
        by_real = Counter(f.answers[0] for f in self.flows if 0 in f.answers)
        failures = [{"index": f.index, "source_port": f.source_port, "error": f.errors[0]}
                    for f in self.flows if 0 not in f.answers]
        result = {
            "sent": len(self.flows),
            "answered": sum(by_real.values()),
            "by_real": dict(sorted(by_real.items())),
            "failed": len(failures),
            "failures": failures[:self.args.max_failures],
            "elapsed_s": round(time.monotonic() - self.started, 3),
        }
        if len(failures) > self.args.max_failures:
            result["failures_truncated"] = True
        if self.args.detail:
            result["exchanges"] = [{"index": f.index, "source_port": f.source_port,
                                    "real": f.answers.get(0), "error": f.errors.get(0)}
                                   for f in self.flows]
        return result, not failures

    # MARK: hold

    def run_hold(self):
        self.active = set(self.flows)
        rounds_run = 0
        # Round 0 opens every flow and asks the first question; later rounds reuse them.
        for round_ in range(self.args.rounds):
            round_start = time.monotonic()
            if round_start >= self.total_deadline:
                break
            self.active = {f for f in self.flows if not f.dead}
            for flow in self.flows:
                self.start(flow, round_)
            self.pump(lambda: all(not f.outstanding or f.dead for f in self.flows),
                      round_start + self.args.timeout + (self.args.timeout if round_ == 0 else 0))
            self.expire(float("inf"))
            rounds_run += 1
            if round_ + 1 < self.args.rounds:
                pause = round_start + self.args.interval - time.monotonic()
                if pause > 0:
                    self.pump(lambda: False, time.monotonic() + pause)  # late replies land here
        for flow in self.flows:
            flow.close()
        return self.report_hold(rounds_run)

    def report_hold(self, rounds_run):
        per_flow = []
        for flow in self.flows:
            reals = [flow.answers.get(r) for r in range(rounds_run)]
            seen = {r for r in reals if r is not None}
            failed = sorted(r for r in range(rounds_run) if r not in flow.answers)
            per_flow.append({
                "index": flow.index,
                "source_port": flow.source_port,
                "reals": reals,
                "same_real": len(seen) <= 1 and not failed,
                "failed_rounds": failed,
                "errors": {str(r): flow.errors[r] for r in failed if r in flow.errors},
            })
        first = Counter(f.answers[0] for f in self.flows if 0 in f.answers)
        answered = sum(1 for f in self.flows for r in range(rounds_run) if r in f.answers)
        result = {
            "mode": "hold",
            "proto": self.args.proto,
            "connections": len(self.flows),
            "rounds": rounds_run,
            "sent": len(self.flows) * rounds_run,
            "answered": answered,
            "by_real": dict(sorted(first.items())),
            "all_same_real": all(p["same_real"] for p in per_flow),
            "any_round_failed": any(p["failed_rounds"] for p in per_flow),
            "changed_real": sum(1 for p in per_flow if len({r for r in p["reals"] if r}) > 1),
            "failures": [{"index": p["index"], "source_port": p["source_port"],
                          "failed_rounds": p["failed_rounds"], "errors": p["errors"]}
                         for p in per_flow if p["failed_rounds"]][:self.args.max_failures],
            "elapsed_s": round(time.monotonic() - self.started, 3),
            "per_connection": per_flow,
        }
        return result, result["all_same_real"] and not result["any_round_failed"]


def client(args):
    raise_fd_limit()
    if args.count < 1:
        raise SystemExit("testhost.py client: --count must be at least 1")
    if args.source_port and not 0 < args.source_port <= 65536 - args.count:
        raise SystemExit("testhost.py client: --source-port range must stay within 1..65535")
    if args.total_timeout is None:
        if args.hold:
            args.total_timeout = 2 * args.timeout + args.rounds * max(args.interval, args.timeout) + 10
        else:
            batches = -(-args.count // args.parallel)
            args.total_timeout = min(2 * args.timeout * batches, 60) + 10
    runner = Client(args)
    result, complete = runner.run_hold() if args.hold else runner.run_once()
    json.dump(result, sys.stdout, indent=None if args.compact else 1)
    sys.stdout.write("\n")
    return 1 if args.require_all and not complete else 0


# MARK: - command line


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="testhost.py", description="Test server and client for Petrel's namespace topology.")
    commands = parser.add_subparsers(dest="command", required=True)

    s = commands.add_parser("serve", help="answer TCP lines and UDP datagrams with this real's name",
                            description="Serve TCP and UDP on IPv4 and IPv6; every request is answered "
                                        "with NAME and a newline, UDP replies from the VIP.")
    s.add_argument("--name", required=True, help="the name to answer with, e.g. real1")
    s.add_argument("--tcp-port", type=int, action="append", metavar="PORT",
                   help="TCP port (repeatable; default 80; 0 = no TCP)")
    s.add_argument("--udp-port", type=int, action="append", metavar="PORT",
                   help="UDP port (repeatable; default 53; 0 = no UDP)")
    s.add_argument("--pidfile", help="write the pid here once listening; removed on exit")
    s.set_defaults(run=serve)

    c = commands.add_parser("client", help="ask a VIP N times and report which real answered (JSON)",
                            description="Make N TCP connections or N UDP exchanges from distinct source "
                                        "ports, or with --hold keep N flows for several rounds; print JSON.")
    c.add_argument("--vip", required=True, help="the address to talk to (IPv4 or IPv6)")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--proto", choices=("tcp", "udp"), required=True)
    c.add_argument("--count", type=int, default=1, help="connections or exchanges (default 1)")
    c.add_argument("--timeout", type=float, default=2.0,
                   help="seconds for one connect and for one answer (default 2)")
    c.add_argument("--total-timeout", type=float,
                   help="bound on the whole run in seconds (default: derived from the others)")
    c.add_argument("--parallel", type=int, default=64,
                   help="single-shot mode: flows in flight at once (default 64)")
    c.add_argument("--source-port", type=int, default=0, metavar="FIRST",
                   help="use source ports FIRST..FIRST+N-1 instead of ephemeral ones")
    c.add_argument("--message", default="hello", help="text of each request line")
    c.add_argument("--hold", action="store_true",
                   help="keep N flows open and ask on each every --interval, --rounds times")
    c.add_argument("--rounds", type=int, default=5, help="hold mode: rounds (default 5)")
    c.add_argument("--interval", type=float, default=1.0,
                   help="hold mode: seconds between the starts of rounds (default 1)")
    c.add_argument("--detail", action="store_true", help="single-shot mode: list every exchange")
    c.add_argument("--max-failures", type=int, default=20, help="failures listed at most (default 20)")
    c.add_argument("--require-all", action="store_true",
                   help="exit 1 unless every exchange was answered (and, with --hold, by one real)")
    c.add_argument("--compact", action="store_true", help="print the JSON on one line")
    c.set_defaults(run=client)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
