"""Clients that hold an API's connections without finishing a request: idle (connect, send nothing), slow header
(one header byte per tick) and slow body (whole headers, then one body byte per tick). A connection the server
closes is opened again at once, so the pressure lasts as long as the clients run.

Used by `make bench-api --slow-clients` and tests/api/test_slow_clients.py; loopback only.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

HEADER_START = b"POST /scheduler/select HTTP/1.1\r\nHost: llmsched\r\nContent-Type: application/json\r\nX-Pad: "
BODY_HEADERS = (
    b"POST /scheduler/select HTTP/1.1\r\nHost: llmsched\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


@dataclass
class _Conn:
    kind: str  # idle | header | body
    sock: socket.socket | None = None


class SlowClients:
    def __init__(self, port: int, idle: int, slow_header: int, slow_body: int, tick_s: float = 0.2) -> None:
        self.port = port
        self.tick_s = tick_s
        self.conns = [_Conn("idle") for _ in range(idle)]
        self.conns += [_Conn("header") for _ in range(slow_header)]
        self.conns += [_Conn("body") for _ in range(slow_body)]
        self.opened = 0  # connections opened, first ones included
        self.closed_by_server = 0
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def __enter__(self) -> SlowClients:
        for conn in self.conns:
            self._open(conn)
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.conns:
            if conn.sock is not None:
                conn.sock.close()

    def held(self) -> int:
        return sum(1 for conn in self.conns if conn.sock is not None)

    def _open(self, conn: _Conn) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2.0)
        except OSError:
            self.refused += 1
            conn.sock = None
            return
        sock.setblocking(False)
        self.opened += 1
        conn.sock = sock
        try:
            if conn.kind == "header":
                sock.send(HEADER_START)
            elif conn.kind == "body":
                sock.send(BODY_HEADERS)
        except OSError:
            self._lost(conn)

    def _lost(self, conn: _Conn) -> None:
        if conn.sock is not None:
            conn.sock.close()
        conn.sock = None
        self.closed_by_server += 1

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            for conn in self.conns:
                if self._stop.is_set():
                    return
                if conn.sock is None:
                    self._open(conn)
                    continue
                try:
                    if conn.sock.recv(4096) == b"":  # the server closed it (or answered and closed)
                        self._lost(conn)
                        continue
                    self._lost(conn)  # it answered (408, 503): open another one
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    self._lost(conn)
                    continue
                try:
                    if conn.kind == "header":
                        conn.sock.send(b"a")
                    elif conn.kind == "body":
                        conn.sock.send(b" ")
                except OSError:
                    self._lost(conn)
