"""One deadline per exchange: from the moment a request is written to its answer's last byte.

requests' read timeout bounds each wait for the next bytes, not a whole answer, and nothing in
requests or urllib3 (1.26 or 2.x) bounds the whole. :class:`Deadline` does, with one alarm
thread for all requests (:class:`Alarms`) and an ``HTTPAdapter`` whose connections tell the
deadline which socket to cut (:class:`WatchedAdapter`). Used by ``transport`` only.
"""

import heapq
import itertools
import socket
import threading
import time
from functools import partial
from typing import Any, Callable, List, Optional, Tuple

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import pool_classes_by_scheme


class Alarms:
    """One thread that runs each action when its time comes, for all of a Transport's requests.

    A ``threading.Timer`` per request would start a thread per request (about 0.2 ms of CPU, a
    third of what a request costs the culler); here the times wait in a heap and one thread
    sleeps until the earliest. An action is never taken back: it checks when it runs whether
    it still applies. The thread ends when nothing is left to wait for (or at :meth:`close`)
    and starts again with the next action.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: List[Tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._thread: Optional[threading.Thread] = None

    def after(self, seconds: float, action: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._order), action))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is action:
                self._cond.notify()  # earlier than what the thread waits for

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][0] > time.monotonic():
                    self._cond.wait(self._heap[0][0] - time.monotonic())
                if not self._heap:
                    self._thread = None
                    return
                action = heapq.heappop(self._heap)[2]
            action()  # outside the lock: an action takes its deadline's lock

    def close(self) -> None:
        """Drop what waits (each would find its exchange over) and let the thread end."""
        with self._cond:
            self._heap.clear()
            self._cond.notify()


class Deadline:
    """One exchange's deadline: from the moment the request is written to the body's end.

    requests' read timeout bounds each wait for the next bytes, not the whole answer: a server
    that trickles header lines or body bytes under it could hold a question for ever. When the
    deadline passes, an alarm (:class:`Alarms`) shuts the connection's socket down; the read in
    progress (of the headers inside urllib3, or of the body in :meth:`Transport.read`) then
    ends with an error. An alarm, not a check between reads, because one blocking read of a
    chunk (urllib3 1.26 and http.client read until the chunk is full) lasts as long as the
    sender makes it.

    The socket is only known once urllib3 has a connection: the connection classes below
    call :meth:`attach` as they write each request (urllib3 1.26 and 2.x both write every
    request with ``HTTPConnection.request``), so each attempt of a retried call gets a
    deadline of its own and its alarm cuts the socket of that attempt only. After
    :meth:`finish` no alarm cuts anything, so a connection back in the pool is never hurt.
    """

    _current = threading.local()  # the exchange this thread is sending, if any

    def __init__(self, seconds: float, alarms: Alarms) -> None:
        self.seconds = seconds
        self._alarms = alarms
        self.expired = False
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._done = False
        self._attempt = 0  # a late alarm of an earlier attempt must not cut this one

    def __enter__(self) -> "Deadline":
        Deadline._current.value = self
        return self

    def __exit__(self, *exc: Any) -> None:
        Deadline._current.value = None
        self.finish()

    @classmethod
    def current(cls) -> Optional["Deadline"]:
        return getattr(cls._current, "value", None)

    @classmethod
    def attach_current(cls, connection: Any) -> None:
        deadline = cls.current()
        if deadline is not None:
            deadline.attach(getattr(connection, "sock", None))

    def attach(self, sock: Optional[socket.socket]) -> None:
        """A new attempt writes its request on ``sock``: its deadline starts now."""
        with self._lock:
            self._sock, self.expired = sock, False
            self._attempt += 1
            attempt = self._attempt
        self._alarms.after(self.seconds, partial(self._expire, attempt))

    def finish(self) -> None:
        with self._lock:
            self._done, self._sock = True, None  # the alarm, still waiting, holds no socket

    def _expire(self, attempt: int) -> None:
        with self._lock:
            if self._done or self._sock is None or attempt != self._attempt:
                return
            self.expired = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: the read has ended anyway


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102 - see Deadline
        result = super().request(*args, **kwargs)
        Deadline.attach_current(self)  # the socket exists now, even on a new connection
        return result


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102 - see Deadline
        result = super().request(*args, **kwargs)
        Deadline.attach_current(self)
        return result


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """``HTTPAdapter`` whose pools make the connections that report to :class:`Deadline`.

    ``init_poolmanager`` and ``proxy_manager_for`` are requests' documented points to shape
    an adapter's pool managers; a SOCKS proxy's manager keeps its own classes (and then the
    read timeout alone bounds each wait).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        return _watch(super().proxy_manager_for(proxy, **kwargs))


def _watch(manager: Any) -> Any:
    if getattr(manager, "pool_classes_by_scheme", None) is pool_classes_by_scheme:
        manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return manager
