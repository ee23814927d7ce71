"""The systemd notification protocol (sd_notify): the only module that talks to systemd.

A thin wrapper around ``sdnotify.SystemdNotifier`` that fixes what the package leaves
to its callers (sdnotify 0.3.1 in Debian 12 and 0.3.2 on PyPI have the same code):

* the socket address comes from the environment mapping we are given, not from
  ``os.environ`` (sdnotify reads ``NOTIFY_SOCKET`` itself, once, in its constructor);
* ``STATUS=`` text is made ASCII-safe: sdnotify encodes as Latin-1 and silently drops
  anything else, and JupyterHub user names can be any Unicode;
* control characters are removed, so a user name cannot start a new ``KEY=VALUE``
  line of the datagram (``\\nREADY=1``);
* ``WATCHDOG_USEC`` / ``WATCHDOG_PID`` are honoured (sdnotify reads neither), and
  ``WATCHDOG=1`` is rate-limited on an injected monotonic clock;
* a failed send never raises; it is logged once at DEBUG.

Imports nothing from this package (see the layering table in STYLE.md, b.3).
"""

import logging
import re
import socket
import threading
import time
from typing import Callable, Mapping, Optional

import sdnotify

log = logging.getLogger(__name__)

#: How often the loop wakes when there is no watchdog to feed. Only bounds how late a
#: stop request or a deadline is noticed; there is nothing to ping.
DEFAULT_TICK_S = 5.0

#: Longest a send may block. A datagram socket blocks when the receiver's queue is full
#: (net.unix.max_dgram_qlen), e.g. when PID 1 is busy; the loop must not hang on that.
SEND_TIMEOUT_S = 1.0

#: Longest STATUS= text sent. systemd ignores datagrams over 4096 bytes, and
#: `systemctl status` shows one line; 200 characters is plenty for a pass summary.
STATUS_MAX_CHARS = 200

_ELLIPSIS = "..."
_DIGITS = re.compile(r"[0-9]+")
# C0 and C1 control characters and DEL. Whitespace controls become a space, the others go.
_WHITESPACE_CONTROLS = re.compile(r"[\t\n\v\f\r]+")
_OTHER_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def watchdog_interval(env: Mapping[str, str], pid: int) -> Optional[float]:
    """Return the watchdog interval in seconds that systemd expects from ``pid``, or None.

    Mirrors ``sd_watchdog_enabled(3)``: ``WATCHDOG_USEC`` must be a positive integer;
    when ``WATCHDOG_PID`` is set it must be a valid pid equal to ``pid`` (otherwise the
    variables were meant for another process, e.g. a parent that exec'd us without
    cleaning its environment). Anything unparsable means "no watchdog".
    """
    usec = env.get("WATCHDOG_USEC")
    if usec is None or not _DIGITS.fullmatch(usec) or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner is not None and (not _DIGITS.fullmatch(owner) or int(owner) != pid):
        return None
    return int(usec) / 1_000_000


def sanitize_status(text: str, limit: int = STATUS_MAX_CHARS) -> str:
    """Make ``text`` safe for one ``STATUS=`` line: ASCII only, no control characters, short.

    Non-ASCII characters become backslash escapes (``j\\xfcrgen``), so nothing is lost
    and sdnotify's Latin-1 encoding cannot fail. The result is at most ``limit``
    characters; a cut is marked with ``...``.
    """
    text = _WHITESPACE_CONTROLS.sub(" ", text)
    text = _OTHER_CONTROLS.sub("", text)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    if len(text) > limit:
        text = text[: max(limit - len(_ELLIPSIS), 0)] + _ELLIPSIS
    return text


def _socket_address(value: Optional[str]) -> Optional[str]:
    """Translate ``$NOTIFY_SOCKET`` into an AF_UNIX address, or None when unusable.

    systemd 252 uses an absolute path or ``@name`` (an abstract socket, written with a
    leading NUL byte). Newer systemd may also pass ``vsock:`` addresses to VMs, which
    this wrapper (like sdnotify) does not support.
    """
    if not value:
        return None
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class _EnvSystemdNotifier(sdnotify.SystemdNotifier):
    """``sdnotify.SystemdNotifier`` bound to an address we choose, that can reconnect.

    The base constructor is deliberately not called: it reads ``os.environ`` and
    swallows every error. We keep sdnotify's ``notify()`` (``socket.sendall`` of the
    Latin-1 encoded text) and run it with ``debug=True`` so failures reach us as
    exceptions.
    """

    def __init__(self, address: str, send_timeout_s: float) -> None:
        self.debug = True
        self.socket = None
        self.address = address
        self.send_timeout_s = send_timeout_s

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.settimeout(self.send_timeout_s)
            sock.connect(self.address)
        except BaseException:
            sock.close()
            raise
        self.socket = sock

    def disconnect(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None


class Notifier:
    """Sends READY, STATUS, WATCHDOG and STOPPING to systemd; does nothing outside systemd.

    Build it with :meth:`from_environ`. Every method is safe to call whether or not
    ``NOTIFY_SOCKET`` is set, never raises, and sends from the calling process (no
    forking), which is what ``NotifyAccess=main`` requires.

    Attributes:
        enabled: a usable ``NOTIFY_SOCKET`` was given.
        watchdog_s: ``WATCHDOG_USEC`` in seconds when the watchdog is ours, else None.
        tick_s: how often the caller's loop must wake to call :meth:`heartbeat`
            (a quarter of the watchdog interval, or :data:`DEFAULT_TICK_S`).
    """

    def __init__(
        self,
        address: Optional[str],
        watchdog_s: Optional[float],
        monotonic: Callable[[], float] = time.monotonic,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ) -> None:
        self._sender = (_EnvSystemdNotifier(address, send_timeout_s)
                        if address is not None else None)
        self.enabled = self._sender is not None
        self.watchdog_s = watchdog_s if self.enabled else None
        # Waking every quarter interval and pinging at most every half interval keeps
        # the gap between two pings under three quarters of the interval (the loop may
        # wake just before the half mark and skip a ping), as sd_watchdog_enabled(3) asks.
        self.tick_s = self.watchdog_s / 4 if self.watchdog_s else DEFAULT_TICK_S
        self._ping_every_s = self.watchdog_s / 2 if self.watchdog_s else None
        self._monotonic = monotonic
        self._last_ping: Optional[float] = None
        self._failing = False
        self._lock = threading.Lock()
        if self._sender is not None:
            try:
                self._sender.connect()
            except (OSError, ValueError) as exc:
                # The next send tries again; a socket that appears later still works.
                self._log_failure("connect", exc)

    @classmethod
    def from_environ(
        cls,
        env: Mapping[str, str],
        pid: int,
        monotonic: Callable[[], float] = time.monotonic,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ) -> "Notifier":
        """Build a notifier from ``env`` (the process environment, or a dict in tests).

        ``pid`` is our own pid (``os.getpid()``), checked against ``WATCHDOG_PID``.
        Without ``NOTIFY_SOCKET`` the result is a no-op notifier.
        """
        raw = env.get("NOTIFY_SOCKET")
        address = _socket_address(raw)
        if raw and address is None:
            log.debug("notify disabled reason=unsupported-address notify_socket=%r", raw)
        watchdog_s = watchdog_interval(env, pid) if address else None
        return cls(address, watchdog_s, monotonic, send_timeout_s)

    def ready(self, status: str = "") -> None:
        """Tell systemd that start-up is complete (``READY=1``), with an optional status."""
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        """Set the one-line status shown by ``systemctl status`` (``STATUS=``)."""
        self._send(None, text)

    def heartbeat(self) -> None:
        """Feed the watchdog (``WATCHDOG=1``), at most once per half interval.

        Call it only from real progress of the main loop (between pages, while waiting
        for jobs, during the sleep between passes): a stuck loop must stop the pings so
        that systemd restarts us. A no-op without a watchdog.
        """
        if self._ping_every_s is None:
            return
        now = self._monotonic()
        with self._lock:
            if self._last_ping is not None and now - self._last_ping < self._ping_every_s:
                return
            self._last_ping = now
        self._send("WATCHDOG=1", "")

    def stopping(self, status: str = "") -> None:
        """Tell systemd that shutdown has begun (``STOPPING=1``), with an optional status."""
        self._send("STOPPING=1", status)

    def _send(self, state: Optional[str], status: str) -> None:
        if self._sender is None:
            return
        lines = [state] if state else []
        if status or state is None:
            lines.append("STATUS=" + sanitize_status(status))
        message = "\n".join(lines)
        with self._lock:
            try:
                self._send_locked(message)
            except (OSError, ValueError) as exc:  # ValueError: e.g. a NUL byte in the path
                self._sender.disconnect()
                self._log_failure("send", exc)
            else:
                self._failing = False

    def _send_locked(self, message: str) -> None:
        sender = self._sender
        if sender.socket is None:
            sender.connect()
            sender.notify(message)
            return
        try:
            sender.notify(message)
        except ConnectionError:
            # The receiving socket may have been re-created since we connected (a
            # connected datagram socket stays bound to the old one): reconnect once.
            sender.disconnect()
            sender.connect()
            sender.notify(message)

    def _log_failure(self, what: str, exc: Exception) -> None:
        # Once per run of failures: outside a healthy systemd every message would fail.
        if not self._failing:
            self._failing = True
            log.debug("notify %s failed error=%s detail=%s", what, exc.__class__.__name__, exc)
