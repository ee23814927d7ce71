"""Shared machinery of the fault and soak tests: a population with known verdicts, the
invariants, an in-process culler and a daemon subprocess whose stderr is read in a thread.

The invariants (issue "Proof at scale"):

1. no server whose ``last_activity`` is within the timeout is ever the target of a stop, and no
   user active within the timeout is ever deleted (checked on every DELETE the hub *received*,
   whatever it answered: a request that was sent is a decision that was taken);
2. every idle server is stopped within two passes once the hub is healthy again;
3. the daemon keeps running: only configuration errors end it (in process: a pass returns
   its figures, it never raises);
4. the token never appears in the output.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Dict, List, Optional, Set, Tuple

from idle_culler_daemon.config import CullSettings, HubSettings
from idle_culler_daemon.cull import Runtime, run_pass
from idle_culler_daemon.hub import HubClient, RetryPolicy
from idle_culler_daemon.log import TextFormatter
from idle_culler_daemon.stats import PassStats
from tests.end_to_end.conftest import culler_env
from tests.support.fakehub import (
    ROUTE_DELETE_USER,
    ROUTE_STOP_SERVER,
    FakeHub,
    FakeUser,
    idle_user,
    inactive_user,
    make_server,
    pending_user,
    user_with_servers,
    utcnow,
)

TIMEOUT_S = 3600   # --timeout of every fault and soak test
IDLE_S = 7200      # "clearly idle": twice the timeout
ACTIVE_S = 10      # "clearly active": far inside the timeout, for the whole length of a test

ServerKey = Tuple[str, str]  # (user, server name; "" for the default server)


# ---------------------------------------------------------------------------------------------
# What the hub received


def stop_targets(hub: FakeHub) -> List[ServerKey]:
    """Every (user, server) a stop was *sent* for, whatever the hub answered."""
    return [(record.user or "", record.server or "")
            for record in hub.records("DELETE", ROUTE_STOP_SERVER)]


def delete_targets(hub: FakeHub) -> List[str]:
    """Every user a deletion was *sent* for, whatever the hub answered."""
    return [record.user or "" for record in hub.records("DELETE", ROUTE_DELETE_USER)]


# ---------------------------------------------------------------------------------------------
# A population whose verdicts are known


@dataclass
class Population:
    """Users added to a hub, split into what must be stopped and what must never be.

    ``idle``: servers idle for ``IDLE_S`` (must be stopped); ``protected``: servers active
    ``ACTIVE_S`` ago, pending, or with activity in the future (must never be stopped);
    ``protected_users``: users active within the timeout, or with a server alive (must never
    be deleted); ``deletable``: users without any server, idle for ``IDLE_S`` (must be deleted
    when the culler deletes users).
    """

    idle: Set[ServerKey] = field(default_factory=set)
    protected: Set[ServerKey] = field(default_factory=set)
    protected_users: Set[str] = field(default_factory=set)
    deletable: Set[str] = field(default_factory=set)


def populate(hub: FakeHub, tag: str = "", idle: int = 6, active: int = 6, gone: int = 2,
             now: Optional[datetime] = None) -> Population:
    """Add a mixed population, idle and active users interleaved so that they spread over
    every page, plus the awkward cases: a user with an active default server and an idle
    named one, a pending server, servers and a user whose activity is in the future, and
    users without servers (``gone``)."""
    now = utcnow() if now is None else now
    people = Population()
    users: List[FakeUser] = []
    for index in range(max(idle, active)):
        if index < idle:
            name = "idle%s-%d" % (tag, index)
            users.append(idle_user(name, IDLE_S, now))
            people.idle.add((name, ""))
        if index < active:
            name = "busy%s-%d" % (tag, index)
            users.append(idle_user(name, ACTIVE_S, now, age_s=IDLE_S * 2))
            people.protected.add((name, ""))
            people.protected_users.add(name)
    mixed = "mixed%s" % tag
    users.append(user_with_servers(mixed, {"": ACTIVE_S, "lab": IDLE_S}, now))
    people.idle.add((mixed, "lab"))
    people.protected.add((mixed, ""))
    people.protected_users.add(mixed)
    spawning = "spawning%s" % tag
    users.append(pending_user(spawning, "spawn", now, idle_s=IDLE_S))
    people.protected.add((spawning, ""))
    people.protected_users.add(spawning)  # idle by its timestamps, but its server is alive
    future = "future%s" % tag
    ahead = FakeUser(name=future, created=now - timedelta(days=30),
                     last_activity=now + timedelta(hours=1),
                     servers={"": make_server(-3600, now=now, age_s=IDLE_S),
                              "far": make_server(-86400 * 365 * 50, now=now, age_s=IDLE_S)})
    users.append(ahead)
    people.protected |= {(future, ""), (future, "far")}
    people.protected_users.add(future)
    for index in range(gone):
        name = "gone%s-%d" % (tag, index)
        users.append(inactive_user(name, IDLE_S, now))
        people.deletable.add(name)
    hub.add(*users)
    return people


def assert_protected_untouched(hub: FakeHub, people: Population) -> None:
    """Invariant 1, on every DELETE the hub received so far."""
    wrongly_stopped = sorted(set(stop_targets(hub)) & people.protected)
    assert not wrongly_stopped, "stops sent for servers active within the timeout: %s" % (
        wrongly_stopped,)
    wrongly_deleted = sorted(set(delete_targets(hub)) & people.protected_users)
    assert not wrongly_deleted, "deletions sent for users active within the timeout: %s" % (
        wrongly_deleted,)


def missing_stops(hub: FakeHub, people: Population) -> List[ServerKey]:
    """Idle servers not stopped (answered 200/204) so far."""
    return sorted(people.idle - set(hub.stopped_servers()))


def missing_deletions(hub: FakeHub, people: Population) -> List[str]:
    """Idle users without servers not deleted (answered 200/204) so far."""
    return sorted(people.deletable - set(hub.deleted_users()))


# ---------------------------------------------------------------------------------------------
# Log capture with the daemon's own formatter (for the token check in process)


class LogCapture(logging.Handler):
    """Collects the package's and urllib3's records at DEBUG: raw messages, and the lines the
    daemon would print (its own text formatter, which redacts the token)."""

    def __init__(self, token: str) -> None:
        super().__init__(logging.DEBUG)
        self.formatter_ = TextFormatter(secrets=[token])
        self.raw: List[str] = []
        self.lines: List[str] = []
        self._saved: List[Tuple[logging.Logger, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.raw.append(record.getMessage())
            self.lines.append(self.formatter_.format(record))
        except Exception:  # a record that cannot even be formatted is a finding too
            self.raw.append("UNFORMATTABLE %r %r" % (record.msg, record.args))

    def __enter__(self) -> "LogCapture":
        for name in ("idle_culler_daemon", "urllib3"):
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level))
            logger.setLevel(logging.DEBUG)
            logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for logger, level in self._saved:
            logger.removeHandler(self)
            logger.setLevel(level)

    def text(self) -> str:
        return "\n".join(self.lines)

    def events(self) -> List[str]:
        """The event names of the lines (``time=... level=... event=NAME ...``)."""
        return [line.split(" ", 3)[2][len("event="):] for line in self.lines
                if line.count(" ") >= 2 and line.split(" ", 3)[2].startswith("event=")]


# ---------------------------------------------------------------------------------------------
# In-process passes with the real HubClient


class InProcessCuller:
    """The real HubClient, thread pool and ``run_pass``, one pass per call."""

    def __init__(self, hub: FakeHub, settings: Optional[CullSettings] = None,
                 concurrency: int = 4, page_size: int = 5, read_timeout: float = 1.0,
                 backoff_factor: float = 0.1) -> None:
        self.settings = settings or CullSettings(timeout=TIMEOUT_S)
        self.concurrency = concurrency
        self.client = HubClient(
            HubSettings(api_url=hub.api_url, token=hub.token, read_timeout=read_timeout,
                        page_size=page_size, pool_size=concurrency),
            RetryPolicy(connect_timeout=1.0, backoff_factor=backoff_factor))
        self.executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cull")
        self.passes: List[PassStats] = []

    def run_pass(self) -> PassStats:
        stats = run_pass(self.client, self.settings, datetime.now(timezone.utc),
                         Runtime(self.executor, self.concurrency))
        self.passes.append(stats)
        return stats

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.client.close()


# ---------------------------------------------------------------------------------------------
# The daemon as a subprocess


@dataclass
class ProcessFigures:
    threads: int
    fds: int
    rss_kb: int


def process_figures(pid: int) -> ProcessFigures:
    """Threads, open file descriptors and resident memory of a live process (Linux /proc)."""
    status: Dict[str, str] = {}
    with open("/proc/%d/status" % pid, encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    return ProcessFigures(threads=int(status["Threads"]),
                          fds=len(os.listdir("/proc/%d/fd" % pid)),
                          rss_kb=int(status["VmRSS"].split()[0]))


class Daemon:
    """``python -m idle_culler_daemon`` in the background; stdout and stderr read by threads.

    ``log_format="json"`` is parsed into events; every line is kept (a pass logs a handful).
    Waits are on a condition notified for every line, always bounded.
    """

    def __init__(self, hub: FakeHub, *args: str, log_format: str = "json",
                 token: Optional[str] = None) -> None:
        self.token = hub.token if token is None else token
        command = [sys.executable, "-m", "idle_culler_daemon", "--url=" + hub.api_url,
                   "--log-format=" + log_format] + list(args)
        self.log_format = log_format
        self.lines: List[str] = []
        self.stdout: List[str] = []
        self.events: List[dict] = []
        self.pass_done: List[dict] = []
        self.pass_done_at: List[float] = []  # monotonic time each pass-done line was read
        self.aborted: Set[int] = set()  # numbers of the passes that logged pass-aborted
        self._changed = threading.Condition()
        self._on_pass: List[Callable[[int, dict], None]] = []
        self.process = subprocess.Popen(command, env=culler_env(self.token),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, bufsize=1)
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stderr, True),
                             name="daemon-stderr", daemon=True),
            threading.Thread(target=self._read, args=(self.process.stdout, False),
                             name="daemon-stdout", daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def on_pass(self, callback: Callable[[int, dict], None]) -> None:
        """Call ``callback(pass_number, event)`` from the reader thread after each pass-done.

        The daemon is then sleeping until its next pass (``--cull-every`` start to start), so a
        callback that changes the hub at once lands between two passes.
        """
        self._on_pass.append(callback)

    def _read(self, stream, is_stderr: bool) -> None:
        for line in stream:
            line = line.rstrip("\n")
            event = None
            if is_stderr and self.log_format == "json":
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"event": "unparsed", "line": line}
            elif is_stderr:  # logfmt: time=... level=... event=NAME ...
                named = [word[len("event="):] for word in line.split(" ")[:3]
                         if word.startswith("event=")]
                event = {"event": named[0] if named else "unparsed", "line": line}
            callbacks: List[Callable[[int, dict], None]] = []
            with self._changed:
                (self.lines if is_stderr else self.stdout).append(line)
                if event is not None:
                    self.events.append(event)
                    if event.get("event") == "pass-aborted":
                        self.aborted.add(len(self.pass_done) + 1)
                    if event.get("event") == "pass-done":
                        self.pass_done.append(event)
                        self.pass_done_at.append(time.monotonic())
                        callbacks = list(self._on_pass)
                number = len(self.pass_done)
            for callback in callbacks:
                callback(number, event)
            with self._changed:
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def passes(self) -> int:
        with self._changed:
            return len(self.pass_done)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate()`` holds (checked on every line); fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out after %.0fs waiting for %s; daemon %s; "
                                         "last lines:\n%s" % (timeout, what, self.state(),
                                                              "\n".join(self.lines[-15:])))
                if self.process.poll() is not None and not any(
                        reader.is_alive() for reader in self._readers):
                    raise AssertionError("the daemon ended (exit %s) while waiting for %s; "
                                         "last lines:\n%s" % (self.process.returncode, what,
                                                              "\n".join(self.lines[-6:])))
                self._changed.wait(min(left, 0.5))

    def wait_passes(self, count: int, timeout: float) -> None:
        """Wait until ``count`` pass-done lines have been seen in total."""
        self.wait_for(lambda: len(self.pass_done) >= count, timeout,
                      "pass-done number %d" % count)

    def state(self) -> str:
        code = self.process.poll()
        return "running" if code is None else "exited with %s" % code

    def alive(self) -> bool:
        return self.process.poll() is None

    def events_named(self, name: str) -> List[dict]:
        with self._changed:
            return [event for event in self.events if event.get("event") == name]

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines + self.stdout)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait (bounded); returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(5.0)
        return code

    def kill(self) -> None:
        """Last resort in ``finally``: never leave the process behind."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for reader in self._readers:
            reader.join(5.0)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
