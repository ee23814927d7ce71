"""Value types for the hub's user and server models, and their parser.

The parser is strict about what matters for a decision and lenient about the rest: a field the
culler relies on that has the wrong type makes the whole user a ``ModelError`` (the caller skips
that user, so nothing of theirs is stopped on doubtful data), while unknown extra fields are
ignored. Timestamps without a zone are UTC, as the hub writes them.
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Tuple

import dateutil.parser

from idle_culler_daemon.errors import ModelError

Options = Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class Server:
    """One server of a user; ``name`` is ``""`` for the default server.

    ``url`` is the server's path on the proxy (``/user/ann/lab/``; a whole URL on hubs with
    subdomains), None when the model has none. ``user_options`` holds the top-level scalar
    values of the server's ``user_options`` as text (strings as they are, ``true``/``false``,
    numbers); None when the model does not carry them at all (the token lacks
    ``read:servers``, or the hub is older), which is not the same as none set (``()``).
    """

    name: str
    ready: bool
    pending: Optional[str] = None
    started: Optional[datetime] = None
    last_activity: Optional[datetime] = None
    url: Optional[str] = None
    user_options: Optional[Options] = None

    @property
    def is_default(self) -> bool:
        return self.name == ""

    @property
    def profile(self) -> Optional[str]:
        """``user_options["profile"]``: the profile slug of KubeSpawner's ``profile_list``."""
        return dict(self.user_options or ()).get("profile")


@dataclass(frozen=True)
class ServerStatus:
    """What a single-user server (jupyter-server) says about itself.

    From ``api/status``: its own ``last_activity`` (API requests, kernel and terminal activity)
    and how many kernels it runs (None when it does not say); from ``api/kernels``, when asked,
    the ``execution_state`` of each kernel (``starting``, ``idle``, ``busy``, ...).
    """

    last_activity: Optional[datetime]
    kernels: Optional[int] = None
    kernel_states: Optional[Tuple[str, ...]] = None


@dataclass(frozen=True)
class User:
    """One user with the servers the hub reported for it."""

    name: str
    admin: Optional[bool] = False  # None: the token may not read it (needs read:users:name)
    groups: Tuple[str, ...] = ()
    created: Optional[datetime] = None
    last_activity: Optional[datetime] = None
    servers: Tuple[Server, ...] = ()


def parse_hub_time(value: Any) -> Optional[datetime]:
    """Parse an ISO 8601 timestamp from the hub into an aware UTC datetime.

    Returns None for a missing value. Raises ModelError for anything else that is not a
    parseable timestamp string.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ModelError("timestamp %r is not a string" % (value,))
    try:
        # The stdlib reads the hub's own format (…T12:00:00.123456Z) several times faster;
        # dateutil reads every other ISO 8601 spelling (and Python 3.9 has no 'Z').
        stamp = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        try:
            stamp = dateutil.parser.isoparse(value)
        except (ValueError, OverflowError) as exc:
            raise ModelError("timestamp %r cannot be parsed: %s" % (value, exc)) from None
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=timezone.utc)  # the hub writes naive UTC in some versions
    try:
        return stamp.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
        raise ModelError("timestamp %r is out of range" % (value,)) from None


def _text(model: Mapping[str, Any], key: str, default: Optional[str] = None) -> Optional[str]:
    value = model.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ModelError("%s %r is not a string" % (key, value))
    return value


def _flag(model: Mapping[str, Any], key: str, default: bool) -> bool:
    value = model.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ModelError("%s %r is not a boolean" % (key, value))
    return value


def _scalar_text(value: Any) -> Optional[str]:
    """A top-level option value as text for matching; None for lists, objects and null."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def parse_user_options(model: Mapping[str, Any]) -> Optional[Options]:
    """The server's ``user_options`` as (key, text) pairs; None when the model has none.

    ``null`` is an empty set of options (what a spawner without options stores); anything
    other than an object is a ModelError: a rule on options must not guess.
    """
    if "user_options" not in model:
        return None
    options = model["user_options"]
    if options is None:
        return ()
    if not isinstance(options, Mapping):
        raise ModelError("user_options %r is not an object" % (options,))
    pairs = ((str(key), _scalar_text(value)) for key, value in options.items())
    return tuple((key, value) for key, value in pairs if value is not None)


def parse_server(name: str, model: Any) -> Server:
    """Parse one entry of a user's ``servers`` dict."""
    if not isinstance(model, Mapping):
        raise ModelError("server %r is not an object" % name)
    # Hub 0.9+ reports ``ready``; older hubs only a ``url`` once the server is up.
    if "ready" in model:
        ready = _flag(model, "ready", False)
    else:
        ready = bool(_text(model, "url"))
    url = model.get("url")
    return Server(name=name, ready=ready, pending=_text(model, "pending"),
                  started=parse_hub_time(model.get("started")),
                  last_activity=parse_hub_time(model.get("last_activity")),
                  url=url if isinstance(url, str) and url else None,
                  user_options=parse_user_options(model))


def parse_server_status(status: Any, kernels: Any = None) -> ServerStatus:
    """Parse a single-user server's ``api/status`` and, when asked, its ``api/kernels``.

    Raises ModelError when the answers are not what jupyter-server sends: the caller then
    judges the server by the hub's data alone.
    """
    if not isinstance(status, Mapping) or "last_activity" not in status:
        raise ModelError("api/status is not a jupyter-server status (no last_activity)")
    count = status.get("kernels")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise ModelError("api/status: kernels %r is not a number" % (count,))
    states = None
    if kernels is not None:
        if not isinstance(kernels, list) or not all(isinstance(k, Mapping) for k in kernels):
            raise ModelError("api/kernels is not a list of kernels")
        states = tuple(str(kernel.get("execution_state")) for kernel in kernels)
    return ServerStatus(last_activity=parse_hub_time(status.get("last_activity")),
                        kernels=count, kernel_states=states)


def parse_user(model: Any) -> User:
    """Parse a user model from ``GET /users``.

    Servers come from ``servers`` (hub 0.9+, needs ``read:servers``); without that key the
    default server is taken from the legacy ``server`` (URL) and ``pending`` fields, with the
    user's own timestamps, as the reference does for old hubs.
    """
    if not isinstance(model, Mapping):
        raise ModelError("user model is not an object")
    name = model.get("name")
    if not isinstance(name, str) or not name:
        raise ModelError("user name %r is not a non-empty string" % (name,))
    try:
        groups = model.get("groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ModelError("groups %r is not a list of names" % (groups,))
        created = parse_hub_time(model.get("created"))
        last_activity = parse_hub_time(model.get("last_activity"))
        servers_model = model.get("servers")
        if servers_model is None and "servers" not in model:
            servers: Tuple[Server, ...] = ()
            if _text(model, "server") or _text(model, "pending"):
                servers = (Server(name="", ready=bool(_text(model, "server")),
                                  pending=_text(model, "pending"), started=None,
                                  last_activity=last_activity,
                                  url=_text(model, "server") or None),)
        elif isinstance(servers_model, Mapping):
            servers = tuple(parse_server(str(key), value) for key, value in servers_model.items())
            for key in servers_model:
                if not isinstance(key, str):
                    raise ModelError("server name %r is not a string" % (key,))
        elif servers_model is None:
            servers = ()
        else:
            raise ModelError("servers %r is not an object" % (servers_model,))
        admin = _flag(model, "admin", False) if "admin" in model else None
        return User(name=name, admin=admin, groups=tuple(groups),
                    created=created, last_activity=last_activity, servers=servers)
    except ModelError as exc:
        raise ModelError("user %r: %s" % (name, exc)) from None
