"""Pure cull decisions: which server to stop and which user to delete, and why.

Everything here is a function of its arguments: the parsed models, ``now`` and the settings.
Nothing logs, reads the clock or talks to the hub, so each rule (docs/behaviour.md#server-rules,
#user-rules and #rules) is one small test. The caller logs the verdicts.
"""

import enum
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import FrozenSet, NamedTuple, Optional, Sequence

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.model import Options, Server, ServerStatus, User

DEFAULT_RULE = "default"


class Action(enum.Enum):
    KEEP = "keep"
    STOP = "stop"
    DELETE = "delete"


class Verdict(NamedTuple):
    """A decision with the reason, the rule that made it and the figures behind it.

    A named tuple rather than a dataclass: a pass keeps one per job until it acts, and at
    50,000 users the lighter object is megabytes less memory.
    """

    action: Action
    reason: str
    rule: str = DEFAULT_RULE
    idle_for: Optional[timedelta] = None
    age: Optional[timedelta] = None
    # A stop that waits for the server's own word (--check-kernels): the server is kept if a
    # kernel is busy or its own activity is less than this many seconds old.
    check_within_s: Optional[int] = None

    @property
    def acts(self) -> bool:
        return self.action is not Action.KEEP


def _matches(patterns: Sequence[str], values: Sequence[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns for value in values)


def _options_match(rule: RuleSettings, options: Optional[Options]) -> bool:
    """The rule's ``profiles`` and ``user_options`` matchers against a server's options.

    Options the model does not carry (None) match nothing. ``user_options`` pairs on the same
    key are alternatives; every key named must match.
    """
    if options is None:
        return False
    values = dict(options)
    if rule.profiles and not ("profile" in values
                              and _matches(rule.profiles, [values["profile"]])):
        return False
    for key in dict(rule.user_options):
        wanted = [pattern for name, pattern in rule.user_options if name == key]
        if key not in values or not _matches(wanted, [values[key]]):
            return False
    return True


def rule_matches(rule: RuleSettings, user: User, server_name: Optional[str],
                 user_options: Optional[Options] = None) -> bool:
    """Does ``rule`` apply to this user (``server_name`` None) or to this user's server?

    All matchers of a rule must match. A rule with ``server_names``, ``profiles`` or
    ``user_options`` applies to servers only, never to the user record itself;
    ``user_options`` are the server's (``Server.user_options``: None when unknown).
    """
    if rule.users and not _matches(rule.users, [user.name]):
        return False
    if rule.groups and not _matches(rule.groups, user.groups):
        return False
    if rule.needs_user_options and (server_name is None
                                    or not _options_match(rule, user_options)):
        return False
    if rule.server_names:
        return server_name is not None and _matches(rule.server_names, [server_name])
    return True


def select_rule(rules: Sequence[RuleSettings], user: User, server_name: Optional[str],
                user_options: Optional[Options] = None) -> Optional[RuleSettings]:
    """Return the first rule that matches, or None when the global settings apply."""
    for rule in rules:
        if rule_matches(rule, user, server_name, user_options):
            return rule
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
    rule = select_rule(settings.rules, user, server.name, server.user_options)
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
    past_max_age = bool(max_age and age is not None and age >= timedelta(seconds=max_age))
    # an admin, or a user whose admin flag the token cannot read: doubt keeps
    spared = user.admin is not False and not settings.cull_admin_users
    if idle_for >= timedelta(seconds=timeout):
        check = settings.check_kernels if rule is None or rule.check_kernels is None \
            else rule.check_kernels
        # --max-age wins: a server past it is stopped whatever its kernels do
        ask = timeout if check and not (past_max_age and not spared) else None
        return Verdict(Action.STOP, "idle", rule_name, idle_for, age, ask)
    if past_max_age:
        if spared:
            return Verdict(Action.KEEP, "admin", rule_name, idle_for, age)
        return Verdict(Action.STOP, "max-age", rule_name, idle_for, age)
    return Verdict(Action.KEEP, "active", rule_name, idle_for, age)


def kernels_needed(verdict: Verdict, status: ServerStatus) -> bool:
    """After ``api/status``: is ``api/kernels`` worth asking for?

    Only while the server is still to be stopped and may run kernels: a server that reports
    no kernel cannot have a busy one, and one whose own activity keeps it needs no more.
    """
    return verdict.acts and status.kernel_states is None and status.kernels != 0


def judge_server_status(verdict: Verdict, status: ServerStatus, now: datetime) -> Verdict:
    """A second look, with the server's own word, at a stop that asked for one.

    The hub's ``last_activity`` lags the server's by up to its ``last_activity_interval``
    and never sees a long computation: the server is kept when one of its kernels is
    ``busy`` (reason ``kernel-busy``) or when its own ``last_activity`` is within the timeout
    (``server-active``). Any other verdict is returned as it is.
    """
    if verdict.action is not Action.STOP or verdict.check_within_s is None:
        return verdict
    own_idle = now - status.last_activity if status.last_activity else None
    if "busy" in (status.kernel_states or ()):
        return Verdict(Action.KEEP, "kernel-busy", verdict.rule, own_idle, verdict.age)
    if own_idle is not None and own_idle < timedelta(seconds=verdict.check_within_s):
        return Verdict(Action.KEEP, "server-active", verdict.rule, own_idle, verdict.age)
    return verdict


def judge_user(user: User, now: datetime, settings: CullSettings, servers_kept: bool) -> Verdict:
    """Decide whether the user record should be deleted once its idle servers are stopped.

    ``servers_kept`` says whether any server of the user is kept by ``judge_server``: a user
    with a server still alive is never deleted (the hub refuses while a server is stopping).
    The caller deletes only when every stop of this pass has finished. Judged on the model read
    before the stops, because the hub sets ``last_activity`` to now when it stops a server.
    """
    if not settings.cull_users:
        return Verdict(Action.KEEP, "cull-users-off")
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


class GuardVerdict(NamedTuple):
    """What the mass-cull guard decides over the whole plan of a pass.

    ``held`` are the indices (into the planned stops) that wait for the next pass;
    ``tripped`` means ``--max-stop-fraction`` was exceeded: nothing at all is done.
    """

    planned: int
    running: int
    held: FrozenSet[int] = frozenset()
    tripped: bool = False


def guard_plan(idle_for: Sequence[Optional[timedelta]], running: int,
               settings: CullSettings) -> GuardVerdict:
    """Judge a pass's planned stops (their idle times, in plan order) before any is sent.

    When activity reporting breaks (a proxy or network change, a hub upgrade), every server
    looks idle at once. With ``max_stop_fraction`` F, a plan that would stop more than F of
    the ``running`` servers the pass saw is refused whole. Otherwise, with
    ``max_stops_per_pass`` N, only the N longest idle go; the others are held back.
    """
    planned = len(idle_for)
    limit = settings.max_stop_fraction
    if limit is not None and planned > limit * running:
        return GuardVerdict(planned, running, frozenset(range(planned)), tripped=True)
    cap = settings.max_stops_per_pass
    if not cap or planned <= cap:
        return GuardVerdict(planned, running)
    zero = timedelta(0)
    longest_first = sorted(range(planned), key=lambda index: idle_for[index] or zero,
                           reverse=True)
    return GuardVerdict(planned, running, frozenset(longest_first[cap:]))
