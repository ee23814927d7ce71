"""Property tests of the decision functions (``policy.judge_server``, ``policy.judge_user``,
``cull.judge``) and of how a pass combines duplicate sightings of a user.

The safety property: a server with activity newer than ``now - timeout`` is never judged idle,
whatever the other settings, rules and fields; a user active within the timeout, or with a
server kept alive, is never deleted as idle. And the liveness one: a plainly idle server is
stopped. Deterministic for CI: ``derandomize=True`` and no example database.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import List, Optional

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.cull import Runtime, run_pass
from idle_culler_daemon.errors import ModelError
from idle_culler_daemon.hub import DeleteResult, Page, StopResult
from idle_culler_daemon.jobs import judge
from idle_culler_daemon.model import Server, User, parse_user
from idle_culler_daemon.policy import Action, judge_server, judge_user
from tests.fakes import InlineExecutor
from tests.property.strategies import user_models

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
YEAR_S = 366 * 86400

seconds = st.integers(min_value=0, max_value=10 * YEAR_S)
limits = st.integers(min_value=1, max_value=2 * YEAR_S)  # --timeout is at least 1 in practice
optional_limits = st.none() | st.integers(min_value=0, max_value=2 * YEAR_S)
patterns = st.lists(st.sampled_from(["*", "a*", "b*", "gpu-*", "staff", "x", "?"]), max_size=2)

# Any aware time from far in the past to far in the future, relative to NOW.
moments = st.builds(lambda delta: NOW + timedelta(seconds=delta),
                    st.integers(min_value=-50 * YEAR_S, max_value=50 * YEAR_S))
optional_moments = st.none() | moments

rules = st.builds(
    RuleSettings, name=st.sampled_from(["r1", "r2", "gpu", "staff"]),
    users=patterns.map(tuple), groups=patterns.map(tuple), server_names=patterns.map(tuple),
    cull=st.none() | st.booleans(), timeout=optional_limits, max_age=optional_limits,
    user_timeout=optional_limits, user_max_age=optional_limits)

cull_settings = st.builds(
    CullSettings, timeout=limits, max_age=st.integers(min_value=0, max_value=2 * YEAR_S),
    cull_users=st.booleans(), cull_admin_users=st.booleans(),
    remove_named_servers=st.booleans(), cull_default_servers=st.booleans(),
    cull_named_servers=st.booleans(), rules=st.lists(rules, max_size=3).map(tuple))

servers = st.builds(
    Server, name=st.sampled_from(["", "lab", "gpu-1", "a b"]), ready=st.booleans(),
    pending=st.none() | st.sampled_from(["spawn", "stop", "check"]),
    started=optional_moments, last_activity=optional_moments)

users = st.builds(
    User, name=st.sampled_from(["ann", "bob", "a#b", "staff-1"]),
    admin=st.none() | st.booleans(), groups=st.lists(st.sampled_from(["staff", "x", "gpu"]),
                                                     max_size=2).map(tuple),
    created=optional_moments, last_activity=optional_moments,
    servers=st.lists(servers, max_size=3, unique_by=lambda s: s.name).map(tuple))


def idle_limits(settings_: CullSettings) -> List[int]:
    """Every idle limit that could decide a server: the global one and each rule's."""
    values = [settings_.timeout]
    values += [rule.timeout for rule in settings_.rules if rule.timeout is not None]
    return values


def user_idle_limits(settings_: CullSettings) -> List[int]:
    values = [settings_.timeout]
    for rule in settings_.rules:
        values += [value for value in (rule.user_timeout, rule.timeout) if value is not None]
    return values


@SETTINGS
@given(users, servers, cull_settings, st.integers(min_value=0, max_value=2 * YEAR_S))
@example(User(name="ann"), Server(name="", ready=True, last_activity=NOW + timedelta(days=1),
                                  started=NOW - timedelta(days=3)),
         CullSettings(timeout=600), 0)
def test_a_server_active_within_the_timeout_is_never_judged_idle(user, server, settings_,
                                                                 newer_by):
    """``last_activity`` newer than ``now - timeout`` (for every timeout that could apply):
    never a stop for idleness; and without any max-age, never a stop at all."""
    limit = min([value for value in idle_limits(settings_) if value > 0] or [1])
    zero_limit = any(value == 0 for value in idle_limits(settings_))
    assume(not zero_limit)  # a rule with timeout=0 stops everything: nothing is "within" it
    active = NOW - timedelta(seconds=limit) + timedelta(seconds=1) + timedelta(
        seconds=newer_by)
    server = Server(server.name, server.ready, server.pending, server.started, active)
    verdict = judge_server(user, server, NOW, settings_)
    assert verdict.reason != "idle"
    no_max_age = not settings_.max_age and not any(rule.max_age for rule in settings_.rules)
    if no_max_age:
        assert verdict.action is Action.KEEP


@SETTINGS
@given(users, cull_settings, st.booleans(), st.integers(min_value=0, max_value=2 * YEAR_S))
def test_a_user_active_within_the_timeout_is_never_deleted_as_idle(user, settings_, kept,
                                                                   newer_by):
    limits_ = user_idle_limits(settings_)
    assume(all(value > 0 for value in limits_))
    active = NOW - timedelta(seconds=min(limits_) - 1 - newer_by)
    user = User(user.name, user.admin, user.groups, user.created, active, user.servers)
    verdict = judge_user(user, NOW, settings_, kept)
    assert verdict.reason != "idle"
    if kept:  # a server of theirs is alive: never deleted, whatever the reason
        assert verdict.action is Action.KEEP


@SETTINGS
@given(users, cull_settings, optional_moments)
def test_judging_never_raises_and_acts_only_on_ready_managed_servers(user, settings_, now):
    now = now or NOW
    for server in user.servers:
        verdict = judge_server(user, server, now, settings_)
        if verdict.action is Action.STOP:
            assert server.ready and not server.pending
            assert settings_.cull_default_servers if server.is_default \
                else settings_.cull_named_servers
            assert server.last_activity or server.started
    judge_user(user, now, settings_, False)
    judge_user(user, now, settings_, True)


@SETTINGS
@given(st.sampled_from(["", "lab"]), limits, st.integers(min_value=0, max_value=YEAR_S),
       optional_moments, st.booleans())
def test_a_plainly_idle_server_is_stopped(name, timeout, older_by, started, admin):
    """Ready, not pending, managed, no rules, idle for at least the timeout: stopped."""
    last = NOW - timedelta(seconds=timeout + older_by)
    server = Server(name, True, None, started, last)
    verdict = judge_server(User("ann", admin=admin), server, NOW, CullSettings(timeout=timeout))
    assert (verdict.action, verdict.reason) == (Action.STOP, "idle")


@SETTINGS
@given(user_models, cull_settings)
def test_parsed_models_are_judged_without_raising(model, settings_):
    """Whatever the parser accepts, the decision functions can judge (now = NOW)."""
    try:
        user = parse_user(model)
    except (ModelError, OverflowError):  # OverflowError: see the model property tests
        return
    job = judge(user, NOW, settings_)
    if job is not None:
        stopped = {stop.server for stop in job.stops}
        for server in user.servers:
            if server.name in stopped and server.last_activity is not None:
                verdict = judge_server(user, server, NOW, settings_)
                assert verdict.acts


# ---------------------------------------------------------------------------------------------
# duplicate sightings of one user within a pass: only what every sighting agrees on is done


class OnePageHub:
    """A ``cull.HubApi`` serving one fixed page, recording the DELETEs it receives."""

    def __init__(self, items: list) -> None:
        self.items = items
        self.stops: List[tuple] = []
        self.deletes: List[str] = []

    def users_page(self, state: Optional[str], offset: int) -> Page:
        return Page(items=self.items if state == "ready" else [], offset=offset)

    def stop_server(self, user: str, server: str, remove: bool) -> StopResult:
        self.stops.append((user, server))
        return StopResult.STOPPED

    def delete_user(self, user: str) -> DeleteResult:
        self.deletes.append(user)
        return DeleteResult.DELETED


def sighting(idle_by_server: dict) -> dict:
    """A model of user ``dup`` whose servers are idle for the given seconds."""
    def stamp(idle_s: int) -> str:
        return (NOW - timedelta(seconds=idle_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"name": "dup", "admin": False, "groups": [],
            "created": stamp(10 ** 6), "last_activity": stamp(min(idle_by_server.values())),
            "servers": {name: {"name": name, "ready": True, "pending": None,
                               "started": stamp(10 ** 6), "last_activity": stamp(idle)}
                        for name, idle in idle_by_server.items()}}


idle_maps = st.dictionaries(st.sampled_from(["", "lab", "gpu"]),
                            st.sampled_from([10, 7200]), min_size=1, max_size=3)


@SETTINGS
@given(st.lists(idle_maps, min_size=2, max_size=3), st.booleans())
@example([{"": 10}, {"": 7200}], True)
def test_duplicate_sightings_stop_only_what_every_sighting_judged_idle(sightings, cull_users):
    """Any order of sightings: a server is stopped only if every sighting shows it idle
    (a sighting without the server is doubt too), and the user is deleted only if every
    sighting would delete it (``UserJob.merged``: "doubt keeps")."""
    hub = OnePageHub([sighting(one) for one in sightings])
    settings_ = CullSettings(timeout=3600, cull_users=cull_users)
    run_pass(hub, settings_, NOW, Runtime(InlineExecutor(), 1))
    idle_everywhere = set.intersection(*[
        {name for name, idle in one.items() if idle >= 3600} for one in sightings])
    assert set(hub.stops) <= {("dup", name) for name in idle_everywhere}
    assert len(hub.stops) == len(set(hub.stops)), "a server was stopped twice"
    all_idle = all(all(idle >= 3600 for idle in one.values()) for one in sightings)
    if hub.deletes:
        assert cull_users and all_idle and hub.deletes == ["dup"]


# Group memberships that between them make every group pattern of ``rules`` match and miss.
GROUP_CHOICES = [(), ("staff",), ("x",), ("gpu",), ("a1",), ("b1",), ("gpu-1",),
                 ("staff", "x", "gpu", "a1", "b1", "gpu-1")]


def with_groups(user: User, groups) -> User:
    return User(user.name, user.admin, groups, user.created, user.last_activity, user.servers)


@SETTINGS
@given(users, cull_settings, st.booleans())
def test_unknown_groups_act_only_where_every_membership_would_act_alike(user, settings_, kept):
    """A user whose groups the model does not show (``groups`` None) is stopped or deleted
    only when the verdict would be the same whatever their groups are: doubt keeps."""
    judges = [lambda someone, server=server: judge_server(someone, server, NOW, settings_)
              for server in user.servers]
    judges.append(lambda someone: judge_user(someone, NOW, settings_, kept))
    for judge_one in judges:
        verdict = judge_one(with_groups(user, None))
        if verdict.acts:
            assert all(judge_one(with_groups(user, groups)) == verdict
                       for groups in GROUP_CHOICES)
