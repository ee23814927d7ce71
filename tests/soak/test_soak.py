"""Soak: 300 passes of the daemon at ``--cull-every=1`` against a churning fake hub.

Between every two passes (right after a ``pass-done`` line, while the daemon sleeps) users and
servers come and go: new idle and active users, users with an active default server and an
idle named one, users without servers, random removals behind the culler's back, active
servers turning idle. Every few passes a transient fault (502, a connection reset, a 503 on a
stop), now and then a page of broken JSON (which aborts that pass) and a hub restart.

Checked throughout:
* no stop is ever sent for a server active within the timeout, nor a deletion for a user
  active within it (every DELETE the hub received, whatever it answered);
* every idle server is stopped by the end of the second pass after it became idle (or after
  the last aborted pass, whichever is later), unless it was removed meanwhile;
* the daemon keeps running; SIGTERM at the end gives exit 0; the token is not in the output;
* threads, open file descriptors and RSS of the daemon stay flat: measured at pass 10 and at
  pass 300 (and every pass in between), printed and written to ``.cache/soak-figures.json``.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import time
from collections import Counter
from typing import Dict, List, Set, Tuple

import pytest

from tests.faults.helpers import (
    ACTIVE_S,
    IDLE_S,
    TIMEOUT_S,
    Daemon,
    ProcessFigures,
    delete_targets,
    process_figures,
    stop_targets,
)
from tests.support.fakehub import ago, idle_user, inactive_user, user_with_servers, utcnow

PASSES = 300
BASELINE_PASS = 10  # pools and the worker threads are warm by then
ARGS = ("--cull-every=1", "--timeout=%d" % TIMEOUT_S, "--request-timeout=2",
        "--api-page-size=20", "--concurrency=10", "--cull-users", "--remove-named-servers")
FIGURES = pathlib.Path(__file__).resolve().parents[2] / ".cache" / "soak-figures.json"

# Bounds, decided from a measured run (Debian 12, Python 3.11, 2 cores; 300 passes, ~5400
# requests, ~1500 stops, ~1250 deletions, 6 aborted passes, 5 hub restarts): threads 11 at
# pass 10 and at pass 300 and in every sample between (the main thread and the ten workers of
# --concurrency=10), fds 13 throughout (stdio and the pooled keep-alive connections), RSS
# 33.2 MB -> 33.7 MB. Slack of 2 threads and 2 fds for a timer thread or a replaced pooled
# connection caught on its way out: a leak of one per pass would be ~290. The pool keeps as
# many keep-alive connections as requests were ever in flight at once, up to --concurrency + 1,
# so fds may still grow after pass 10 until requests happen to overlap more (how many do
# depends on timing, and a hub restart empties the pool): a CI run measured fds 10 at pass 10
# and 13 at pass 300, with culler code that had passed the old bound of 2 in the run before.
# The fds bound is therefore that pool, plus the slack. RSS: the brief's 5 MB, ten times the
# measured growth (allocator arenas and caches warming up); leaking the models of one page per
# pass would exceed it.
THREAD_SLACK = 2
FD_SLACK = 2
POOLED_CONNECTIONS = 10 + 1  # --concurrency=10, and the main thread's
RSS_GROWTH_LIMIT_KB = 5 * 1024


class Churn:
    """Changes the hub between passes and keeps the ledger the invariants are checked on."""

    def __init__(self, hub, seed: int = 20261126) -> None:
        self.hub = hub
        self.random = random.Random(seed)
        self.counter = 0
        self.protected: Set[Tuple[str, str]] = set()   # active servers, never to be stopped
        self.protected_users: Set[str] = set()         # active users, never to be deleted
        self.deadline: Dict[Tuple[str, str], int] = {}  # idle server -> pass it must be gone by
        self.removed: Set[str] = set()
        self.violations: List[str] = []
        self.stops_checked = 0
        self.deletes_checked = 0

    def name(self, kind: str) -> str:
        self.counter += 1
        return "%s-%05d" % (kind, self.counter)

    def add_users(self, passes_done: int, idle: int, active: int, mixed: int, gone: int
                  ) -> None:
        now = utcnow()
        users = []
        due = passes_done + 2
        for _ in range(idle):
            name = self.name("idle")
            users.append(idle_user(name, IDLE_S, now))
            self.deadline[(name, "")] = due
        for _ in range(active):
            name = self.name("busy")
            users.append(idle_user(name, ACTIVE_S, now, age_s=IDLE_S))
            self.protected.add((name, ""))
            self.protected_users.add(name)
        for _ in range(mixed):
            name = self.name("mixed")
            users.append(user_with_servers(name, {"": ACTIVE_S, "lab": IDLE_S}, now))
            self.protected.add((name, ""))
            self.protected_users.add(name)
            self.deadline[(name, "lab")] = due
        for _ in range(gone):
            users.append(inactive_user(self.name("gone"), IDLE_S, now))
        self.hub.add(*users)

    def turn_idle(self, passes_done: int) -> None:
        """An active default server's last activity moves two hours back."""
        candidates = sorted(key for key in self.protected
                            if key[0].startswith("busy") and key[0] not in self.removed)
        if not candidates:
            return
        key = self.random.choice(candidates)
        self.protected.discard(key)  # the user's own activity stays recent: still protected
        self.hub.update_server(key[0], key[1], last_activity=ago(IDLE_S))
        self.deadline[key] = passes_done + 2

    def remove_some(self, count: int) -> None:
        names = self.hub.user_names()
        for name in self.random.sample(names, min(count, len(names) // 4)):
            self.hub.remove_user(name)
            self.removed.add(name)
            for key in [key for key in self.deadline if key[0] == name]:
                del self.deadline[key]

    def check(self, passes_done: int, aborted_after: int) -> None:
        """Invariants 1 and 2 after ``passes_done`` passes (incrementally over the records)."""
        stops = stop_targets(self.hub)
        for key in stops[self.stops_checked:]:
            if key in self.protected:
                self.violations.append("pass %d: stop sent for active %s" % (passes_done, key))
        self.stops_checked = len(stops)
        deletes = delete_targets(self.hub)
        for user in deletes[self.deletes_checked:]:
            if user in self.protected_users:
                self.violations.append("pass %d: active user %s deleted" % (passes_done, user))
        self.deletes_checked = len(deletes)
        stopped = set(self.hub.stopped_servers())
        for key, due in list(self.deadline.items()):
            if key in stopped:
                del self.deadline[key]
            elif passes_done >= max(due, aborted_after + 2):
                self.violations.append("pass %d: idle %s not stopped (due by pass %d)"
                                       % (passes_done, key, due))
                del self.deadline[key]


def inject_fault(hub, passes_done: int) -> str:
    """The fault for the pass after ``passes_done`` (most passes get none)."""
    if passes_done % 50 == 25:
        hub.faults.add("GET /users", "malformed", query={"state": "ready", "offset": "20"})
        return "malformed-page"
    if passes_done % 60 == 30:
        hub.restart(down_for=0.2)
        return "hub-restart"
    kind = passes_done % 10
    if kind == 3:
        hub.faults.add("GET /users", 502, count=2)
        return "502-burst"
    if kind == 6:
        hub.faults.add("GET /users", "reset")
        return "reset"
    if kind == 8:
        hub.faults.add("DELETE /users/*/server*", 503)
        return "503-on-a-stop"
    return ""


def settled_figures(pid: int) -> ProcessFigures:
    """Figures of the sleeping daemon: the least threads and fds of three readings 30 ms apart,
    so that a timer thread or socket of the pass that just ended, still on its way out, is not
    counted; the RSS of the last reading."""
    readings = []
    for attempt in range(3):
        if attempt:
            time.sleep(0.03)  # a sampling interval, not a wait for an event
        readings.append(process_figures(pid))
    return ProcessFigures(threads=min(r.threads for r in readings),
                          fds=min(r.fds for r in readings), rss_kb=readings[-1].rss_kb)


@pytest.mark.soak
@pytest.mark.timeout(600)
def test_soak_300_passes(fake_hub):
    churn = Churn(fake_hub)
    churn.add_users(0, idle=40, active=120, mixed=20, gone=20)
    daemon = Daemon(fake_hub, *ARGS)
    figures: Dict[int, ProcessFigures] = {}
    faults: Dict[int, str] = {}  # pass number -> the fault it met
    started = time.monotonic()
    last_aborted = -10
    try:
        for number in range(1, PASSES + 1):
            daemon.wait_passes(number, timeout=30)
            # the daemon sleeps now; change the hub for the next pass
            fake_hub.faults.clear()
            if daemon.aborted:
                last_aborted = max(daemon.aborted)
            churn.check(number, last_aborted)
            assert daemon.alive(), "the daemon ended after pass %d" % number
            figures[number] = settled_figures(daemon.pid)
            if number < PASSES:
                churn.remove_some(4)
                churn.add_users(number, idle=3, active=3, mixed=1, gone=1)
                churn.turn_idle(number)
                fault = inject_fault(fake_hub, number)
                if fault:
                    faults[number + 1] = fault
        took = time.monotonic() - started
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
    output = daemon.output()

    base, last = figures[BASELINE_PASS], figures[PASSES]
    samples = [figures[n] for n in range(BASELINE_PASS, PASSES + 1)]
    report = {
        "passes": PASSES, "seconds": round(took, 1),
        "users_in_hub_at_end": len(fake_hub.user_names()),
        "requests": len(fake_hub.records()), "connections": fake_hub.connection_count,
        "stops": len(fake_hub.stopped_servers()), "deletions": len(fake_hub.deleted_users()),
        "aborted_passes": sorted(daemon.aborted),
        "faults": dict(sorted(Counter(faults.values()).items())),
        "at_pass_%d" % BASELINE_PASS: vars(base), "at_pass_%d" % PASSES: vars(last),
        "range_from_pass_%d" % BASELINE_PASS: {
            "threads": [min(s.threads for s in samples), max(s.threads for s in samples)],
            "fds": [min(s.fds for s in samples), max(s.fds for s in samples)],
            "rss_kb": [min(s.rss_kb for s in samples), max(s.rss_kb for s in samples)]},
        "rss_growth_kb": last.rss_kb - base.rss_kb,
        "rss_kb_every_30_passes": [figures[n].rss_kb for n in range(BASELINE_PASS, PASSES + 1, 30)],
    }
    os.makedirs(FIGURES.parent, exist_ok=True)
    FIGURES.write_text(json.dumps(report, indent=2) + "\n")
    print("\nsoak figures: " + json.dumps(report))

    assert not churn.violations, "\n".join(churn.violations[:20])
    assert len(daemon.pass_done) >= PASSES
    assert fake_hub.token not in output, "the API token appears in the daemon's output"
    assert not daemon.events_named("crash") and "Traceback" not in output
    assert took < 600, "300 passes took %.0fs" % took
    assert abs(last.threads - base.threads) <= THREAD_SLACK, report
    assert -FD_SLACK <= last.fds - base.fds <= POOLED_CONNECTIONS + FD_SLACK, report
    assert max(s.threads for s in samples) <= base.threads + THREAD_SLACK, report
    assert max(s.fds for s in samples) <= base.fds + POOLED_CONNECTIONS + FD_SLACK, report
    assert last.rss_kb - base.rss_kb < RSS_GROWTH_LIMIT_KB, report
