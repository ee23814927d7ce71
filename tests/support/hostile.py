"""A loopback HTTP server that answers whatever a test scripts: a hostile single-user server.

Each connection is read one request at a time (head, then a ``Content-Length`` body); the
request is recorded (method, target, headers) and handed to the test's ``answer(conn, request)``,
which writes raw bytes to the socket as it likes (trickled headers, endless bodies, cookies,
redirects). Binds 127.0.0.1 only; :meth:`close` ends every connection and joins every thread.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional


@dataclass
class Request:
    method: str
    target: str
    headers: Dict[str, str]  # lower-case names
    body: bytes = b""
    sent: int = 0  # bytes of the answer written (answers that count them)
    done: bool = False  # the answer was written whole
    closing: threading.Event = field(default_factory=threading.Event)  # the server closes


Answer = Callable[[socket.socket, Request], None]


def reply(status: int = 200, body: bytes = b"{}", headers: Optional[Dict[str, str]] = None,
          content_type: str = "application/json") -> Answer:
    """An ``answer`` writing one whole answer."""
    def answer(conn: socket.socket, request: Request) -> None:
        lines = ["HTTP/1.1 %d X" % status, "Content-Type: " + content_type,
                 "Content-Length: %d" % len(body)]
        lines += ["%s: %s" % item for item in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        request.done = True
    return answer


@dataclass
class HostileServer:
    answer: Answer = field(default_factory=reply)
    requests: List[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.closing = threading.Event()
        self._conns: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()
        self._start(self._accept)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def _start(self, target: Callable, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while not self.closing.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                request = Request(method, target, headers, buffer[:length],
                                  closing=self.closing)
                buffer = buffer[length:]
                with self._lock:
                    self.requests.append(request)
                self.answer(conn, request)
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.closing.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(5)
        assert not any(thread.is_alive() for thread in threads)

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
