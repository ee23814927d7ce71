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


@dataclass(frozen=True)
class Server:
    """One server of a user; ``name`` is ``""`` for the default server."""

    name: str
    ready: bool
    pending: Optional[str] = None
    started: Optional[datetime] = None
    last_activity: Optional[datetime] = None

    @property
    def is_default(self) -> bool:
        return self.name == ""


@dataclass(frozen=True)
class User:
    """One user with the servers the hub reported for it."""

    name: str
    admin: Optional[bool] = False  # None: the token may not read it (needs read:users:name)
    groups: Optional[Tuple[str, ...]] = ()  # None: not shown (needs read:users:groups)
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


def _check_sendable(name: str) -> None:
    """Refuse a name no request could carry: one that is not valid Unicode (a lone surrogate,
    which has no UTF-8 form)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ModelError("name %r is not valid Unicode (a lone surrogate)" % (name,)) from None


def parse_server(name: str, model: Any) -> Server:
    """Parse one entry of a user's ``servers`` dict."""
    if not isinstance(model, Mapping):
        raise ModelError("server %r is not an object" % name)
    # Hub 0.9+ reports ``ready``; older hubs only a ``url`` once the server is up.
    if "ready" in model:
        ready = _flag(model, "ready", False)
    else:
        ready = bool(_text(model, "url"))
    return Server(name=name, ready=ready, pending=_text(model, "pending"),
                  started=parse_hub_time(model.get("started")),
                  last_activity=parse_hub_time(model.get("last_activity")))


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
    _check_sendable(name)
    try:
        groups = model.get("groups")  # absent or null: unknown, not "in no group"
        if groups is not None and (not isinstance(groups, list)
                                   or not all(isinstance(g, str) for g in groups)):
            raise ModelError("groups %r is not a list of names" % (groups,))
        created = parse_hub_time(model.get("created"))
        last_activity = parse_hub_time(model.get("last_activity"))
        servers_model = model.get("servers")
        if servers_model is None and "servers" not in model:
            servers: Tuple[Server, ...] = ()
            if _text(model, "server") or _text(model, "pending"):
                servers = (Server(name="", ready=bool(_text(model, "server")),
                                  pending=_text(model, "pending"), started=None,
                                  last_activity=last_activity),)
        elif isinstance(servers_model, Mapping):
            for key in servers_model:
                if not isinstance(key, str):
                    raise ModelError("server name %r is not a string" % (key,))
                _check_sendable(key)
            servers = tuple(parse_server(key, value) for key, value in servers_model.items())
        elif servers_model is None:
            servers = ()
        else:
            raise ModelError("servers %r is not an object" % (servers_model,))
        admin = _flag(model, "admin", False) if "admin" in model else None
        return User(name=name, admin=admin, groups=None if groups is None else tuple(groups),
                    created=created, last_activity=last_activity, servers=servers)
    except ModelError as exc:
        raise ModelError("user %r: %s" % (name, exc)) from None
