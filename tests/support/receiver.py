"""A loopback webhook receiver for the notification tests: records every POST it gets.

``Receiver`` listens on 127.0.0.1 and answers each request as its ``mode`` says:

* ``"ok"``: 204 (or ``status``, when set to another code), with ``headers`` added;
* ``"hang"``: reads the request, then answers nothing until ``release()`` or ``close()``;
* ``"close"``: reads the request and closes the connection without an answer.

Every request is recorded (method, path, headers, parsed JSON body) before it is answered, and
:meth:`wait_for` waits on a condition (no sleeping) for a number of them. ``close()`` releases
hanging requests and joins the server thread; every wait is bounded.

    with Receiver() as hook:
        ... --notify-url=hook.url ...
        hook.wait_for(2, timeout=5)
        assert [body["event"] for body in hook.bodies()] == [...]
"""

import http.server
import json
import threading
from typing import Any, Dict, List, NamedTuple


class Received(NamedTuple):
    method: str
    path: str
    headers: Dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw.decode("utf-8"))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        receiver = self.server.receiver
        receiver.record(Received("POST", self.path, dict(self.headers.items()), raw))
        if receiver.mode == "close":
            self.close_connection = True
            return
        if receiver.mode == "hang":
            receiver.released.wait(30)
            self.close_connection = True
            return
        self.send_response(receiver.status)
        for name, value in receiver.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    receiver: "Receiver"


class Receiver:
    """A recording HTTP receiver on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, mode: str = "ok", status: int = 204, path: str = "/hook/T0/B0/secretkey"
                 ) -> None:
        self.mode = mode
        self.status = status
        self.path = path
        self.headers: Dict[str, str] = {}  # added to every answer (Set-Cookie, Location)
        self.released = threading.Event()
        self._cond = threading.Condition()
        self._received: List[Received] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d%s" % (self._server.server_address[1], self.path)

    def record(self, item: Received) -> None:
        with self._cond:
            self._received.append(item)
            self._cond.notify_all()

    def received(self) -> List[Received]:
        with self._cond:
            return list(self._received)

    def bodies(self) -> List[Any]:
        return [item.json() for item in self.received()]

    def wait_for(self, count: int, timeout: float = 5.0) -> List[Received]:
        """Wait until at least ``count`` requests came (AssertionError at the timeout)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= count, timeout):
                raise AssertionError("%d request(s) received, expected %d"
                                     % (len(self._received), count))
            return list(self._received)

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
