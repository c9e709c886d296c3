"""Many fake engines in one process, for the scrape benchmark: the same realistic vLLM 0.10 body (bench/scrape_body.py)
on N ports of 127.0.0.1, answered from prebuilt HTTP/1.1 responses (keep-alive, Content-Length; gzip when the client
accepts it and `--gzip` is given, as prometheus_client's servers do), so one process can stand in for thousands of
engines. It counts scrapes per port and per second.

    python -m llmsched.bench.fake_engines --count N [--gzip] --stats FILE

prints one JSON line with the ports once it listens; SIGUSR1 starts a measuring window (counters reset), SIGUSR2
writes {"window_s", "ports": {port: [scrapes, distinct seconds with a scrape]}} to FILE; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import signal
import sys
import time

from llmsched.bench.scrape_body import vllm_010_body

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def response(body: bytes, encoding: bytes | None = None) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: " + CONTENT_TYPE + b"\r\nContent-Length: %d\r\n" % len(body)
    if encoding:
        head += b"Content-Encoding: " + encoding + b"\r\n"
    return head + b"\r\n" + body


class Counts:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.time()
        self.hits: dict[int, int] = {}
        self.seconds: dict[int, set[int]] = {}

    def hit(self, port: int) -> None:
        self.hits[port] = self.hits.get(port, 0) + 1
        self.seconds.setdefault(port, set()).add(int(time.time() - self.started))


class Engine(asyncio.Protocol):
    def __init__(self, port: int, plain: bytes, zipped: bytes | None, counts: Counts) -> None:
        self.port, self.plain, self.zipped, self.counts = port, plain, zipped, counts
        self.buffer = b""

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end].lower(), self.buffer[end + 4 :]
            gzip_ok = self.zipped is not None and b"accept-encoding:" in head and b"gzip" in head
            self.transport.write(self.zipped if gzip_ok else self.plain)  # type: ignore[arg-type]
            self.counts.hit(self.port)


async def serve(count: int, use_gzip: bool, stats: str) -> None:
    body = vllm_010_body().encode()
    plain = response(body)
    zipped = response(gzip.compress(body, 6), b"gzip") if use_gzip else None
    counts = Counts()
    loop = asyncio.get_running_loop()
    ports = []
    for _ in range(count):
        holder: list[int] = []
        server = await loop.create_server(
            lambda h=holder: Engine(h[0], plain, zipped, counts), "127.0.0.1", 0, backlog=64, reuse_address=True
        )
        holder.append(server.sockets[0].getsockname()[1])
        ports.append(holder[0])

    def dump() -> None:
        doc = {"window_s": time.time() - counts.started, "ports": {}}
        for port in ports:
            doc["ports"][port] = [counts.hits.get(port, 0), len(counts.seconds.get(port, ()))]
        with open(stats, "w") as out:
            json.dump(doc, out)

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, counts.reset)
    loop.add_signal_handler(signal.SIGUSR2, dump)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(json.dumps({"ports": ports, "body_bytes": len(body), "gzip_bytes": len(zipped or b"") or None}), flush=True)
    await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--gzip", action="store_true", help="answer gzip-compressed bodies to clients that accept it")
    parser.add_argument("--stats", required=True, help="file SIGUSR2 writes the counts to")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.count, args.gzip, args.stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
