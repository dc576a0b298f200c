"""Benchmark: `sftp-drop` uploads with paramiko's write pipelining on and off, side by
side in one run, against a throw-away local OpenSSH server (tests/sshd.py).

Without pipelining every 32 KiB write waits for the server's reply, so a batch costs
one round trip per chunk; `--rtt-ms` puts a delaying relay in front of sshd to show
what that means over a real network. Usage:

    .venv/bin/python bench/sftp_pipelining.py [--batches 20] [--records 500] [--repeat 3]
                                              [--rtt-ms 0 20]
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from builders import consignment, marketplace_fields  # noqa: E402
from sshd import SshServer, sshd_missing  # noqa: E402

from s321 import logs  # noqa: E402
from s321.adapters.sftp_drop import SftpDropTransport, SftpOptions, fingerprint  # noqa: E402
from s321.contracts import Batch  # noqa: E402
from s321.plugins.wire_s321 import S321Json  # noqa: E402

WIRE = S321Json()


class DelayRelay:
    """A TCP relay on loopback that holds every chunk for half the round-trip time in
    each direction: a slow network without touching the host's network settings."""

    def __init__(self, target_port: int, rtt: float):
        self.target_port = target_port
        self.one_way = rtt / 2
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, upstream)
            self._pipe(upstream, client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        queue: list[tuple[float, int, bytes]] = []
        ready = threading.Condition()
        order = itertools.count()

        def read() -> None:
            while True:
                try:
                    chunk = source.recv(65536)
                except OSError:
                    chunk = b""
                with ready:
                    heapq.heappush(queue, (time.monotonic() + self.one_way, next(order), chunk))
                    ready.notify()
                if not chunk:
                    return

        def write() -> None:
            while True:
                with ready:
                    while not queue:
                        ready.wait()
                    due, _, chunk = queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        ready.wait(wait)
                        continue
                    heapq.heappop(queue)
                if not chunk:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)
                    return
                try:
                    sink.sendall(chunk)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def batches(count: int, records: int, tag: str) -> Iterator[Batch]:
    template = [consignment(marketplace_fields(), txid=f"T{i}") for i in range(records)]
    for n in range(count):
        yield Batch(batch_id=f"B{tag}{n}", originator_code="MKT001", profile="pilot-2019",
                    sent_at=datetime.now(UTC), records=template)


def measure(server: SshServer, port: int, pipelined: bool, count: int, records: int) -> float:
    """Batches per second for `count` uploads over one connection (connect excluded)."""
    options = SftpOptions(host="127.0.0.1", port=port, username=server.user,
                          key=str(server.user_key.private), pipelined=pipelined,
                          host_key_fingerprint=fingerprint(server.host_key.blob))
    transport = SftpDropTransport(options, None, WIRE)
    work = list(batches(count, records, f"{int(pipelined)}x{port}"))
    transport.connect()
    try:
        start = time.perf_counter()
        for batch in work:
            transport.send(batch)
        elapsed = time.perf_counter() - start
    finally:
        transport.close()
    inbound = server.root / "inbound"
    shutil.rmtree(inbound)
    inbound.mkdir()
    return count / elapsed


def encoding_rate(count: int, records: int) -> float:
    """Batches per second for encoding alone: the ceiling any upload could reach."""
    work = list(batches(count, records, "enc"))
    start = time.perf_counter()
    for batch in work:
        WIRE.encode_batch(batch)
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20, help="batches per measurement")
    parser.add_argument("--records", type=int, default=500, help="records per batch")
    parser.add_argument("--repeat", type=int, default=3,
                        help="measurements per mode, interleaved; the median is shown")
    parser.add_argument("--rtt-ms", type=float, nargs="*", default=[0.0, 20.0],
                        help="round-trip times to emulate; 0 is plain loopback")
    args = parser.parse_args()
    missing = sshd_missing()
    if missing:
        print(f"sftp_pipelining: {missing}", file=sys.stderr)
        return 2
    logs.configure(level="warning")
    size = len(WIRE.encode_batch(next(batches(1, args.records, "size"))))
    print(f"{args.batches} batches of {args.records} records ({size / 1024:.0f} KiB each), "
          f"one connection, OpenSSH sshd on loopback, median of {args.repeat}")
    print(f"encoding alone: {encoding_rate(args.batches, args.records):.1f} batches/s")
    print(f"{'rtt':>8} {'pipelined':>14} {'unpipelined':>14} {'speed-up':>9}")
    with tempfile.TemporaryDirectory(prefix="s321-bench-sftp-") as tmp, SshServer(Path(tmp)) as server:
        for rtt_ms in args.rtt_ms:
            relay = DelayRelay(server.port, rtt_ms / 1000) if rtt_ms > 0 else None
            port = relay.port if relay else server.port
            rates: dict[bool, list[float]] = {True: [], False: []}
            try:
                for _ in range(args.repeat):
                    for pipelined in (True, False):
                        rates[pipelined].append(measure(server, port, pipelined, args.batches, args.records))
            finally:
                if relay:
                    relay.close()
            on, off = statistics.median(rates[True]), statistics.median(rates[False])
            print(f"{rtt_ms:>6.0f}ms {on:>10.1f} b/s {off:>10.1f} b/s {on / off:>8.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
