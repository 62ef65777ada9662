"""A fake MQTT broker (a thread on a loopback port) that answers every CONNECT with the same
CONNACK reason code, in the client's protocol (MQTT 5 reason code, or the 3.1.1 return code),
and then waits for the client to hang up.

    with ConnackBroker(0x86) as broker:   # bad user name or password
        ... connect to 127.0.0.1:broker.port ...
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

# MQTT 5 reason code -> MQTT 3.1.1 CONNACK return code (the five 3.1.1 has)
V311_CODE = {0x84: 1, 0x85: 2, 0x88: 3, 0x86: 4, 0x87: 5}


def _remaining_length(sock: socket.socket) -> int:
    value, shift = 0, 0
    while True:
        byte = sock.recv(1)[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client hung up")
        data += chunk
    return data


class ConnackBroker:
    def __init__(self, code: int) -> None:
        self.code = code
        self.connects = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)  # accept() wakes up to see the stop
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="connack-broker", daemon=True)
        self._answering: list[threading.Thread] = []

    def __enter__(self) -> ConnackBroker:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()
        for t in self._answering:
            t.join(5)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._answer, args=(conn,), name="connack-answer",
                                 daemon=True)
            self._answering.append(t)
            t.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                if _recv_exactly(conn, 1)[0] >> 4 != 1:  # not a CONNECT
                    return
                body = _recv_exactly(conn, _remaining_length(conn))
                level = body[2 + int.from_bytes(body[:2], "big")]  # after the protocol name
                self.connects += 1
                if level == 5:
                    conn.sendall(bytes([0x20, 3, 0, self.code, 0]))  # no properties
                else:
                    conn.sendall(bytes([0x20, 2, 0, V311_CODE[self.code]]))
                conn.settimeout(0.05)
                while not self._stop.is_set():  # until the client hangs up
                    try:
                        if not conn.recv(1024):
                            return
                    except TimeoutError:
                        continue
            except (OSError, IndexError, ConnectionError):
                return
