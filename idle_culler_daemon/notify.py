"""The systemd notification protocol (sd_notify): the only module that talks to systemd.

``sdnotify.SystemdNotifier`` through its public API, plus what sdnotify leaves out: a no-op
outside systemd (with ``debug=True`` sdnotify raises when ``NOTIFY_SOCKET`` is unset);
``STATUS=`` text made ASCII, short and free of control characters (sdnotify silently drops
text that is not Latin-1, and a user name must not start a new ``KEY=VALUE`` line such as
``\\nREADY=1``); ``WATCHDOG_USEC``/``WATCHDOG_PID`` (sdnotify reads neither); failures that
never raise and are logged once at DEBUG. Of this package it imports only ``log``.
"""

import re
import time
from typing import Callable, Mapping, Optional

import sdnotify

from idle_culler_daemon.log import get_logger

log = get_logger(__name__)

#: How often the loop wakes without a watchdog: only bounds how late a stop request is seen.
DEFAULT_TICK_S = 5.0
#: systemd drops datagrams over 4096 bytes and `systemctl status` shows one line.
STATUS_MAX_CHARS = 200

# C0 and C1 control characters and DEL. Whitespace controls become a space, the others go.
_WHITESPACE_CONTROLS = re.compile(r"[\t\n\v\f\r]+")
_OTHER_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def watchdog_interval(env: Mapping[str, str], pid: int) -> Optional[float]:
    """Return the watchdog interval in seconds that systemd expects from ``pid``, or None.

    As ``sd_watchdog_enabled(3)``: ``WATCHDOG_USEC`` must be a positive integer, and
    ``WATCHDOG_PID``, when set, must be ``pid`` (else the variables were meant for another
    process, e.g. a parent that exec'd us). Anything unparsable means "no watchdog".
    """
    usec, owner = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID")
    if not (usec.isascii() and usec.isdigit() and int(usec) > 0):
        return None
    if owner is not None and not (owner.isascii() and owner.isdigit() and int(owner) == pid):
        return None
    return int(usec) / 1_000_000


def sanitize_status(text: str, limit: int = STATUS_MAX_CHARS) -> str:
    """Make ``text`` one safe ``STATUS=`` line: ASCII, no control characters, short.

    Non-ASCII characters become backslash escapes (``j\\xfcrgen``), so nothing is lost and
    sdnotify's Latin-1 encoding cannot fail. Longer than ``limit``: cut, ending in ``...``.
    """
    text = _OTHER_CONTROLS.sub("", _WHITESPACE_CONTROLS.sub(" ", text))
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


class Notifier:
    """Sends READY, STATUS, WATCHDOG, RELOADING and STOPPING to systemd; nothing outside it.

    Build it with :meth:`from_environ`; no method raises. Messages leave from the calling
    process, as ``NotifyAccess=main`` requires. Attributes: ``enabled`` (connected to systemd),
    ``watchdog_s`` (``WATCHDOG_USEC`` in seconds when the watchdog is ours, else None) and
    ``tick_s`` (the longest the caller may go between two :meth:`heartbeat` calls).
    """

    def __init__(self, sender: Optional[sdnotify.SystemdNotifier], watchdog_s: Optional[float],
                 monotonic: Callable[[], float] = time.monotonic,
                 monotonic_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._sender = sender
        self.enabled = sender is not None
        self.watchdog_s = watchdog_s if self.enabled else None
        # With W the interval, a heartbeat pings when it comes at least tick_s = W/4 after the
        # last ping. One that comes sooner is skipped, but the next follows within W/4 of it,
        # so less than 2 x W/4 = W/2 after the ping: gaps stay under half the interval, as
        # sd_watchdog_enabled(3) asks, with at most four pings per interval however often.
        self.tick_s = self.watchdog_s / 4 if self.watchdog_s else DEFAULT_TICK_S
        self._monotonic = monotonic
        self._monotonic_ns = monotonic_ns  # CLOCK_MONOTONIC, the clock MONOTONIC_USEC is on
        self._last_ping: Optional[float] = None
        self._failed = False

    @classmethod
    def from_environ(cls, env: Mapping[str, str], pid: int,
                     monotonic: Callable[[], float] = time.monotonic) -> "Notifier":
        """Build a notifier from ``env``, the process environment (a dict in tests).

        ``pid`` is ours, checked against ``WATCHDOG_PID``. Without ``NOTIFY_SOCKET`` in ``env``
        the notifier does nothing; with it, sdnotify reads the address from ``os.environ``.
        """
        if not env.get("NOTIFY_SOCKET"):
            return cls(None, None, monotonic)
        try:
            sender = sdnotify.SystemdNotifier(debug=True)  # debug: errors reach us, not dropped
        except Exception as exc:  # in debug mode sdnotify re-raises whatever connecting raised
            log.debug("notify-disabled", error=exc.__class__.__name__, detail=str(exc))
            return cls(None, None, monotonic)
        return cls(sender, watchdog_interval(env, pid), monotonic)

    def ready(self, status: str = "") -> None:
        """Tell systemd that start-up is complete (``READY=1``), with an optional status."""
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        """Set the one-line status shown by ``systemctl status`` (``STATUS=``)."""
        self._send("", text)

    def heartbeat(self) -> None:
        """Feed the watchdog (``WATCHDOG=1``): call it at least every tick_s, from one thread.

        Call it only from progress of the main loop: a stuck loop must stop the pings, so
        that systemd restarts us. A no-op without a watchdog.
        """
        now = self._monotonic()
        if self.watchdog_s and (self._last_ping is None or now - self._last_ping >= self.tick_s):
            self._last_ping = now
            self._send("WATCHDOG=1", "")

    def reloading(self, status: str = "") -> None:
        """Tell systemd that a reload has begun: ``RELOADING=1`` with ``MONOTONIC_USEC=``.

        The two travel in one message, as ``Type=notify-reload`` (systemd 253 and later)
        requires; systemd 252 takes ``RELOADING=1`` alone and shows the unit as reloading.
        Follow it with :meth:`ready` once the new configuration is in force, or refused.
        """
        usec = self._monotonic_ns() // 1000
        self._send("RELOADING=1\nMONOTONIC_USEC=%d" % usec, status)

    def stopping(self, status: str = "") -> None:
        """Tell systemd that shutdown has begun (``STOPPING=1``), with an optional status."""
        self._send("STOPPING=1", status)

    def _send(self, state: str, status: str) -> None:
        if self._sender is None:
            return
        lines = [state] if state else []
        if status or not state:
            lines.append("STATUS=" + sanitize_status(status))
        try:
            # Blocking while systemd's queue is full, as sd_notify(3) does: PID 1 empties it in
            # its main loop, and a timeout would only turn a late READY or STOPPING into a lost one.
            self._sender.notify("\n".join(lines))
        except Exception as exc:  # in debug mode sdnotify re-raises whatever sending raised
            if not self._failed:  # once: when one send fails, the following ones usually do too
                log.debug("notify-failed", error=exc.__class__.__name__, detail=str(exc))
            self._failed = True
