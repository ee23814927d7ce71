"""What the culler's token must be allowed to do: scopes per action, hints, the preflight verdict.

JupyterHub 2+ grants a token scopes through roles, and ``GET /hub/api/user`` with the token
returns its own model, with ``scopes`` on current hubs. Before the first pass the culler
compares them with what its configuration needs (:func:`verdict`); a hub that does not report
scopes is judged by its answers instead: the first 401/403 of each kind of request is logged
once with :func:`scope_hint`. Pure: no I/O here.
"""

from dataclasses import dataclass
from typing import Any, List, Mapping, Sequence, Tuple

from idle_culler_daemon.config import CullSettings

# The scope each kind of request a pass sends needs, as said in a hint.
# A kernel check mints a token owned by the server's user (POST /users/{name}/tokens), which
# needs "tokens"; the culler's own token never goes to a server, so it needs no access:servers.
_ACTION_SCOPES = {"stop": "delete:servers", "delete": "delete:users (or admin:users)",
                  "check": "tokens"}

# What each scope of JupyterHub 2+ also grants, for hubs that report unexpanded scopes.
_IMPLIED_BY = {
    "list:users": ("admin:users",),
    "read:users:activity": ("read:users", "admin:users"),
    "read:users:groups": ("read:users", "admin:users"),
    "read:servers": ("admin:servers",),
    "delete:servers": ("admin:servers",),
    "delete:users": ("admin:users",),
}

Needed = Tuple[Tuple[str, ...], ...]  # each entry lists alternatives: any one of them will do


def scope_hint(action: str) -> str:
    """The scope a kind of request (``stop``, ``delete``, ``check``) needs, for messages."""
    return _ACTION_SCOPES[action]


def read_scopes(settings: CullSettings) -> Needed:
    """The scopes a pass needs to see what it judges: all that a ``--dry-run`` needs."""
    needed = [("list:users",), ("read:users:activity",), ("read:servers",)]
    if settings.needs_groups:
        needed.append(("read:users:groups",))
    if settings.may_check_kernels:  # a token per check, owned by the server's user
        needed.append(("tokens",))
    return tuple(needed)


def write_scopes(settings: CullSettings) -> Needed:
    """The scopes a pass needs to act: stop servers, and delete users with ``cull_users``."""
    needed = [("delete:servers",)]
    if settings.cull_users:
        needed.append(("delete:users", "admin:users"))
    return tuple(needed)


def advised_scopes(settings: CullSettings) -> Needed:
    """Scopes that are not required but without which some users are never deleted.

    Without ``read:users`` the hub hides ``created``, so a user who was never active has no
    timestamp to judge and is kept.
    """
    return (("read:users", "admin:users"),) if settings.cull_users else ()


def missing_scopes(needed: Needed, granted: Sequence[Any]) -> List[str]:
    """Name each needed scope that ``granted`` lacks (``a or b`` for alternatives).

    A scope held with a filter (``read:servers!group=x``, ``tokens!group=x``) counts as held:
    the hub then shows (or mints tokens for) only the users the filter allows, which is the
    operator's choice.
    """
    held = {scope.split("!", 1)[0] for scope in granted if isinstance(scope, str)}

    def has(scope: str) -> bool:
        return scope in held or any(parent in held for parent in _IMPLIED_BY.get(scope, ()))

    return [" or ".join(options) for options in needed if not any(has(s) for s in options)]


# Before JupyterHub 2.0 there were no scopes: a token could do everything a culler needs when
# its owner (a service or a user) was an admin, and hardly anything otherwise.
ADMIN_BEFORE_SCOPES = ("admin (JupyterHub before 2.0 has no scopes: give the service "
                       "\"admin\": True)")


@dataclass(frozen=True)
class Verdict:
    """What the preflight learnt from the token's own model."""

    reported: bool                 # the hub listed the token's scopes
    granted: Tuple[str, ...] = ()
    missing: Tuple[str, ...] = ()  # required and absent: the culler refuses to run
    advised: Tuple[str, ...] = ()  # advised and absent: a warning
    unused: Tuple[str, ...] = ()   # needed to act, absent, and a dry run does not act: a warning


def verdict(owner: Mapping[str, Any], settings: CullSettings, has_scopes: bool = True,
            dry_run: bool = False) -> Verdict:
    """Judge the token's model (``GET /user``) against what ``settings`` need.

    ``has_scopes`` is False for a hub before 2.0, where the owner's ``admin`` flag decides.
    A dry run sends no DELETE, so it needs only the read scopes; the write scopes it lacks
    are ``unused`` (a warning: the real run will need them), not ``missing``.
    """
    granted = owner.get("scopes")
    if not isinstance(granted, list):
        if not has_scopes and owner.get("admin") is False:
            return Verdict(reported=False, missing=(ADMIN_BEFORE_SCOPES,))
        return Verdict(reported=False)
    writes = tuple(missing_scopes(write_scopes(settings), granted))
    return Verdict(reported=True,
                   granted=tuple(sorted(str(scope) for scope in granted)),
                   missing=tuple(missing_scopes(read_scopes(settings), granted))
                   + (() if dry_run else writes),
                   advised=tuple(missing_scopes(advised_scopes(settings), granted)),
                   unused=writes if dry_run else ())
