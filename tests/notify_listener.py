"""A stand-in for systemd's notification socket, for protocol tests.

Binds a real ``AF_UNIX``/``SOCK_DGRAM`` socket (a filesystem path or an abstract
``@name``), turns on ``SO_PASSCRED`` so that the kernel attaches the sender's
credentials to every datagram (``SCM_CREDENTIALS``: what systemd checks for
``NotifyAccess=main``), and collects the messages with bounded waits.

Usage::

    with NotifyListener.bind_path(tmp_path) as listener:
        env = {"NOTIFY_SOCKET": listener.notify_socket}
        ...start the code under test with env...
        first = listener.wait_for(lambda m: m.has("READY", "1"), timeout=5)
        assert first.pid == expected_pid

Create the listener before the code under test builds its notifier. No test here
waits longer than the timeout it passes.
"""

import os
import socket
import struct
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

#: systemd reads at most this many bytes (NOTIFY_BUFFER_MAX = PIPE_BUF) and drops longer
#: datagrams; receive one byte more so that an oversized datagram is visible to a test.
BUFFER_SIZE = 4097

_UCRED = struct.Struct("iII")  # struct ucred: pid_t pid; uid_t uid; gid_t gid


class Message:
    """One datagram: its ``KEY=VALUE`` lines and the sender's credentials."""

    def __init__(self, raw: bytes, pid: Optional[int], uid: Optional[int],
                 gid: Optional[int], received_at: float) -> None:
        self.raw = raw
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.received_at = received_at  # time.monotonic() at reception
        self.items: List[Tuple[str, str]] = []
        for line in raw.decode("utf-8", "replace").split("\n"):
            if line:
                key, _, value = line.partition("=")
                self.items.append((key, value))

    @property
    def fields(self) -> Dict[str, str]:
        """The lines as a dict (the last one wins if a key repeats)."""
        return dict(self.items)

    def get(self, key: str) -> Optional[str]:
        return self.fields.get(key)

    def has(self, key: str, value: Optional[str] = None) -> bool:
        """True when the message has ``key`` (with ``value``, if given)."""
        return any(k == key and (value is None or v == value) for k, v in self.items)

    def __repr__(self) -> str:
        return f"Message(pid={self.pid}, raw={self.raw!r})"


class NotifyListener:
    """A bound notification socket that records what arrives. Also a context manager."""

    def __init__(self, address: Union[str, bytes], notify_socket: str) -> None:
        self.notify_socket = notify_socket  # the value for $NOTIFY_SOCKET
        self.messages: List[Message] = []   # everything received so far, in order
        self._path = address if isinstance(address, str) and address.startswith("/") else None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self._sock.bind(address)
        except BaseException:
            self._sock.close()
            raise

    @classmethod
    def bind_path(cls, directory: Union[str, Path], name: str = "notify.sock") -> "NotifyListener":
        """Listen on ``directory/name`` (keep it short: AF_UNIX paths max out at 107 bytes)."""
        path = os.path.join(os.fspath(directory), name)
        return cls(path, path)

    @classmethod
    def bind_abstract(cls, name: Optional[str] = None) -> "NotifyListener":
        """Listen on an abstract socket ``@name`` (a random unique name by default)."""
        name = name or f"idle-culler-test-{os.getpid()}-{uuid.uuid4().hex}"
        return cls("\0" + name, "@" + name)

    def recv(self, timeout: float) -> Optional[Message]:
        """Wait at most ``timeout`` seconds for the next datagram; None if none came."""
        self._sock.settimeout(max(timeout, 0.0))  # 0: just look, don't wait
        try:
            data, ancdata, _flags, _addr = self._sock.recvmsg(
                BUFFER_SIZE, socket.CMSG_SPACE(_UCRED.size))
        except (socket.timeout, BlockingIOError):
            return None
        pid = uid = gid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, uid, gid = _UCRED.unpack(payload[: _UCRED.size])
        message = Message(data, pid, uid, gid, time.monotonic())
        self.messages.append(message)
        return message

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float) -> Message:
        """Receive until a message satisfies ``predicate``; AssertionError after ``timeout``.

        Messages already received are checked first. Everything received on the way is
        kept in :attr:`messages`.
        """
        for message in self.messages:
            if predicate(message):
                return message
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no matching notify message within {timeout}s; got {self.messages!r}")
            message = self.recv(left)
            if message is not None and predicate(message):
                return message

    def collect(self, duration: float,
                until: Optional[Callable[[Message], bool]] = None) -> List[Message]:
        """Receive for ``duration`` seconds (or until ``until`` matches); return the new ones."""
        start = len(self.messages)
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            message = self.recv(left)
            if message is not None and until is not None and until(message):
                break
        return self.messages[start:]

    def drain(self) -> List[Message]:
        """Return whatever is already queued, without waiting."""
        got = []
        while True:
            message = self.recv(0)
            if message is None:
                return got
            got.append(message)

    def close(self) -> None:
        """Close the socket and remove its file, if it has one."""
        self._sock.close()
        if self._path is not None:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "NotifyListener":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
