#!/usr/bin/env python3
"""QUIC test hosts for Petrel's connection-ID routing, on aioquic (a real QUIC stack).

  serve   runs inside a real: a QUIC server on the VIP addresses whose connection IDs
          carry this real's server id (Petrel CID format v1, below), so Petrel can send
          every short-header packet of a connection to this real, wherever the client
          moves. Each stream is answered with a JSON line naming the real and how many
          bytes it received, then the bytes echoed back.
  client  runs inside the client: opens N connections to a VIP, transfers data on each,
          then migrates every connection to a new UDP source port (a new socket, and a
          new connection ID from those the server issued) and transfers again. Prints one
          JSON object: per connection the real before and after, the local ports, the
          server ids read from the connection IDs used, and whether every byte came back.

Petrel CID format v1 (docs/quic.md; the IETF QUIC-LB draft's plaintext algorithm with a
fixed configuration):
  byte 0     bits 7-5: config rotation 0b001, which Petrel reads as "format v1";
             bits 4-0: connection ID length - 1 (QUIC-LB's length self-description)
  bytes 1-2  server id, big-endian, 1..65535 (0 means "no id")
  bytes 3-   nonce, random, at least 4 bytes (8-byte IDs: 5 bytes)

See scripts/README.md for examples. Needs aioquic (scripts/install-deps.sh installs it).
"""

import argparse
import asyncio
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import sys
import tempfile

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.asyncio import server as aioquic_server
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionId
from aioquic.quic.events import StreamDataReceived

CID_FORMAT_V1 = 0b001
CID_LENGTH = 8
ALPN = "petrel-test"


def make_cid(server_id, length=CID_LENGTH):
    """A connection ID in Petrel CID format v1."""
    if not 1 <= server_id <= 0xFFFF:
        raise ValueError(f"server id must be 1..65535, got {server_id}")
    if not 7 <= length <= 20:
        raise ValueError(f"connection ID length must be 7..20 (4+ bytes of nonce), got {length}")
    first = (CID_FORMAT_V1 << 5) | (length - 1)
    return bytes([first, server_id >> 8, server_id & 0xFF]) + os.urandom(length - 3)


def server_id_of(cid):
    """The server id a connection ID carries in format v1, or None (what Petrel reads)."""
    if len(cid) < 7 or cid[0] >> 5 != CID_FORMAT_V1:
        return None
    server_id = cid[1] << 8 | cid[2]
    return server_id or None


# MARK: - serve


def cid_issuing_connection(server_id):
    """aioquic's connection with every connection ID it issues in format v1."""

    class PetrelCIDConnection(QuicConnection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            first = self._host_cids[0]
            first.cid = make_cid(server_id, self._configuration.connection_id_length)
            self.host_cid = first.cid
            self._local_initial_source_connection_id = first.cid

        def _replenish_connection_ids(self):
            while len(self._host_cids) < min(8, self._remote_active_connection_id_limit):
                self._host_cids.append(
                    QuicConnectionId(
                        cid=make_cid(server_id, self._configuration.connection_id_length),
                        sequence_number=self._host_cid_seq,
                        stateless_reset_token=os.urandom(16),
                    )
                )
                self._host_cid_seq += 1

    return PetrelCIDConnection


def self_signed_certificate(directory, name):
    """A throw-away certificate: the client does not verify it (test traffic only)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class AnsweringProtocol(QuicConnectionProtocol):
    """Each stream: collect the bytes until its end, answer with a JSON line, echo them back."""

    name = "?"
    server_id = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._streams = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            data = self._streams.setdefault(event.stream_id, bytearray())
            data += event.data
            if event.end_stream:
                del self._streams[event.stream_id]
                answer = json.dumps({"real": self.name, "server_id": self.server_id,
                                     "received": len(data)}).encode() + b"\n"
                self._quic.send_stream_data(event.stream_id, answer + bytes(data), end_stream=True)
                self.transmit()


async def run_servers(args):
    # The server class builds each connection from this module-level name.
    aioquic_server.QuicConnection = cid_issuing_connection(args.server_id)
    AnsweringProtocol.name = args.name
    AnsweringProtocol.server_id = args.server_id
    configuration = QuicConfiguration(is_client=False, alpn_protocols=[ALPN],
                                      connection_id_length=CID_LENGTH, idle_timeout=30.0)
    # The key is read into memory and its files removed at once: a killed server leaves nothing.
    with tempfile.TemporaryDirectory(prefix="petrel-quic-") as directory:
        configuration.load_cert_chain(*self_signed_certificate(directory, args.name))
    servers = []
    for address in args.listen:
        # Bound to the VIP itself, so replies leave from the VIP (direct server return).
        servers.append(await serve(address, args.port, configuration=configuration,
                                   create_protocol=AnsweringProtocol))
    print(f"quic_host: {args.name} (server id {args.server_id}) on "
          + ", ".join(f"[{a}]:{args.port}" for a in args.listen), flush=True)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


# MARK: - client


async def exchange(protocol, size):
    """One stream: send `size` bytes, read the answer line and the echo; returns the answer."""
    payload = os.urandom(size)
    reader, writer = await protocol.create_stream()
    writer.write(payload)
    writer.write_eof()
    answer = json.loads(await reader.readline())
    echoed = await reader.read()
    answer["intact"] = echoed == payload and answer["received"] == size
    return answer


def local_port(protocol):
    return protocol._transport.get_extra_info("sockname")[1]


async def migrate(protocol):
    """Moves the connection to a new UDP socket (a new source port) and a new connection ID."""
    protocol._transport.close()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 0, 0, 0))
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: protocol, sock=sock)
    protocol.change_connection_id()


async def one_connection(args, record):
    """Fills `record` as the connection goes, so a connection cut short still reports how far it got."""
    # The reals' certificates are throw-away: not verified (test traffic only).
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], idle_timeout=20.0,
                                      verify_mode=ssl.CERT_NONE)
    async with connect(args.vip, args.port, configuration=configuration) as protocol:
        record["port_before"] = local_port(protocol)
        record["cid_before"] = protocol._quic._peer_cid.cid.hex()
        record["before"] = [await exchange(protocol, args.bytes) for _ in range(args.rounds)]
        if args.migrate:
            await migrate(protocol)
        record["port_after"] = local_port(protocol)
        record["cid_after"] = protocol._quic._peer_cid.cid.hex()
        record["after"] = [await exchange(protocol, args.bytes) for _ in range(args.rounds)]
        answers = record["before"] + record["after"]
        record["ok"] = len({a["real"] for a in answers}) == 1 and all(a["intact"] for a in answers)
        protocol.close()


def add_server_ids(record):
    for key in ("cid_before", "cid_after"):
        if key in record:
            record[key.replace("cid", "server_id")] = server_id_of(bytes.fromhex(record[key]))
    return record


async def run_client(args):
    limit = asyncio.Semaphore(args.parallel)

    async def bounded(index):
        record = {"index": index, "ok": False}
        async with limit:
            try:
                await asyncio.wait_for(one_connection(args, record), args.timeout)
            except asyncio.TimeoutError:
                record["error"] = f"no result within {args.timeout} s"
            except Exception as error:  # a broken connection is a result, not a crash
                record["error"] = f"{type(error).__name__}: {error}"
        return add_server_ids(record)

    records = await asyncio.gather(*(bounded(i) for i in range(args.connections)))
    summary = {
        "connections": len(records),
        "ok": sum(1 for r in records if r["ok"]),
        "migrated": args.migrate,
        "records": records,
    }
    json.dump(summary, sys.stdout)
    print()
    return 0 if summary["ok"] == summary["connections"] else 1


# MARK: - main


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("serve", help="QUIC server on a real")
    s.add_argument("--listen", action="append", required=True, help="VIP address to bind (repeatable)")
    s.add_argument("--port", type=int, default=443)
    s.add_argument("--server-id", type=int, required=True, help="this real's server id, 1..65535")
    s.add_argument("--name", required=True, help="the name this real answers with")
    s.add_argument("--ready-file", help="written (with the pid) once every socket listens")
    c = commands.add_parser("client", help="QUIC client that migrates")
    c.add_argument("--vip", required=True)
    c.add_argument("--port", type=int, default=443)
    c.add_argument("--connections", type=int, default=20)
    c.add_argument("--parallel", type=int, default=10)
    c.add_argument("--rounds", type=int, default=2, help="streams before and after the migration")
    c.add_argument("--bytes", type=int, default=32768, help="bytes sent (and echoed) per stream")
    c.add_argument("--migrate", action=argparse.BooleanOptionalAction, default=True)
    c.add_argument("--timeout", type=float, default=20.0, help="seconds per connection")
    args = parser.parse_args()
    if args.command == "serve":
        if not 1 <= args.server_id <= 0xFFFF:
            parser.error(f"--server-id must be 1..65535, got {args.server_id}")
        for address in args.listen:
            ipaddress.ip_address(address)
        asyncio.run(run_servers(args))
        return 0
    return asyncio.run(run_client(args))


if __name__ == "__main__":
    sys.exit(main())
