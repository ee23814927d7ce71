"""An in-process fake JupyterHub REST API on 127.0.0.1, for integration, fault and benchmark tests.

Why a fake: a real hub needs Node, a proxy and ~2 s to start, and it cannot back-date activity
(its activity API only moves timestamps forward, and starting a server sets them to now). This
fake speaks the part of the JupyterHub 6.x API the culler touches, faithfully where it matters
for correctness:

* ``GET /hub/api/`` (version, no token needed) and ``GET /hub/api/user`` (the token's own model,
  with ``scopes`` unless the hub is told not to report them);
* ``GET /hub/api/users`` with ``state``, ``offset``, ``limit``, ``name_filter`` and
  ``include_stopped_servers``.  Like JupyterHub, ``state=ready``/``active`` first select users
  with any running or pending server, apply offset/limit, report ``total`` for that selection and
  only then drop users without a ready server, so ``ready`` pages can be short.  ``next.url``
  points at a wrong origin on purpose (clients must rebuild it from ``next.offset``);
* ``GET /hub/api/users/{name}``, ``DELETE /hub/api/users/{name}``,
  ``DELETE /hub/api/users/{name}/server`` and ``/servers/{server}`` (with ``{"remove": true}``);
* playing the proxy and the single-user servers behind it: ``GET /user/{name}/[{server}/]``
  ``api/status`` and ``api/kernels`` as jupyter-server answers them (its own
  ``last_activity``, the kernels' ``execution_state``; the token needs ``access:servers``; an
  ``api/kernels`` request without ``no_track_activity=1`` counts as activity, as there), a
  redirect to the hub for a server that is not running (what the proxy and the hub answer),
  404 for one that is no jupyter-server (``kernels=None``); a token minted for a server
  (below) may ask that server only;
* ``POST /hub/api/users/{name}/tokens`` (needs ``tokens``: a token owned by that user, with
  the scopes asked for) and ``DELETE /hub/api/users/{name}/tokens/{id}``, both recorded;
* every answer's ``Date`` header, shifted by ``clock_offset`` (a hub whose clock is off).

Everything else is test machinery: per-(user, server) stop outcomes, per-route latency, a small
fault injector (:class:`FaultInjector`: error statuses, resets, delays, bodies that trickle
forever, truncated or malformed JSON, hub restarts), and a thread-safe record of every request
and TCP connection with in-flight concurrency counters.

Typical use::

    with FakeHub() as hub:
        hub.add(idle_user("ann", 3600), active_user("bob"))
        hub.faults.add("GET /users", 503, count=2)
        run_the_culler(url=hub.api_url, token=hub.token)
        assert hub.stopped_servers() == [("ann", "")]

Only the standard library is used, the server binds 127.0.0.1 only, and :meth:`FakeHub.close`
stops and joins every thread it started (waits are bounded and wake up on close).
"""

from __future__ import annotations

import errno
import http.server
import json
import re
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from copy import deepcopy
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from fnmatch import fnmatchcase
from http import HTTPStatus
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)
from urllib.parse import parse_qs, quote, unquote, urlencode

PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"
API_PREFIX = "/hub/api"
DEFAULT_VERSION = "6.1.1"
# Where `_pagination.next.url` points by default: a scheme, host and port the client must not
# use (jupyterhub#5277: behind a TLS proxy the hub builds it with the wrong scheme).
WRONG_NEXT_ORIGIN = "https://hub.invalid:1"
# Request headers kept in each RequestRecord (lower case); the rest is dropped to save memory.
RECORDED_HEADERS = (
    "accept",
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "host",
    "user-agent",
)
# The least-privilege scopes of a culler that also deletes users and reads groups (JupyterHub 6).
CULLER_SCOPES = (
    "list:users",
    "read:users:activity",
    "read:users:groups",
    "read:servers",
    "delete:servers",
    "delete:users",
)

# The route names used in RequestRecord.route and Latency.
ROUTE_VERSION = "version"
ROUTE_SELF = "self"
ROUTE_LIST_USERS = "list_users"
ROUTE_GET_USER = "get_user"
ROUTE_DELETE_USER = "delete_user"
ROUTE_STOP_SERVER = "stop_server"
ROUTE_SERVER_STATUS = "server_status"    # GET /user/{name}/[{server}/]api/status (the proxy)
ROUTE_SERVER_KERNELS = "server_kernels"  # GET /user/{name}/[{server}/]api/kernels
ROUTE_CREATE_TOKEN = "create_token"      # POST /users/{name}/tokens
ROUTE_REVOKE_TOKEN = "revoke_token"      # DELETE /users/{name}/tokens/{id}
ROUTE_OTHER = "other"

_ROUTES = {
    ("GET", "version"): ROUTE_VERSION,
    ("GET", "self"): ROUTE_SELF,
    ("GET", "users"): ROUTE_LIST_USERS,
    ("GET", "user"): ROUTE_GET_USER,
    ("DELETE", "user"): ROUTE_DELETE_USER,
    ("DELETE", "server"): ROUTE_STOP_SERVER,
    ("GET", "server_status"): ROUTE_SERVER_STATUS,
    ("GET", "server_kernels"): ROUTE_SERVER_KERNELS,
    ("POST", "tokens"): ROUTE_CREATE_TOKEN,
    ("DELETE", "token"): ROUTE_REVOKE_TOKEN,
}

# Scope implications (JupyterHub 6.x, only the branches the culler touches). Filtered scopes
# such as ``list:users!group=x`` are not interpreted: they are plain strings here.
_SCOPE_IMPLIES: Dict[str, Tuple[str, ...]] = {
    "admin:users": (
        "users",
        "read:users",
        "list:users",
        "delete:users",
        "admin:auth_state",
        "read:roles:users",
    ),
    "users": ("read:users", "list:users", "users:activity"),
    "read:users": ("read:users:name", "read:users:groups", "read:users:activity"),
    "admin:servers": ("servers", "read:servers", "delete:servers", "admin:server_state"),
    "servers": ("read:servers", "delete:servers"),
}

# Which user-model keys each scope reveals (JupyterHub's APIHandler.user_model access map).
_USER_MODEL_ACCESS: Dict[str, Set[str]] = {
    "read:users": {
        "kind",
        "name",
        "admin",
        "roles",
        "groups",
        "server",
        "pending",
        "created",
        "last_activity",
    },
    "read:users:name": {"kind", "name", "admin"},
    "read:users:groups": {"kind", "name", "groups"},
    "read:users:activity": {"kind", "name", "last_activity"},
    "read:servers": {"kind", "name", "servers"},
    "read:roles:users": {"kind", "name", "roles", "admin"},
    "admin:auth_state": {"kind", "name", "auth_state"},
}


class _Auto:
    """Sentinel type: "compute this field like the hub does"."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO: Any = _Auto()


# ---------------------------------------------------------------------------------------------
# Time helpers


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the default clock of the fake)."""
    return datetime.now(timezone.utc)


def ago(seconds: float, now: Optional[datetime] = None) -> datetime:
    """Return ``now - seconds`` (``now`` defaults to the current UTC time)."""
    return (utcnow() if now is None else now) - timedelta(seconds=seconds)


def isoformat(when: Optional[datetime]) -> Optional[str]:
    """Render a timestamp the way JupyterHub does: UTC, no offset, a trailing ``Z``.

    Naive datetimes are taken as UTC, like the hub's ``utils.isoformat``.
    """
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return when.isoformat() + "Z"


def expand_scopes(scopes: Iterable[str]) -> Set[str]:
    """Return ``scopes`` plus every scope they imply (e.g. ``admin:users`` → ``delete:users``)."""
    expanded: Set[str] = set()
    todo = list(scopes)
    while todo:
        scope = todo.pop()
        if scope not in expanded:
            expanded.add(scope)
            todo.extend(_SCOPE_IMPLIES.get(scope, ()))
    return expanded


def _version_tuple(version: str) -> Tuple[int, ...]:
    """``"6.1.1"`` → ``(6, 1, 1)``; pre-release suffixes are ignored."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


# ---------------------------------------------------------------------------------------------
# Data model


@dataclass
class FakeServer:
    """One server (spawner) of a fake user, as the hub's database knows it.

    A server is *active* when it is ready or has a pending action: only active servers appear
    in user models (unless ``include_stopped_servers``), and only users with an active server
    are in ``state=ready``/``active`` listings.  ``ready`` and ``pending`` are reported as
    given, so a test may build states the hub would not produce.
    """

    ready: bool = True
    pending: Optional[str] = None
    started: Optional[datetime] = None
    last_activity: Optional[datetime] = None
    url: Any = AUTO  # AUTO: the hub's "/user/<name>/<server>/"; None mimics old hubs.
    user_options: Dict[str, Any] = field(default_factory=dict)
    state: Optional[Dict[str, Any]] = None  # reported only to admin:server_state tokens
    # The server process itself, behind the proxy: the execution_state of each of its
    # kernels (None: not a jupyter-server, no api/status) and its own last_activity (AUTO:
    # the hub's last_activity, else started).
    kernels: Optional[Tuple[str, ...]] = ()
    own_last_activity: Any = AUTO

    @property
    def active(self) -> bool:
        """True when the hub has a server record for it: ready or pending."""
        return bool(self.ready or self.pending)

    def copy(self) -> FakeServer:
        """An independent copy (the hub never shares its records with tests)."""
        return replace(self, user_options=deepcopy(self.user_options), state=deepcopy(self.state))

    @classmethod
    def from_value(cls, value: Union[FakeServer, Mapping[str, Any]]) -> FakeServer:
        """Build from a FakeServer or a mapping with FakeServer's field names."""
        if isinstance(value, FakeServer):
            return value.copy()
        return cls(**dict(value)).copy()


@dataclass
class FakeUser:
    """One user of the fake hub.  ``servers`` maps server names to servers; ``""`` is default.

    A *raw* user (``raw`` set) is served verbatim, for malformed models; the fake cannot read
    its servers, so ``raw_ready``/``raw_active`` decide which listings include it.
    """

    name: str
    admin: bool = False
    groups: Tuple[str, ...] = ()
    created: Optional[datetime] = None
    last_activity: Optional[datetime] = None
    servers: Dict[str, FakeServer] = field(default_factory=dict)
    roles: Optional[List[str]] = None  # None: ["admin"] or ["user"]
    raw: Optional[Dict[str, Any]] = None
    raw_ready: bool = False
    raw_active: bool = False

    def is_active(self) -> bool:
        """Any server running or pending (the hub's SQL side of ``state=active``)."""
        if self.raw is not None:
            return self.raw_active or self.raw_ready
        return any(server.active for server in self.servers.values())

    def is_ready(self) -> bool:
        """Any server ready (the hub's ``User.ready``, the ``state=ready`` post-filter)."""
        if self.raw is not None:
            return self.raw_ready
        return any(server.ready for server in self.servers.values())

    def copy(self) -> FakeUser:
        """An independent copy (the hub never shares its records with tests)."""
        return replace(
            self,
            groups=tuple(self.groups),
            servers={name: server.copy() for name, server in self.servers.items()},
            roles=None if self.roles is None else list(self.roles),
            raw=deepcopy(self.raw),
        )


# ---------------------------------------------------------------------------------------------
# Builders for tests: each returns a FakeUser or FakeServer for FakeHub.add(); `now` is injectable


def make_server(
    idle_s: Optional[float] = 0,
    *,
    now: Optional[datetime] = None,
    age_s: Optional[float] = None,
    ready: bool = True,
    pending: Optional[str] = None,
    url: Any = AUTO,
    user_options: Optional[Dict[str, Any]] = None,
    state: Optional[Dict[str, Any]] = None,
    kernels: Optional[Tuple[str, ...]] = (),
) -> FakeServer:
    """A server last active ``idle_s`` ago (None: never) and started ``age_s`` ago.

    ``age_s`` defaults to ``idle_s`` (or 0 when ``idle_s`` is None). ``kernels``: the
    execution states of its kernels (None: it is no jupyter-server).
    """
    now = utcnow() if now is None else now
    if age_s is None:
        age_s = idle_s or 0
    return FakeServer(
        ready=ready,
        pending=pending,
        started=ago(age_s, now),
        last_activity=None if idle_s is None else ago(idle_s, now),
        url=url,
        user_options=dict(user_options or {}),
        state=state,
        kernels=kernels,
    )


def idle_user(
    name: str,
    idle_s: float,
    now: Optional[datetime] = None,
    *,
    server_name: str = "",
    age_s: Optional[float] = None,
    admin: bool = False,
    groups: Sequence[str] = (),
    user_idle_s: Optional[float] = None,
) -> FakeUser:
    """A user with one ready server idle for ``idle_s`` seconds.

    The user's own ``last_activity`` is ``user_idle_s`` ago (default ``idle_s``); the user was
    created when the server started (``age_s`` ago, default ``idle_s``).
    """
    now = utcnow() if now is None else now
    age = idle_s if age_s is None else age_s
    server = make_server(idle_s, now=now, age_s=age)
    return FakeUser(
        name=name,
        admin=admin,
        groups=tuple(groups),
        created=ago(max(age, idle_s), now),
        last_activity=ago(idle_s if user_idle_s is None else user_idle_s, now),
        servers={server_name: server},
    )


def active_user(name: str, now: Optional[datetime] = None, **options: Any) -> FakeUser:
    """A user with one ready server that was active right now (see :func:`idle_user`)."""
    return idle_user(name, 0, now, **options)


def inactive_user(
    name: str,
    idle_s: float,
    now: Optional[datetime] = None,
    *,
    admin: bool = False,
    groups: Sequence[str] = (),
    created_s: Optional[float] = None,
) -> FakeUser:
    """A user without any server, last active ``idle_s`` ago (created ``created_s`` ago)."""
    now = utcnow() if now is None else now
    return FakeUser(
        name=name,
        admin=admin,
        groups=tuple(groups),
        created=ago(idle_s if created_s is None else max(created_s, idle_s), now),
        last_activity=ago(idle_s, now),
    )


def pending_user(
    name: str,
    pending: str = "spawn",
    now: Optional[datetime] = None,
    *,
    server_name: str = "",
    idle_s: float = 0,
) -> FakeUser:
    """A user whose only server is pending (``"spawn"``, ``"stop"``...) and not ready."""
    now = utcnow() if now is None else now
    server = make_server(idle_s, now=now, ready=False, pending=pending)
    return FakeUser(
        name=name,
        created=ago(idle_s, now),
        last_activity=ago(idle_s, now),
        servers={server_name: server},
    )


def user_with_servers(
    name: str,
    idle_by_server: Mapping[str, Optional[float]],
    now: Optional[datetime] = None,
    *,
    admin: bool = False,
    groups: Sequence[str] = (),
) -> FakeUser:
    """A user with one ready server per entry of ``{server name: idle seconds}``."""
    now = utcnow() if now is None else now
    servers = {server: make_server(idle, now=now) for server, idle in idle_by_server.items()}
    known = [idle for idle in idle_by_server.values() if idle is not None]
    least_idle = min(known) if known else 0
    oldest = max(known) if known else 0
    return FakeUser(
        name=name,
        admin=admin,
        groups=tuple(groups),
        created=ago(oldest, now),
        last_activity=ago(least_idle, now),
        servers=servers,
    )


def population(
    count: int,
    *,
    idle_every: int = 2,
    idle_s: float = 7200,
    now: Optional[datetime] = None,
    prefix: str = "user",
) -> List[FakeUser]:
    """``count`` users named ``<prefix>-<i>``: every ``idle_every``-th idle for ``idle_s``,
    the others active now (``idle_every=0``: nobody idle).  For benchmarks."""
    now = utcnow() if now is None else now
    users = []
    for index in range(count):
        idle = bool(idle_every) and index % idle_every == 0
        users.append(idle_user(f"{prefix}-{index}", idle_s if idle else 0, now))
    return users


def crowd(running: int, idle: int, *, idle_s: float = 7200, step_s: float = 60,
          now: Optional[datetime] = None) -> List[FakeUser]:
    """``running`` users ``u000``, ``u001``, ... with a server each: the first ``idle`` idle
    for ``idle_s + step_s * i`` (so the later ones longest), the others active 5 s ago. For
    the mass-cull guard: which servers are the longest idle is known."""
    now = utcnow() if now is None else now
    return [idle_user("u%03d" % index, idle_s + step_s * index if index < idle else 5, now)
            for index in range(running)]


# ---------------------------------------------------------------------------------------------
# Test knobs: latency, stop outcomes, faults


@dataclass
class Latency:
    """Seconds added before answering, per route (waits end early when the hub closes)."""

    list_users: float = 0.0
    stop_server: float = 0.0
    delete_user: float = 0.0
    other: float = 0.0

    server_api: float = 0.0  # a single-user server's api/status and api/kernels

    def for_route(self, route: str) -> float:
        """The delay for one route name (``ROUTE_*``)."""
        return {
            ROUTE_LIST_USERS: self.list_users,
            ROUTE_STOP_SERVER: self.stop_server,
            ROUTE_DELETE_USER: self.delete_user,
            ROUTE_SERVER_STATUS: self.server_api,
            ROUTE_SERVER_KERNELS: self.server_api,
        }.get(route, self.other)


@dataclass
class _OutcomeRule:
    """A forced answer for DELETEs on matching (user, server) names (fnmatch patterns)."""

    user: str
    server: Optional[str]  # None: the user-deletion route
    status: int
    remaining: Optional[int]  # None: forever
    message: Optional[str]

    def matches(self, user: str, server: Optional[str]) -> bool:
        if not fnmatchcase(user, self.user):
            return False
        if self.server is None or server is None:
            return self.server is None and server is None
        return fnmatchcase(server, self.server)


FAULT_KINDS = (
    "status",  # answer `status` (JSON error body, optional Retry-After, optional `body`)
    "reset",  # close the connection with a TCP RST, no answer
    "drop",  # close the connection cleanly (FIN), no answer
    "delay",  # wait `delay` seconds, then answer normally
    "hang",  # answer nothing until `delay` elapses (0: until the hub closes), then drop
    "hold",  # wait until Fault.release() (bounded by `delay` or 10 s), then answer normally
    "trickle",  # 200 + headers promising a huge body, then one byte per `interval`, forever
    "truncated",  # the normal answer, body cut to `keep` bytes, Content-Length matching the cut
    "short_body",  # the normal answer's Content-Length, only `keep` bytes sent, then drop
    "malformed",  # `status` (default 200) with a body that is not valid JSON (or `body`)
    "restart",  # drop the connection, close the listener, reopen the port after `down_for`
)


@dataclass
class Fault:
    """One injected fault: which requests it matches, what it does, and how often it fired.

    It matches requests whose method equals ``method`` (``"*"``: any) and whose raw path
    (percent-encoded, no query) matches the fnmatch pattern ``path``, and whose query has every
    item of ``query``.  The first ``skip`` matches pass untouched; then the fault fires
    ``count`` times (None: forever).
    """

    method: str
    path: str
    kind: str
    count: Optional[int] = 1
    skip: int = 0
    query: Dict[str, str] = field(default_factory=dict)
    status: Optional[int] = None
    retry_after: Optional[str] = None
    location: Optional[str] = None  # a Location header (for 3xx answers)
    message: Optional[str] = None
    delay: float = 0.0
    interval: float = 0.05
    duration: Optional[float] = None
    down_for: float = 0.2
    body: Optional[bytes] = None
    content_type: str = "application/json"
    keep: Optional[int] = None
    released: threading.Event = field(default_factory=threading.Event, repr=False)
    seen: int = 0
    hits: int = 0

    def matches(self, method: str, path: str, query: Mapping[str, str]) -> bool:
        """Does this request match (ignoring counts)?"""
        if self.method not in ("*", method):
            return False
        if not fnmatchcase(path, self.path):
            return False
        return all(query.get(key) == value for key, value in self.query.items())

    @property
    def exhausted(self) -> bool:
        """True once the fault fired ``count`` times."""
        return self.count is not None and self.hits >= self.count

    def release(self) -> None:
        """Let requests held by a ``hold`` fault (now and later) proceed."""
        self.released.set()


class FaultInjector:
    """The fault list of one hub: ``hub.faults.add("GET /users", 503, count=2)``.

    Routes are ``"METHOD /path"`` or ``"/path"`` (any method).  A path not starting with
    ``/hub/`` is taken relative to ``/hub/api`` (``"/users"`` → ``"/hub/api/users"``); it is an
    fnmatch pattern on the raw path, where ``*`` also matches ``/``.  Faults are tried in the
    order they were added; the first one that fires wins.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: List[Fault] = []

    def add(
        self,
        route: str,
        kind: Union[str, int],
        count: Optional[int] = 1,
        **options: Any,
    ) -> Fault:
        """Add a fault and return it.

        ``kind`` is one of :data:`FAULT_KINDS`, or an int as a shortcut for ``"status"`` with
        that status.  ``options`` are :class:`Fault` fields: ``skip``, ``query``, ``status``,
        ``retry_after``, ``location``, ``message``, ``delay``, ``interval``, ``duration``,
        ``down_for``, ``body``, ``content_type``, ``keep``.
        """
        method, path = _parse_route(route)
        if isinstance(kind, int):
            options.setdefault("status", kind)
            kind = "status"
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if kind == "status" and not options.get("status"):
            raise ValueError("a 'status' fault needs status=N")
        if options.get("retry_after") is not None:
            options["retry_after"] = str(options["retry_after"])
        if isinstance(options.get("body"), str):
            options["body"] = options["body"].encode()
        fault = Fault(method=method, path=path, kind=kind, count=count, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault (releasing requests they hold)."""
        with self._lock:
            faults, self._faults = self._faults, []
        for fault in faults:
            fault.release()

    def release_all(self) -> None:
        """Release every ``hold`` fault."""
        for fault in self.list():
            fault.release()

    def list(self) -> List[Fault]:
        """The faults, in the order they are tried."""
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str, query: Mapping[str, str]) -> Optional[Fault]:
        """Find the fault that fires for this request, counting it; None when none does."""
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(method, path, query):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                fault.hits += 1
                return fault
        return None


def _parse_route(route: str) -> Tuple[str, str]:
    """``"GET /users"`` → ``("GET", "/hub/api/users")``; ``"/users"`` → ``("*", ...)``."""
    parts = route.split(None, 1)
    if len(parts) == 2:
        method, path = parts[0].upper(), parts[1].strip()
    else:
        method, path = "*", route.strip()
    if path.startswith("*") or path == "/hub" or path.startswith("/hub/"):
        return method, path
    if path.startswith("/"):
        return method, API_PREFIX + path
    raise ValueError(f"route path must start with '/' or '*': {route!r}")


# ---------------------------------------------------------------------------------------------
# Observation records


@dataclass
class RequestRecord:
    """One request as the fake saw it.  Times are ``time.monotonic()`` values: ``started`` once
    the request was read, ``ended`` just before the answer was written (or when the connection
    ended without one), so a client never sees an answer whose record is still open.

    ``path`` is raw (percent-encoded, no query); ``user``/``server`` are the decoded path
    segments of user and server routes.  ``status`` is None when nothing was answered (reset,
    drop, hang, restart); ``fault`` names the fault kind that fired, if any.
    """

    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes
    peer_port: int
    connection_id: int
    started: float
    route: str = ROUTE_OTHER
    user: Optional[str] = None
    server: Optional[str] = None
    ended: Optional[float] = None
    status: Optional[int] = None
    fault: Optional[str] = None
    note: Optional[str] = None

    @property
    def json(self) -> Any:
        """The body parsed as JSON; None when empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def duration(self) -> Optional[float]:
        """Seconds from receipt to the end of the answer (None while in flight)."""
        return None if self.ended is None else self.ended - self.started


@dataclass
class ConnectionRecord:
    """One TCP connection accepted by the fake (``peer_port`` is the client's port)."""

    connection_id: int
    peer_port: int
    opened: float
    closed: Optional[float] = None
    requests: int = 0


@dataclass(frozen=True)
class ListDeleteOrder:
    """When the last user-list page was served and the first DELETE arrived (monotonic)."""

    last_list_served: Optional[float]
    first_delete_received: Optional[float]

    @property
    def lists_before_deletes(self) -> bool:
        """True when no DELETE arrived before the last list page had been served."""
        if self.last_list_served is None or self.first_delete_received is None:
            return True
        return self.last_list_served <= self.first_delete_received


@dataclass
class _Token:
    """A token the fake accepts: the service it belongs to and its scopes (None: anything).

    A token minted by ``POST /users/{name}/tokens`` has ``owner`` (that user) and ``id``.
    """

    name: str
    scopes: Optional[Tuple[str, ...]]
    owner: Optional[str] = None
    id: Optional[str] = None


class _Reply:
    """An answer to send: status, body, content type and extra headers."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        content_type: Optional[str] = "application/json",
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def _json_reply(payload: Any, status: int = 200) -> _Reply:
    return _Reply(status, json.dumps(payload).encode())


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Error"


def _error(
    status: int, message: Optional[str] = None, headers: Optional[Dict[str, str]] = None
) -> _Reply:
    """A JupyterHub-style JSON error: ``{"status": N, "message": "..."}``."""
    payload = {"status": status, "message": message or _phrase(status)}
    return _Reply(status, json.dumps(payload).encode(), headers=headers)


def _scope_error(*needed: str) -> _Reply:
    return _error(
        403,
        "Action is not authorized with current scopes; requires any of [%s]" % ", ".join(needed),
    )


def _allowed(scopes: Optional[Set[str]], *needed: str) -> bool:
    return scopes is None or any(scope in scopes for scope in needed)


def _classify(path: str) -> Tuple[str, Optional[str], Optional[str]]:
    """Map a raw path to (resource, user, server); segments are percent-decoded like tornado's
    path arguments (``%2F`` inside a name stays part of the name)."""
    if path.startswith("/user/"):
        return _classify_server_api(path)
    if not path.startswith(API_PREFIX):
        return "unknown", None, None
    rest = path[len(API_PREFIX):]
    if rest in ("", "/"):
        return "version", None, None
    parts = rest.split("/")[1:]
    if parts == ["user"]:
        return "self", None, None
    if parts == ["users"]:
        return "users", None, None
    if len(parts) >= 2 and parts[0] == "users" and parts[1]:
        name = unquote(parts[1])
        if len(parts) == 2:
            return "user", name, None
        if len(parts) == 3 and parts[2] == "server":
            return "server", name, ""
        if len(parts) == 3 and parts[2] == "tokens":
            return "tokens", name, None
        if len(parts) == 4 and parts[2] == "tokens":
            return "token", name, unquote(parts[3])  # the token's id, in ``server``
        if len(parts) == 4 and parts[2] == "servers":
            return "server", name, unquote(parts[3])
    return "unknown", None, None


def _classify_server_api(path: str) -> Tuple[str, Optional[str], Optional[str]]:
    """``/user/{name}/[{server}/]api/status|kernels``: a single-user server, via the proxy."""
    parts = path.split("/")[2:]  # name, [server], "api", endpoint
    if len(parts) in (3, 4) and parts[0] and parts[-2] == "api" \
            and parts[-1] in ("status", "kernels"):
        server = unquote(parts[1]) if len(parts) == 4 else ""
        return "server_" + parts[-1], unquote(parts[0]), server
    return "unknown", None, None


# ---------------------------------------------------------------------------------------------
# HTTP plumbing


class _Handler(http.server.BaseHTTPRequestHandler):
    """Hands every request to the FakeHub; keeps connections alive like tornado (HTTP/1.1)."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeJupyterHub"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection ends on its own after this
    disable_nagle_algorithm = True  # like tornado; trickled bytes leave at once

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.hub._connection_opened(self)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.hub._connection_closed(self)

    def _serve(self) -> None:
        self.server.hub._serve(self)

    do_GET = do_DELETE = do_POST = do_PUT = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request record is the log."""


class _Server(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer whose handler threads the FakeHub tracks and joins."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # bursts of concurrent connects in benchmarks

    def __init__(self, address: Tuple[str, int], hub: FakeHub) -> None:
        self.hub = hub
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"fakehub-conn-{client_address[1]}",
            daemon=True,
        )
        self.hub._track(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # the client went away, a reset, a restart: expected in these tests
        self.hub._note_error(traceback.format_exc())


def _read_body(handler: _Handler) -> bytes:
    """Read the request body (Content-Length or chunked) so keep-alive stays in sync."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size_line = handler.rfile.readline(65537)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # skip trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def _token_from(header: Optional[str]) -> Optional[str]:
    """The token of an ``Authorization: token <t>`` (or ``bearer``) header."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


# ---------------------------------------------------------------------------------------------
# The hub


class FakeHub:
    """A fake JupyterHub REST API served from a thread on ``127.0.0.1``.

    Args:
        version: reported by ``GET /hub/api/``; below 2.0 ``/users`` answers a plain list
            always (no pagination), below 1.3 it also ignores ``state``.
        token: the accepted token (default: random); ``hub.token``.
        scopes: the token's scopes (expanded like the hub's); None: the hub reports no scopes
            and allows everything.
        page_default / page_max: the hub's ``api_page_default_limit`` / ``api_page_max_limit``.
        next_url_origin: scheme://host:port put into ``_pagination.next.url``; None builds it
            from the request's Host header (what a hub without a proxy does).
        named_servers: False answers 400 "Named servers are not enabled." to named stops.
        refuse_delete_with_servers: True (default) answers 400 to ``DELETE /users/{name}``
            while any server is running or pending; False mimics JupyterHub 6, which stops the
            servers and deletes the user (still 400 while a stop is pending).
        clock: the hub's "now" (aware UTC), used when a stop bumps ``last_activity``.
        clock_offset: added to the real time in every answer's ``Date`` header (a hub whose
            clock is off); ``hub.clock_offset`` may be changed while serving.
        port: 0 picks a free port.

    ``POST /users/{name}/tokens`` (the token needs ``tokens``) mints a token owned by that
    user with the scopes asked for (``access:servers!server=NAME/SERVER`` lets it ask that
    one server); ``DELETE /users/{name}/tokens/{id}`` revokes it. Both are recorded
    (``minted_tokens()``, routes ``create_token``/``revoke_token``).
    """

    record_headers = RECORDED_HEADERS

    def __init__(
        self,
        *,
        version: str = DEFAULT_VERSION,
        token: Optional[str] = None,
        scopes: Optional[Iterable[str]] = None,
        page_default: int = 50,
        page_max: int = 200,
        next_url_origin: Optional[str] = WRONG_NEXT_ORIGIN,
        named_servers: bool = True,
        refuse_delete_with_servers: bool = True,
        clock: Callable[[], datetime] = utcnow,
        clock_offset: timedelta = timedelta(0),
        port: int = 0,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.version = version
        self.token = token or secrets.token_hex(16)
        self.page_default = page_default
        self.page_max = page_max
        self.next_url_origin = next_url_origin
        self.named_servers = named_servers
        self.refuse_delete_with_servers = refuse_delete_with_servers
        self.clock = clock
        self.clock_offset = clock_offset
        self.latency = Latency()
        self.faults = FaultInjector()
        self.errors: List[str] = []  # tracebacks of bugs in the fake itself
        self.restarts = 0

        self._tokens: Dict[str, _Token] = {}
        self._set_token(self.token, "idle-culler", scopes)

        # Hub data, guarded by _data_lock. _generation changes on every mutation and keys the
        # cache of selections, so paging 10k users does not rescan them for every page.
        self._data_lock = threading.RLock()
        self._users: Dict[str, FakeUser] = {}
        self._generation = 0
        self._selection_cache: Dict[str, Tuple[int, List[FakeUser]]] = {}
        self._outcomes: List[_OutcomeRule] = []
        self._remove_on_stop: Set[Tuple[str, str]] = set()

        # Observations, guarded by the condition's lock (re-entrant so predicates may call us).
        self._observed = threading.Condition(threading.RLock())
        self._records: List[RequestRecord] = []
        self._connections: List[ConnectionRecord] = []
        self._open: Dict[int, Tuple[socket.socket, ConnectionRecord]] = {}
        self._next_connection_id = 0
        self._in_flight: Dict[str, int] = {}
        self._max_in_flight: Dict[str, int] = {}

        # Lifecycle.
        self._lifecycle_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._serve_thread: Optional[threading.Thread] = None
        self._threads: Set[threading.Thread] = set()
        self._threads_lock = threading.Lock()
        self._started = False
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeHub:
        """Start listening (idempotent); returns self."""
        with self._lifecycle_lock:
            if self._closed:
                raise RuntimeError("a closed FakeHub cannot be restarted")
            if not self._started:
                self._listen()
                self._started = True
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, end every connection and join every thread the hub started.

        Held, delayed, hanging and trickling requests end at once.  Raises RuntimeError when
        a thread is still alive after ``timeout`` seconds (a bug in the fake).
        """
        if self._closed:
            return
        self._stopping.set()
        self.faults.release_all()
        with self._lifecycle_lock:
            if self._server is not None:
                self._stop_listening()
            self._closed = True
        deadline = time.monotonic() + timeout
        with self._threads_lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in threads if thread.is_alive()]
        if alive:
            raise RuntimeError(f"fake hub threads still running after close(): {alive}")

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the hub's public URL)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/hub/api`` (what the culler's ``--url`` takes)."""
        return self.url + API_PREFIX

    @property
    def listening(self) -> bool:
        """True while the listening socket is open (False during a restart and after close)."""
        return self._server is not None

    def restart(self, down_for: float = 0.2, *, wait: bool = True) -> None:
        """Mimic a hub restart: close the listener and every connection, reopen the same port
        after ``down_for`` seconds.  ``wait=False`` returns at once (the restart runs in a
        thread the hub joins on close)."""
        thread = threading.Thread(
            target=self._restart, args=(down_for,), name="fakehub-restart", daemon=True
        )
        self._track(thread)
        thread.start()
        if wait:
            thread.join(down_for + 5.0)

    def _restart(self, down_for: float) -> None:
        with self._lifecycle_lock:
            if self._stopping.is_set() or self._server is None:
                return
            self._stop_listening()
            with self._observed:
                self.restarts += 1
                self._observed.notify_all()
            if self._stopping.wait(down_for):
                return
            self._listen()
        with self._observed:
            self._observed.notify_all()

    def _listen(self) -> None:
        """Bind (the same port again after a restart) and serve from a daemon thread."""
        deadline = time.monotonic() + 2.0
        while True:
            try:
                server = _Server((self.host, self.port), self)
                break
            except OSError as error:
                # After a restart the old socket may linger for a moment.
                if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},  # close() waits for one poll
            name=f"fakehub-serve-{self.port}",
            daemon=True,
        )
        self._server, self._serve_thread = server, thread
        self._track(thread)
        thread.start()

    def _stop_listening(self) -> None:
        """Close the listener and end every open connection (caller holds _lifecycle_lock)."""
        server, thread = self._server, self._serve_thread
        self._server = self._serve_thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(5.0)
        with self._observed:
            sockets = [sock for sock, _ in self._open.values()]
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _track(self, thread: threading.Thread) -> None:
        with self._threads_lock:
            if len(self._threads) > 256:
                self._threads = {known for known in self._threads if known.is_alive()}
            self._threads.add(thread)

    def _note_error(self, text: str) -> None:
        with self._observed:
            self.errors.append(text)

    def _pause(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True when the hub is closing (callers should stop)."""
        if seconds <= 0:
            return self._stopping.is_set()
        return self._stopping.wait(seconds)

    # -- tokens and scopes ---------------------------------------------------------------------

    def _set_token(self, token: str, name: str, scopes: Optional[Iterable[str]]) -> None:
        self._tokens[token] = _Token(name, None if scopes is None else tuple(scopes))

    @property
    def scopes(self) -> Optional[Tuple[str, ...]]:
        """The main token's scopes as given (None: not reported, everything allowed)."""
        return self._tokens[self.token].scopes

    @scopes.setter
    def scopes(self, scopes: Optional[Iterable[str]]) -> None:
        self._set_token(self.token, self._tokens[self.token].name, scopes)

    def add_token(
        self, scopes: Optional[Iterable[str]] = None, *, name: str = "other-service"
    ) -> str:
        """Register another accepted token (of service ``name``) and return it."""
        token = secrets.token_hex(16)
        self._set_token(token, name, scopes)
        return token

    # -- data ----------------------------------------------------------------------------------

    def _changed(self) -> None:
        """Note a data mutation (caller holds _data_lock)."""
        self._generation += 1
        self._selection_cache.clear()

    def add(self, *users: FakeUser) -> None:
        """Add users (copies are stored); users are listed in the order they were added."""
        with self._data_lock:
            for user in users:
                if user.name in self._users:
                    raise ValueError(f"user {user.name!r} already exists")
                stored = user.copy()
                if stored.created is None:
                    stored.created = self.clock()
                self._users[user.name] = stored
            self._changed()

    def add_user(
        self,
        name: str,
        admin: bool = False,
        groups: Iterable[str] = (),
        created: Optional[datetime] = None,
        last_activity: Optional[datetime] = None,
        servers: Optional[Mapping[str, Union[FakeServer, Mapping[str, Any]]]] = None,
        roles: Optional[List[str]] = None,
    ) -> FakeUser:
        """Add one user; ``servers`` maps names (``""``: default) to FakeServer or dicts with
        its fields (``ready``, ``pending``, ``started``, ``last_activity``, ``url``, ...)."""
        user = FakeUser(
            name=name,
            admin=admin,
            groups=tuple(groups),
            created=created,
            last_activity=last_activity,
            servers={key: FakeServer.from_value(value) for key, value in (servers or {}).items()},
            roles=roles,
        )
        self.add(user)
        return self.user(name)  # type: ignore[return-value]

    def add_raw_user(
        self,
        model: Any,
        *,
        name: Optional[str] = None,
        ready: Optional[bool] = None,
        active: Optional[bool] = None,
    ) -> str:
        """Add a user whose model is served verbatim (wrong types, bad dates...).

        ``name`` (default ``model["name"]``) routes DELETEs to it.  ``ready``/``active``
        choose the listings it appears in; by default they are guessed from the model.
        A stop answers 204 (or the configured outcome) and only takes it out of
        ``state=ready``/``active``; the model itself never changes.  Returns the name.
        """
        if name is None:
            name = model.get("name") if isinstance(model, dict) else None
            if not isinstance(name, str):
                raise ValueError("the raw model has no string 'name': pass name=")
        guessed_ready, guessed_active = _guess_raw_state(model)
        user = FakeUser(
            name=name,
            raw=model,
            raw_ready=guessed_ready if ready is None else ready,
            raw_active=guessed_active if active is None else active,
        )
        self.add(user)
        return name

    def remove_user(self, name: str) -> None:
        """Remove a user, as if deleted behind the culler's back."""
        with self._data_lock:
            del self._users[name]
            self._changed()

    def user(self, name: str) -> Optional[FakeUser]:
        """A copy of the user's current record, or None."""
        with self._data_lock:
            user = self._users.get(name)
            return None if user is None else user.copy()

    def user_names(self) -> List[str]:
        """Names of all users, in listing order."""
        with self._data_lock:
            return list(self._users)

    def server(self, user: str, server: str = "") -> Optional[FakeServer]:
        """A copy of one server's current record, or None."""
        with self._data_lock:
            record = self._users.get(user)
            found = None if record is None else record.servers.get(server)
            return None if found is None else found.copy()

    def update_user(self, name: str, **fields: Any) -> None:
        """Change fields of a user (``last_activity=...``, ``admin=...``)."""
        with self._data_lock:
            user = self._users[name]
            for key, value in fields.items():
                if not hasattr(user, key) or key in ("name", "servers"):
                    raise AttributeError(f"cannot update FakeUser.{key}")
                setattr(user, key, value)
            self._changed()

    def update_server(self, user: str, server: str = "", **fields: Any) -> None:
        """Change fields of a server, creating it when missing (``ready=False`` ...)."""
        with self._data_lock:
            record = self._users[user]
            target = record.servers.setdefault(server, FakeServer())
            for key, value in fields.items():
                if not hasattr(target, key) or key == "active":
                    raise AttributeError(f"cannot update FakeServer.{key}")
                setattr(target, key, value)
            self._changed()

    def set_stop_outcome(
        self,
        user: str,
        server: str = "",
        status: int = 202,
        *,
        count: Optional[int] = None,
        message: Optional[str] = None,
    ) -> None:
        """Force the answer to stops of (user, server) (fnmatch patterns), ``count`` times
        (None: always).  204/200 stop normally; 202 leaves the server running, not ready, with
        ``pending: "stop"`` until :meth:`finish_stop`; any other status is a JupyterHub-style
        error and changes nothing.  Rules are tried in the order they were set."""
        with self._data_lock:
            self._outcomes.append(_OutcomeRule(user, server, status, count, message))

    def set_delete_user_outcome(
        self,
        user: str,
        status: int,
        *,
        count: Optional[int] = None,
        message: Optional[str] = None,
    ) -> None:
        """Force the answer to ``DELETE /users/{user}`` (an error status changes nothing)."""
        with self._data_lock:
            self._outcomes.append(_OutcomeRule(user, None, status, count, message))

    def clear_outcomes(self) -> None:
        """Forget every forced stop and delete answer."""
        with self._data_lock:
            self._outcomes.clear()

    def finish_stop(self, user: str, server: str = "") -> bool:
        """Complete a pending (202) stop; True when there was one."""
        with self._data_lock:
            record = self._users.get(user)
            target = None if record is None else record.servers.get(server)
            if target is None or target.pending != "stop":
                return False
            self._complete_stop(record, server, remove=False)
            return True

    def finish_all_stops(self) -> int:
        """Complete every pending stop; returns how many."""
        with self._data_lock:
            pending = [
                (user.name, name)
                for user in self._users.values()
                for name, server in user.servers.items()
                if server.pending == "stop"
            ]
        return sum(self.finish_stop(user, server) for user, server in pending)

    def _take_outcome(self, user: str, server: Optional[str]) -> Optional[_OutcomeRule]:
        """The forced answer for this DELETE, counting it (caller holds _data_lock)."""
        for rule in self._outcomes:
            if rule.remaining == 0 or not rule.matches(user, server):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            return rule
        return None

    def _complete_stop(self, user: FakeUser, name: str, remove: bool) -> None:
        """The hub's side of a finished stop (caller holds _data_lock)."""
        server = user.servers[name]
        server.ready = False
        server.pending = None
        server.started = None
        # JupyterHub sets the user's last_activity when it stops a server.
        user.last_activity = self.clock()
        key = (user.name, name)
        if remove or key in self._remove_on_stop:
            self._remove_on_stop.discard(key)
            if name:
                del user.servers[name]
        self._changed()

    def _select(self, state: Optional[str]) -> List[FakeUser]:
        """The "SQL side" of a listing: users in id order, before offset/limit."""
        key = state or "all"
        cached = self._selection_cache.get(key)
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        users = list(self._users.values())
        if state in ("ready", "active"):
            users = [user for user in users if user.is_active()]
        elif state == "inactive":
            users = [user for user in users if not user.is_active()]
        self._selection_cache[key] = (self._generation, users)
        return users

    # -- observation ---------------------------------------------------------------------------

    def records(
        self, method: Optional[str] = None, route: Optional[str] = None
    ) -> List[RequestRecord]:
        """The requests received so far, in arrival order, optionally filtered."""
        with self._observed:
            return [
                record
                for record in self._records
                if (method is None or record.method == method)
                and (route is None or record.route == route)
            ]

    def connections(self) -> List[ConnectionRecord]:
        """Every TCP connection accepted so far, in order."""
        with self._observed:
            return [replace(record) for record in self._connections]

    @property
    def connection_count(self) -> int:
        """How many TCP connections were accepted (keep-alive reuse keeps it low)."""
        with self._observed:
            return len(self._connections)

    def stopped_servers(self) -> List[Tuple[str, str]]:
        """(user, server) of every stop answered 200/204, in order of the answers' start."""
        return [
            (record.user or "", record.server or "")
            for record in self.records("DELETE", ROUTE_STOP_SERVER)
            if record.status in (200, 204)
        ]

    def deleted_users(self) -> List[str]:
        """Users whose deletion was answered 204, in order."""
        return [
            record.user or ""
            for record in self.records("DELETE", ROUTE_DELETE_USER)
            if record.status in (200, 204)
        ]

    def in_flight(self, method: str = "*") -> int:
        """Requests being handled right now (``"*"``: of any method)."""
        with self._observed:
            return self._in_flight.get(method, 0)

    def max_in_flight(self, method: str = "*") -> int:
        """The most requests (of ``method``; ``"*"``: any) ever handled at once."""
        with self._observed:
            return self._max_in_flight.get(method, 0)

    @property
    def max_concurrent_deletes(self) -> int:
        """The most DELETE requests ever handled at once."""
        return self.max_in_flight("DELETE")

    def timeline(self) -> ListDeleteOrder:
        """When the last list page (answered 200) ended vs when the first DELETE arrived."""
        with self._observed:
            served = [
                record.ended
                for record in self._records
                if record.route == ROUTE_LIST_USERS and record.status == 200 and record.ended
            ]
            deletes = [record.started for record in self._records if record.method == "DELETE"]
        return ListDeleteOrder(max(served, default=None), min(deletes, default=None))

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
        """Wait until ``predicate()`` is true, re-checked whenever a request or connection
        starts or ends; False on timeout.  The predicate may call this hub's methods."""
        deadline = time.monotonic() + timeout
        with self._observed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._observed.wait(left)
        return True

    def reset_observations(self) -> None:
        """Forget records, closed connections and concurrency maxima (not data or faults)."""
        with self._observed:
            self._records.clear()
            self._connections = [record for _, record in self._open.values()]
            self._max_in_flight = dict(self._in_flight)

    def _connection_opened(self, handler: _Handler) -> int:
        with self._observed:
            self._next_connection_id += 1
            connection_id = self._next_connection_id
            record = ConnectionRecord(connection_id, handler.client_address[1], time.monotonic())
            self._connections.append(record)
            self._open[connection_id] = (handler.connection, record)
            self._observed.notify_all()
        return connection_id

    def _connection_closed(self, handler: _Handler) -> None:
        with self._observed:
            entry = self._open.pop(getattr(handler, "connection_id", -1), None)
            if entry is not None:
                entry[1].closed = time.monotonic()
            self._observed.notify_all()

    # -- request handling ----------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        """Handle one request: record it, apply a fault or latency, answer."""
        method = handler.command
        path, _, query_string = handler.path.partition("?")
        query = {
            key: values[-1]
            for key, values in parse_qs(query_string, keep_blank_values=True).items()
        }
        body = _read_body(handler)
        resource, user, server = _classify(path)
        record = RequestRecord(
            method=method,
            path=path,
            query=query,
            headers={
                key.lower(): value
                for key, value in handler.headers.items()
                if key.lower() in self.record_headers
            },
            body=body,
            peer_port=handler.client_address[1],
            connection_id=handler.connection_id,
            started=time.monotonic(),
            route=_ROUTES.get((method, resource), ROUTE_OTHER),
            user=user,
            server=server,
        )
        with self._observed:
            self._records.append(record)
            for key in (method, "*"):
                count = self._in_flight.get(key, 0) + 1
                self._in_flight[key] = count
                self._max_in_flight[key] = max(self._max_in_flight.get(key, 0), count)
            open_entry = self._open.get(handler.connection_id)
            if open_entry is not None:
                open_entry[1].requests += 1
            self._observed.notify_all()
        try:
            fault = self.faults.take(method, path, query)
            if fault is not None:
                record.fault = fault.kind
                self._apply_fault(handler, record, fault, resource)
            else:
                self._pause(self.latency.for_route(record.route))
                self._send(handler, record, self._answer(handler, record, resource))
        finally:
            self._finish(record)

    def _finish(self, record: RequestRecord) -> None:
        """Mark a request done (once): set ``ended``, leave the in-flight counts.

        Called just *before* the answer is written, so that a client that has read the answer
        never sees its request still in flight or unfinished (no over-counted concurrency).
        """
        with self._observed:
            if record.ended is not None:
                return
            record.ended = time.monotonic()
            for key in (record.method, "*"):
                self._in_flight[key] -= 1
            self._observed.notify_all()

    def _answer(self, handler: _Handler, record: RequestRecord, resource: str) -> _Reply:
        """The normal answer; a bug in the fake becomes a 500 and an entry in ``errors``."""
        try:
            reply = self._route(handler, record, resource)
        except Exception:  # report the bug, keep the connection thread alive
            self._note_error(traceback.format_exc())
            reply = _error(500, "fake hub bug: see FakeHub.errors")
        reply.headers.setdefault("X-JupyterHub-Version", self.version)
        return reply

    def _route(self, handler: _Handler, record: RequestRecord, resource: str) -> _Reply:
        method = record.method
        if resource == "unknown":
            return _error(404)
        if (method, resource) not in _ROUTES:
            return _error(405)
        if resource == "version":
            return _json_reply({"version": self.version})
        token = self._tokens.get(_token_from(handler.headers.get("Authorization")) or "")
        # No valid token: no scopes at all, so every scope check below answers 403.
        scopes: Optional[Set[str]]
        if token is None:
            scopes = set()
        elif token.scopes is None:
            scopes = None
        else:
            scopes = expand_scopes(token.scopes)
        if resource == "self":
            return self._self_model(token, scopes)
        if resource == "users":
            return self._list_users(handler, record, scopes)
        assert record.user is not None
        if resource == "user" and method == "GET":
            return self._get_user(record.user, record.query, scopes)
        if resource == "user":
            return self._delete_user(record.user, scopes)
        if resource in ("server_status", "server_kernels"):
            return self._server_api(record, resource, token, scopes)
        if resource == "tokens":
            return self._create_token(record, scopes)
        if resource == "token":
            return self._revoke_token(record, scopes)
        return self._stop_server(record.user, record.server or "", record.body, scopes)

    def _create_token(self, record: RequestRecord, scopes: Optional[Set[str]]) -> _Reply:
        """``POST /users/{name}/tokens``: a token owned by that user (201)."""
        assert record.user is not None
        if not _allowed(scopes, "tokens"):
            return _error(403, "Action is not authorized with current scopes; requires any "
                               "of [tokens]")
        with self._data_lock:
            if record.user not in self._users:
                return _error(404)
        asked = record.json if isinstance(record.json, dict) else {}
        value = secrets.token_hex(16)
        token = _Token("token", tuple(asked.get("scopes") or ()), owner=record.user,
                       id="a%d" % (len(self._tokens) + 1))
        self._tokens[value] = token
        return _json_reply({"token": value, "id": token.id, "note": asked.get("note"),
                            "expires_in": asked.get("expires_in"), "scopes": token.scopes},
                           201)

    def _revoke_token(self, record: RequestRecord, scopes: Optional[Set[str]]) -> _Reply:
        """``DELETE /users/{name}/tokens/{id}``: 204, or 404 for an unknown id."""
        if not _allowed(scopes, "tokens"):
            return _error(403)
        for value, token in list(self._tokens.items()):
            if token.owner == record.user and token.id == record.server:
                del self._tokens[value]
                return _Reply(204, b"", None)
        return _error(404)

    def minted_tokens(self) -> List[Tuple[str, str, Tuple[str, ...]]]:
        """(owner, id, scopes) of each minted token not yet revoked."""
        return [(t.owner, t.id, t.scopes or ()) for t in self._tokens.values()
                if t.owner is not None and t.id is not None]

    def _server_api(self, record: RequestRecord, resource: str, token: Optional[_Token],
                    scopes: Optional[Set[str]]) -> _Reply:
        """A single-user server's ``api/status`` or ``api/kernels``, through the proxy."""
        assert record.user is not None
        own = "access:servers!server=%s/%s" % (record.user, record.server or "")
        with self._data_lock:
            user = self._users.get(record.user)
            server = None if user is None else user.servers.get(record.server or "")
            if server is None or not server.ready:
                # the proxy sends /user/... of a server that is not running to the hub, which
                # redirects to its own /hub/user/... page
                return _Reply(302, b"", None, {"Location": "/hub" + record.path + "?"
                                               + urlencode(record.query)})
            if not _allowed(scopes, "access:servers") \
                    and not (token is not None and own in (token.scopes or ())):
                return _error(403, "Forbidden")
            if server.kernels is None:
                return _error(404, "Not Found")  # no jupyter-server behind this URL
            if resource == "server_kernels" and record.query.get("no_track_activity") is None:
                server.own_last_activity = self.clock()  # an API request is activity there
            own = server.own_last_activity
            if own is AUTO:
                own = server.last_activity or server.started
            if resource == "server_status":
                return _json_reply({"started": isoformat(server.started),
                                    "last_activity": isoformat(own),
                                    "kernels": len(server.kernels), "connections": 0})
            return _json_reply([{"id": "k%d" % index, "name": "python3",
                                 "last_activity": isoformat(own), "execution_state": state,
                                 "connections": 0}
                                for index, state in enumerate(server.kernels)])

    def _self_model(self, token: Optional[_Token], scopes: Optional[Set[str]]) -> _Reply:
        if token is None:
            return _error(403)
        model: Dict[str, Any] = {
            "kind": "service",
            "name": token.name,
            "admin": token.scopes is None,
            "roles": [],
            "token_id": "a1",
            "session_id": None,
        }
        if scopes is not None and _version_tuple(self.version) >= (2, 0):
            model["scopes"] = sorted(scopes)
        return _json_reply(model)

    def _list_users(
        self, handler: _Handler, record: RequestRecord, scopes: Optional[Set[str]]
    ) -> _Reply:
        if not _allowed(scopes, "list:users"):
            return _scope_error("list:users")
        query = record.query
        version = _version_tuple(self.version)
        state = query.get("state") if version >= (1, 3) else None
        if state not in (None, "ready", "active", "inactive"):
            return _error(400, f"Unrecognized state filter: {state!r}")
        include_stopped = query.get("include_stopped_servers", "0").lower() not in ("0", "false")
        paginated = version >= (2, 0) and _accepts_pagination(handler.headers.get("Accept"))
        with self._data_lock:
            selected = self._select(state)
            name_filter = query.get("name_filter")
            if name_filter and version >= (2, 0):
                selected = [user for user in selected if user.name.startswith(name_filter)]
            if version < (2, 0):
                offset, limit = 0, len(selected)
            else:
                bounds = self._pagination(query, paginated)
                if bounds is None:
                    return _error(400, "Invalid argument type, offset and limit must be integers")
                offset, limit = bounds
            window = selected[offset:offset + limit]
            if state == "ready":
                # JupyterHub filters `ready` in memory, after offset/limit: pages can be short.
                window = [user for user in window if user.is_ready()]
            items = [self._user_model(user, scopes, include_stopped) for user in window]
            items = [item for item in items if item]
            total = len(selected)
            body = items if not paginated else {
                "items": items,
                "_pagination": {
                    "offset": offset,
                    "limit": limit,
                    "total": total,
                    "next": self._next_page(handler, record, offset, limit, total),
                },
            }
            return _json_reply(body)

    def _pagination(self, query: Mapping[str, str], paginated: bool) -> Optional[Tuple[int, int]]:
        """(offset, limit) like JupyterHub's get_api_pagination; None for a 400."""
        # Without the pagination Accept header the hub defaults to its *maximum* page size.
        default = self.page_default if paginated else self.page_max
        try:
            offset = abs(int(query["offset"])) if "offset" in query else 0
            limit = abs(int(query.get("limit", default)))
        except ValueError:
            return None
        return offset, min(max(limit, 1), self.page_max)

    def _next_page(
        self, handler: _Handler, record: RequestRecord, offset: int, limit: int, total: int
    ) -> Optional[Dict[str, Any]]:
        """``_pagination.next``: advances by ``limit`` (not by the items returned)."""
        next_offset = offset + limit
        if next_offset >= total:
            return None
        origin = self.next_url_origin or "http://" + handler.headers.get("Host", self.url[7:])
        _, _, query_string = handler.path.partition("?")
        params = parse_qs(query_string, keep_blank_values=True)
        params["offset"] = [str(next_offset)]
        params["limit"] = [str(limit)]
        url = f"{origin}{record.path}?{urlencode(params, doseq=True)}"
        return {"offset": next_offset, "limit": limit, "url": url}

    def _user_model(self, user: FakeUser, scopes: Optional[Set[str]], include_stopped: bool) -> Any:
        """Render a user like JupyterHub's APIHandler.user_model (keys filtered by scopes)."""
        if user.raw is not None:
            return user.raw
        default = user.servers.get("")
        user_url = f"/user/{quote(user.name, safe='@~')}/"
        roles = ["admin" if user.admin else "user"] if user.roles is None else list(user.roles)
        model: Dict[str, Any] = {
            "kind": "user",
            "name": user.name,
            "admin": user.admin,
            "roles": roles,
            "groups": list(user.groups),
            "server": user_url if default is not None and default.ready else None,
            "pending": default.pending if default is not None else None,
            "created": isoformat(user.created),
            "last_activity": isoformat(user.last_activity),
            "auth_state": None,
        }
        servers = {
            name: self._server_model(user, name, server, scopes)
            for name, server in user.servers.items()
            if server.active or include_stopped
        }
        if scopes is None:
            model["servers"] = servers
            return model
        allowed: Set[str] = set()
        for scope, keys in _USER_MODEL_ACCESS.items():
            if scope in scopes:
                allowed |= keys
        model = {key: value for key, value in model.items() if key in allowed}
        if model and "servers" in allowed:
            model["servers"] = servers
        return model

    def _server_model(
        self, user: FakeUser, name: str, server: FakeServer, scopes: Optional[Set[str]]
    ) -> Dict[str, Any]:
        """Render a server like JupyterHub's APIHandler.server_model."""
        user_path = quote(user.name, safe="@~")
        if server.url is AUTO:
            url = f"/user/{user_path}/" + (f"{quote(name, safe='@~')}/" if name else "")
        else:
            url = server.url
        if name:
            progress = f"{API_PREFIX}/users/{user_path}/servers/{quote(name, safe='')}/progress"
        else:
            progress = f"{API_PREFIX}/users/{user_path}/server/progress"
        model: Dict[str, Any] = {
            "name": name,
            "last_activity": isoformat(server.last_activity),
            "started": isoformat(server.started),
            "pending": server.pending,
            "ready": server.ready,
            "stopped": not server.active,
            "url": url,
            "user_options": deepcopy(server.user_options),
            "progress_url": progress,
        }
        if scopes is None:
            if server.state is not None:
                model["state"] = deepcopy(server.state)
        elif "admin:server_state" in scopes:
            model["state"] = deepcopy(server.state or {})
        return model

    def _get_user(self, name: str, query: Mapping[str, str], scopes: Optional[Set[str]]) -> _Reply:
        if not _allowed(scopes, *_USER_MODEL_ACCESS):
            return _scope_error("read:users", "read:users:name")
        include_stopped = query.get("include_stopped_servers", "0").lower() not in ("0", "false")
        with self._data_lock:
            user = self._users.get(name)
            if user is None:
                return _error(404)
            return _json_reply(self._user_model(user, scopes, include_stopped))

    def _stop_server(
        self, name: str, server_name: str, body: bytes, scopes: Optional[Set[str]]
    ) -> _Reply:
        """``DELETE /users/{name}/server`` and ``/servers/{server_name}``, as JupyterHub 6."""
        if not _allowed(scopes, "delete:servers"):
            return _scope_error("delete:servers")
        try:
            options = json.loads(body) if body.strip() else None
        except ValueError:
            return _error(400, "Invalid JSON in body of request")
        remove = bool(options.get("remove", False)) if isinstance(options, dict) else False
        plain = {"Content-Type": "text/plain"}
        with self._data_lock:
            user = self._users.get(name)
            if user is None:
                return _error(404)
            rule = self._take_outcome(name, server_name)
            status = 204 if rule is None else rule.status
            if status not in (200, 202, 204):
                assert rule is not None
                return _error(status, rule.message or _stop_message(status, name, server_name))
            if user.raw is not None:
                if status != 202:
                    user.raw_ready = user.raw_active = False
                    self._changed()
                return _Reply(status, content_type="text/plain")
            if server_name:
                if not self.named_servers:
                    return _error(400, "Named servers are not enabled.")
                if server_name not in user.servers:
                    return _error(404, f"{name} has no server named '{server_name}'")
            elif remove:
                return _error(400, "Cannot delete the default server")
            server = user.servers.get(server_name)
            if server is None:
                # A default server that never existed: nothing to stop.
                return _Reply(status, content_type=None if status == 204 else "text/plain")
            if server.pending == "stop":
                # Already stopping (an earlier 202): the hub answers 202 again.
                if remove:
                    self._remove_on_stop.add((name, server_name))
                return _Reply(202, content_type=None, headers=plain)
            if server.active and status == 202:
                server.ready = False
                server.pending = "stop"
                if remove:
                    self._remove_on_stop.add((name, server_name))
                self._changed()
                return _Reply(202, content_type=None, headers=plain)
            if server.active:
                self._complete_stop(user, server_name, remove)
            elif remove:
                del user.servers[server_name]
                self._changed()
            return _Reply(status, content_type=None, headers=plain)

    def _delete_user(self, name: str, scopes: Optional[Set[str]]) -> _Reply:
        """``DELETE /users/{name}``."""
        if not _allowed(scopes, "delete:users"):
            return _scope_error("delete:users")
        with self._data_lock:
            user = self._users.get(name)
            if user is None:
                return _error(404)
            rule = self._take_outcome(name, None)
            if rule is not None and rule.status not in (200, 204):
                return _error(rule.status, rule.message)
            if user.raw is None:
                servers = user.servers
                if any(server.pending == "stop" for server in servers.values()):
                    message = f"{name}'s server is in the process of stopping, please wait."
                    return _error(400, message)
                alive = [server_name for server_name, server in servers.items() if server.active]
                if alive and self.refuse_delete_with_servers:
                    return _error(400, f"{name} still has running or pending servers: {alive}")
                for server_name in alive:
                    self._complete_stop(user, server_name, remove=False)
            del self._users[name]
            self._changed()
            return _Reply(204 if rule is None else rule.status, content_type=None)

    # -- sending -------------------------------------------------------------------------------

    def _send(
        self,
        handler: _Handler,
        record: RequestRecord,
        reply: _Reply,
        *,
        body: Optional[bytes] = None,
        content_length: Optional[int] = None,
        close: bool = False,
    ) -> bool:
        """Write one answer; ``body``/``content_length`` override the reply's (for faults).
        Returns False when the client was gone."""
        payload = reply.body if body is None else body
        lines = [
            f"HTTP/1.1 {reply.status} {_phrase(reply.status)}",
            f"Server: {handler.server_version}",
            f"Date: {formatdate(time.time() + self.clock_offset.total_seconds(), usegmt=True)}",
        ]
        if reply.status not in (204, 304):
            if reply.content_type:
                lines.append(f"Content-Type: {reply.content_type}")
            length = len(payload) if content_length is None else content_length
            lines.append(f"Content-Length: {length}")
        for key, value in reply.headers.items():
            if key.lower() == "content-type" and reply.status in (204, 304):
                continue
            lines.append(f"{key}: {value}")
        if close:
            lines.append("Connection: close")
            handler.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        record.status = reply.status
        self._finish(record)
        try:
            handler.wfile.write(head + (b"" if reply.status in (204, 304) else payload))
        except OSError:
            record.note = "client went away before the answer was written"
            handler.close_connection = True
            return False
        return True

    def _apply_fault(
        self, handler: _Handler, record: RequestRecord, fault: Fault, resource: str
    ) -> None:
        kind = fault.kind
        if kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            if fault.location:
                headers["Location"] = fault.location
            assert fault.status is not None
            reply = _error(fault.status, fault.message, headers)
            if fault.body is not None:
                reply.body, reply.content_type = fault.body, fault.content_type
            self._send(handler, record, reply)
        elif kind in ("reset", "drop"):
            _drop(handler, reset=kind == "reset")
        elif kind == "delay":
            if not self._pause(fault.delay):
                self._send(handler, record, self._answer(handler, record, resource))
            else:
                _drop(handler, reset=False)
        elif kind == "hang":
            self._pause(fault.delay if fault.delay > 0 else float(24 * 3600))
            _drop(handler, reset=False)
        elif kind == "hold":
            limit = fault.delay if fault.delay > 0 else 10.0
            fault.released.wait(limit)
            if self._stopping.is_set():
                _drop(handler, reset=False)
            else:
                self._send(handler, record, self._answer(handler, record, resource))
        elif kind == "trickle":
            self._trickle(handler, record, fault)
        elif kind in ("truncated", "short_body"):
            reply = self._answer(handler, record, resource)
            keep = len(reply.body) // 2 if fault.keep is None else fault.keep
            if kind == "truncated":
                self._send(handler, record, reply, body=reply.body[:keep])
            else:
                full = len(reply.body)
                self._send(handler, record, reply, body=reply.body[:keep], content_length=full)
                _drop(handler, reset=False)
        elif kind == "malformed":
            body = fault.body if fault.body is not None else b'{"items": [{"name": "x",,]'
            reply = _Reply(fault.status or 200, body, fault.content_type)
            self._send(handler, record, reply)
        elif kind == "restart":
            # The listener closes before this request goes unanswered: a client that retries
            # at once must find the port closed, as it would after a real hub's crash.
            with self._observed:
                before = self.restarts
            self.restart(fault.down_for, wait=False)
            with self._observed:
                self._observed.wait_for(
                    lambda: self.restarts > before or self._stopping.is_set(), timeout=5.0)
            _drop(handler, reset=True)

    def _trickle(self, handler: _Handler, record: RequestRecord, fault: Fault) -> None:
        """200 with a body that never completes: one byte per ``interval`` until the hub
        closes or ``duration`` elapses, then the connection is dropped."""
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 ** 6}\r\n\r\n"  # under the culler's cap: never completes
        ).encode("latin-1")
        record.status = 200
        record.note = "trickled"
        ends = None if fault.duration is None else time.monotonic() + fault.duration
        try:
            handler.wfile.write(head + b'{"items": [')
            while not self._stopping.wait(fault.interval):
                if ends is not None and time.monotonic() >= ends:
                    break
                handler.wfile.write(b" ")
        except OSError:
            record.note = "trickled until the client went away"
        _drop(handler, reset=False)


def _stop_message(status: int, user: str, server: str) -> str:
    """A JupyterHub-like message for a forced stop error."""
    log_name = f"{user}:{server}" if server else user
    if status == 400:
        return f"{log_name} is pending stop, please wait"
    if status == 403:
        return "Action is not authorized with current scopes; requires any of [delete:servers]"
    if status == 404:
        return f"{user} has no server named '{server}'" if server else "Not Found"
    return _phrase(status)


def _accepts_pagination(accept: Optional[str]) -> bool:
    """JupyterHub's check: the media type is one of the comma-separated Accept values."""
    if not accept:
        return False
    return PAGINATION_MEDIA_TYPE in {part.strip().lower() for part in accept.split(",")}


def _guess_raw_state(model: Any) -> Tuple[bool, bool]:
    """(ready, active) of a raw model, tolerating any shape."""
    ready = active = False
    servers = model.get("servers") if isinstance(model, dict) else None
    if isinstance(servers, dict):
        for server in servers.values():
            if isinstance(server, dict):
                ready = ready or server.get("ready") is True
                active = active or bool(server.get("ready") or server.get("pending"))
    if isinstance(model, dict) and model.get("server"):
        ready = active = True
    return ready, active or ready


def _drop(handler: _Handler, *, reset: bool) -> None:
    """End the connection without (more of) an answer: FIN, or RST when ``reset``."""
    handler.close_connection = True
    sock = handler.connection
    try:
        if reset:
            # Linger 0 turns close() into an RST. The rfile holds a reference to the socket,
            # so it has to be closed first for close() to release the descriptor.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.rfile.close()
            sock.close()
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
