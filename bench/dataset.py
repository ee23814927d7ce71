"""The benchmark's seeded dataset, and what a correct pass must do with it.

Every user belongs to one category; the category fixes what a correct pass does (which servers
it stops, whether it deletes the user) under the benchmark's flags:

    --timeout=3600 --cull-users=true --cull-admin-users=false --remove-named-servers=true

Timestamps are drawn at random (seeded) inside ranges that keep every decision at least 600 s
away from the 3600 s threshold, so the few seconds between building the data and the culler's
``now`` never change a verdict. Users are listed in a shuffled order (the hub lists by id), and
a fixed set of odd names (``@``, ``'``, space, non-ASCII, ``+``, ``#``, ``?``, ``%``) is mixed
in at every size; some of them have a plain-named neighbour (``c`` next to ``c#d``, ``q`` next
to ``q?x``) that a client which does not quote path segments hits instead.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Dict, List, Optional, Set, Tuple

from tests.support.fakehub import FakeServer, FakeUser

TIMEOUT_S = 3600
# The same flags for both cullers (ours adds --once): see the module docstring.
CULLER_FLAGS = (
    "--timeout=%d" % TIMEOUT_S,
    "--cull-every=86400",  # the reference must not start a second pass while we watch it
    "--concurrency=10",
    "--cull-users=true",
    "--cull-admin-users=false",
    "--remove-named-servers=true",
)
SLOW_SUFFIX = "-slow"  # users whose stop answers 202 (pattern "*-slow" at the fake hub)
NAMED = "nb"           # the name of the idle named server of the "named-*" categories

MINUTE, HOUR, DAY = 60, 3600, 86400

# Category -> share of the users. Stops come from idle*, named*, never-old, slow, near-stop.
WEIGHTS: Dict[str, float] = {
    "active": 0.38,             # default server used recently: keep
    "idle": 0.08,               # idle default server, idle user: stop, delete the user
    "idle-recent-login": 0.05,  # idle server, user active at the hub recently: stop only
    "idle-admin": 0.01,         # idle admin: stop; the user stays (--cull-admin-users=false)
    "pending-spawn": 0.03,      # old server still spawning: keep (state=ready drops it)
    "pending-stop": 0.01,       # server being stopped: keep
    "named-mixed": 0.04,        # default server active, named server idle: stop named only
    "named-all-idle": 0.02,     # two idle named servers, idle user: stop both, delete user
    "never-active-old": 0.02,   # server without last_activity, started long ago: stop, delete
    "never-active-new": 0.01,   # server without last_activity, started recently: keep
    "inactive-idle": 0.12,      # no server, idle for days: delete
    "inactive-recent": 0.13,    # no server, active recently: keep
    "inactive-never": 0.02,     # no server, never active, created long ago: delete
    "inactive-never-new": 0.01, # no server, never active, created recently: keep
    "inactive-admin": 0.01,     # idle admin without server: keep
    "slow": 0.01,               # idle, the stop answers 202: stop sent, user kept
    "near-keep": 0.03,          # idle 0.75-0.85 x timeout: keep
    "near-stop": 0.02,          # idle 1.17-1.4 x timeout: stop, delete
}


@dataclass
class Expectation:
    """What a correct pass does, and the inputs of the lower bound."""

    stops: Set[Tuple[str, str]] = field(default_factory=set)  # (user, server) with a DELETE
    deletes: Set[str] = field(default_factory=set)            # users with DELETE /users/{u}
    ready_selection: int = 0     # users with any running or pending server (state=ready total)
    inactive_selection: int = 0  # users without (state=inactive total)
    categories: Dict[str, int] = field(default_factory=dict)

    def pages(self, page_size: int = 50) -> int:
        """List pages a correct pass reads: state=ready, and state=inactive (--cull-users)."""
        return (max(1, math.ceil(self.ready_selection / page_size))
                + max(1, math.ceil(self.inactive_selection / page_size)))

    def listings(self, page_size: int = 50) -> List[int]:
        return [max(1, math.ceil(self.ready_selection / page_size)),
                max(1, math.ceil(self.inactive_selection / page_size))]


def _ago(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)


class _Builder:
    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now

    def idle_s(self) -> float:
        return self.rng.uniform(2 * HOUR, 30 * DAY)

    def recent_s(self) -> float:
        return self.rng.uniform(MINUTE, 0.5 * TIMEOUT_S)

    def server(self, idle: Optional[float], started_extra: Optional[float] = None, *,
               ready: bool = True, pending: Optional[str] = None) -> FakeServer:
        base = idle if idle is not None else 0.0
        extra = self.rng.uniform(0, DAY) if started_extra is None else started_extra
        return FakeServer(ready=ready, pending=pending, started=_ago(self.now, base + extra),
                          last_activity=None if idle is None else _ago(self.now, idle))

    def user(self, name: str, servers: Dict[str, FakeServer], user_idle: Optional[float], *,
             admin: bool = False, created_s: Optional[float] = None) -> FakeUser:
        oldest = max([0.0] + [(self.now - s.started).total_seconds()
                              for s in servers.values() if s.started is not None])
        if created_s is None:
            created_s = max(oldest, user_idle or 0.0) + self.rng.uniform(0, 30 * DAY)
        return FakeUser(name=name, admin=admin, created=_ago(self.now, created_s),
                        last_activity=None if user_idle is None else _ago(self.now, user_idle),
                        servers=servers)


def _make(category: str, name: str, b: _Builder, expect: Expectation) -> FakeUser:
    """Build one user of ``category`` and record what a correct pass does with it."""
    stop = expect.stops.add
    delete = expect.deletes.add
    if category == "active":
        idle = b.recent_s()
        return b.user(name, {"": b.server(idle)}, idle)
    if category in ("idle", "slow", "idle-admin", "idle-recent-login", "near-stop"):
        idle = b.rng.uniform(1.17 * TIMEOUT_S, 1.4 * TIMEOUT_S) if category == "near-stop" \
            else b.idle_s()
        user_idle = b.recent_s() if category == "idle-recent-login" else idle
        stop((name, ""))
        if category in ("idle", "near-stop"):
            delete(name)
        return b.user(name, {"": b.server(idle)}, user_idle, admin=category == "idle-admin")
    if category == "near-keep":
        idle = b.rng.uniform(0.75 * TIMEOUT_S, 0.85 * TIMEOUT_S)
        return b.user(name, {"": b.server(idle)}, idle)
    if category in ("pending-spawn", "pending-stop"):
        idle = b.idle_s()
        pending = category.split("-")[1]
        return b.user(name, {"": b.server(idle, ready=False, pending=pending)}, idle)
    if category == "named-mixed":
        active, idle = b.recent_s(), b.idle_s()
        stop((name, NAMED))
        return b.user(name, {"": b.server(active), NAMED: b.server(idle)}, active)
    if category == "named-all-idle":
        first, second = b.idle_s(), b.idle_s()
        stop((name, NAMED))
        stop((name, NAMED + "-2"))
        delete(name)
        return b.user(name, {NAMED: b.server(first), NAMED + "-2": b.server(second)},
                      min(first, second))
    if category == "never-active-old":
        started = b.rng.uniform(2 * HOUR, 5 * DAY)
        stop((name, ""))
        delete(name)
        return b.user(name, {"": b.server(None, started)}, None)
    if category == "never-active-new":
        started = b.recent_s()
        return b.user(name, {"": b.server(None, started)}, None, created_s=started + 1)
    if category == "inactive-idle":
        delete(name)
        return b.user(name, {}, b.rng.uniform(2 * HOUR, 90 * DAY))
    if category == "inactive-recent":
        return b.user(name, {}, b.recent_s())
    if category == "inactive-never":
        delete(name)
        return b.user(name, {}, None, created_s=b.rng.uniform(2 * HOUR, 90 * DAY))
    if category == "inactive-never-new":
        return b.user(name, {}, None, created_s=b.recent_s())
    if category == "inactive-admin":
        return b.user(name, {}, b.idle_s(), admin=True)
    raise ValueError("unknown category %r" % category)


# Odd names, at every size: (name, category); "odd-server-*" adds an odd named server.
ODD_USERS: Tuple[Tuple[str, str], ...] = (
    ("alice@example.org", "idle"),
    ("o'brien", "idle"),
    ("name with space", "idle"),
    ("ünïcødé-用户", "idle"),
    ("a+b", "idle"),
    ("c#d", "idle"),          # an unquoted DELETE /users/c#d reaches user "c"
    ("c", "active"),
    ("q?x", "inactive-idle"), # an unquoted DELETE /users/q?x reaches user "q"
    ("q", "inactive-recent"),
    ("percent%41", "inactive-idle"),  # unquoted, the hub decodes it to "percentA"
    ("dot.name", "odd-server-space"),
    ("srv-user", "odd-server-hash"),
)


def _odd(category: str, name: str, b: _Builder, expect: Expectation) -> FakeUser:
    if category.startswith("odd-server"):
        server = "my server" if category.endswith("space") else "gpu#1"
        active, idle = b.recent_s(), b.idle_s()
        expect.stops.add((name, server))
        return b.user(name, {"": b.server(active), server: b.server(idle)}, active)
    return _make(category, name, b, expect)


def build(size: int, seed: int, now: datetime) -> Tuple[List[FakeUser], Expectation]:
    """``size`` users (odd names included), in listing order, and the expectation."""
    rng = random.Random(seed)
    b = _Builder(rng, now)
    expect = Expectation()
    regular = size - len(ODD_USERS)
    if regular < 0:
        raise ValueError("size must be at least %d" % len(ODD_USERS))
    categories: List[str] = []
    for category, weight in WEIGHTS.items():
        if category != "active":
            categories += [category] * int(round(weight * size))
    categories = categories[:regular]
    categories += ["active"] * (regular - len(categories))
    rng.shuffle(categories)
    users: List[FakeUser] = []
    for index, category in enumerate(categories):
        name = "user%06d" % index + (SLOW_SUFFIX if category == "slow" else "")
        users.append(_make(category, name, b, expect))
        expect.categories[category] = expect.categories.get(category, 0) + 1
    for name, category in ODD_USERS:
        users.insert(rng.randrange(len(users) + 1), _odd(category, name, b, expect))
        expect.categories["odd-name"] = expect.categories.get("odd-name", 0) + 1
    for user in users:
        if any(server.active for server in user.servers.values()):
            expect.ready_selection += 1
        else:
            expect.inactive_selection += 1
    return users, expect


# --check-kernels: what the idle servers' own answers say, as shares of the planned stops.
KERNEL_SHARES = (("busy", 0.05), ("active", 0.05), ("idle-kernels", 0.30))


def add_kernels(users: List[FakeUser], expect: Expectation, seed: int,
                now: datetime) -> Dict[str, int]:
    """Give the servers a correct pass would stop what a culler with ``--check-kernels`` sees.

    Seeded shares of them: a busy kernel (kept; the user too), recent activity of the server's
    own (kept; the user too), two idle kernels (stopped after api/status and api/kernels); the
    rest run no kernel (stopped after api/status alone). Every other server runs no kernel and
    is never asked. Returns the requests and decisions a correct pass makes.
    """
    rng = random.Random(seed + 1)
    by_name = {user.name: user for user in users}
    counts = {"status_gets": 0, "kernels_gets": 0, "kept_busy": 0, "kept_active": 0}
    for name, server_name in sorted(expect.stops):
        server = by_name[name].servers[server_name]
        counts["status_gets"] += 1
        draw, kind = rng.random(), "none"
        for candidate, share in KERNEL_SHARES:
            if draw < share:
                kind = candidate
                break
            draw -= share
        if kind == "busy":
            server.kernels = ("idle", "busy")
            counts["kernels_gets"] += 1
            counts["kept_busy"] += 1
        elif kind == "active":
            server.kernels = ("idle",)
            server.own_last_activity = now - timedelta(seconds=rng.uniform(MINUTE, TIMEOUT_S / 2))
            counts["kept_active"] += 1
        elif kind == "idle-kernels":
            server.kernels = ("idle", "idle")
            counts["kernels_gets"] += 1
        if kind in ("busy", "active"):
            expect.stops.discard((name, server_name))
            expect.deletes.discard(name)
    return counts
