"""Pure cull decisions: which server to stop and which user to delete, and why.

Everything here is a function of its arguments: the parsed models, ``now`` and the settings.
Nothing logs, reads the clock or talks to the hub, so each rule (docs/behaviour.md#server-rules,
#user-rules and #rules) is one small test. The caller logs the verdicts.
"""

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Optional, Sequence

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.model import Server, User

DEFAULT_RULE = "default"
GROUPS_UNKNOWN = "groups-unknown"  # the reason of a keep decided by groups the hub hides


class Action(enum.Enum):
    KEEP = "keep"
    STOP = "stop"
    DELETE = "delete"


@dataclass(frozen=True)
class Verdict:
    """A decision with the reason, the rule that made it and the figures behind it."""

    action: Action
    reason: str
    rule: str = DEFAULT_RULE
    idle_for: Optional[timedelta] = None
    age: Optional[timedelta] = None

    @property
    def acts(self) -> bool:
        return self.action is not Action.KEEP


def _matches(patterns: Sequence[str], values: Sequence[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns for value in values)


def rule_matches(rule: RuleSettings, user: User, server_name: Optional[str]) -> Optional[bool]:
    """Does ``rule`` apply to this user (``server_name`` None) or to this user's server?

    All matchers of a rule must match. A rule with ``server_names`` applies to servers only,
    never to the user record itself. None: only the user's groups could tell, and the model
    does not show them.
    """
    if rule.users and not _matches(rule.users, [user.name]):
        return False
    if rule.server_names and (server_name is None
                              or not _matches(rule.server_names, [server_name])):
        return False
    if rule.groups:
        return None if user.groups is None else _matches(rule.groups, user.groups)
    return True


def select_rule(rules: Sequence[RuleSettings], user: User,
                server_name: Optional[str]) -> Optional[RuleSettings]:
    """Return the first rule that matches, or None when the global settings apply."""
    for rule in rules:
        if rule_matches(rule, user, server_name):
            return rule
    return None


def undecided_rule(rules: Sequence[RuleSettings], user: User,
                   server_name: Optional[str]) -> Optional[RuleSettings]:
    """The first rule that only the user's unknown groups could decide, when it comes before
    any rule that matches: then nobody knows which rule applies, and doubt keeps."""
    for rule in rules:
        matched = rule_matches(rule, user, server_name)
        if matched is None:
            return rule
        if matched:
            return None
    return None


def _pick(*values: Optional[int]) -> int:
    for value in values:
        if value is not None:
            return value
    return 0


def judge_server(user: User, server: Server, now: datetime, settings: CullSettings) -> Verdict:
    """Decide whether one server should be stopped (docs/behaviour.md#server-rules)."""
    if server.pending:
        return Verdict(Action.KEEP, "pending-" + server.pending)
    if not server.ready:
        return Verdict(Action.KEEP, "not-ready")
    managed = settings.cull_default_servers if server.is_default else settings.cull_named_servers
    if not managed:
        return Verdict(Action.KEEP, "not-managed")
    undecided = undecided_rule(settings.rules, user, server.name)
    if undecided is not None:
        return Verdict(Action.KEEP, GROUPS_UNKNOWN, undecided.name)
    rule = select_rule(settings.rules, user, server.name)
    rule_name = rule.name if rule else DEFAULT_RULE
    age = now - server.started if server.started else None
    since = server.last_activity or server.started
    idle_for = now - since if since else None
    if rule is not None and rule.cull is False:
        return Verdict(Action.KEEP, "excluded", rule_name, idle_for, age)
    if idle_for is None:
        return Verdict(Action.KEEP, "no-timestamps", rule_name)
    timeout = _pick(rule.timeout if rule else None, settings.timeout)
    max_age = _pick(rule.max_age if rule else None, settings.max_age)
    if idle_for >= timedelta(seconds=timeout):
        return Verdict(Action.STOP, "idle", rule_name, idle_for, age)
    if max_age and age is not None and age >= timedelta(seconds=max_age):
        if user.admin is not False and not settings.cull_admin_users:
            # an admin, or a user whose admin flag the token cannot read: doubt keeps
            return Verdict(Action.KEEP, "admin", rule_name, idle_for, age)
        return Verdict(Action.STOP, "max-age", rule_name, idle_for, age)
    return Verdict(Action.KEEP, "active", rule_name, idle_for, age)


def judge_user(user: User, now: datetime, settings: CullSettings, servers_kept: bool) -> Verdict:
    """Decide whether the user record should be deleted once its idle servers are stopped.

    ``servers_kept`` says whether any server of the user is kept by ``judge_server``: a user
    with a server still alive is never deleted (the hub refuses while a server is stopping).
    The caller deletes only when every stop of this pass has finished. Judged on the model read
    before the stops, because the hub sets ``last_activity`` to now when it stops a server.
    """
    if not settings.cull_users:
        return Verdict(Action.KEEP, "cull-users-off")
    undecided = undecided_rule(settings.rules, user, None)
    if undecided is not None:
        return Verdict(Action.KEEP, GROUPS_UNKNOWN, undecided.name)
    rule = select_rule(settings.rules, user, None)
    rule_name = rule.name if rule else DEFAULT_RULE
    since = user.last_activity or user.created
    idle_for = now - since if since else None
    age = now - user.created if user.created else None
    if rule is not None and rule.cull is False:
        return Verdict(Action.KEEP, "excluded", rule_name, idle_for, age)
    if user.admin is not False and not settings.cull_admin_users:
        return Verdict(Action.KEEP, "admin", rule_name, idle_for, age)
    if servers_kept:
        return Verdict(Action.KEEP, "servers-alive", rule_name, idle_for, age)
    if idle_for is None:
        return Verdict(Action.KEEP, "no-timestamps", rule_name)
    timeout = _pick(rule.user_timeout if rule else None, rule.timeout if rule else None,
                    settings.timeout)
    max_age = _pick(rule.user_max_age if rule else None, rule.max_age if rule else None,
                    settings.max_age)
    if idle_for >= timedelta(seconds=timeout):
        return Verdict(Action.DELETE, "idle", rule_name, idle_for, age)
    if max_age and age is not None and age >= timedelta(seconds=max_age):
        return Verdict(Action.DELETE, "max-age", rule_name, idle_for, age)
    return Verdict(Action.KEEP, "active", rule_name, idle_for, age)
