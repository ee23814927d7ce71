"""The planner's side of the warnings (--warn-before): the plan carries them, from the verdicts
it judged with, and claims nothing; acting claims and sends them.

See docs/behaviour.md#webhook-notifications.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from idle_culler_daemon import jobs
from idle_culler_daemon.acting import Actor, act
from idle_culler_daemon.config import CullSettings
from idle_culler_daemon.context import PassContext, Runtime
from idle_culler_daemon.forewarn import GUARD_TRIPPED, SERVER_STOP_SOON, Warned
from idle_culler_daemon.model import Server, User
from idle_culler_daemon.planning import plan_pass
from idle_culler_daemon.stats import PassStats

T0 = datetime(2026, 12, 3, 13, 0, tzinfo=timezone.utc)
SETTINGS = CullSettings(timeout=3600, warn_before=900)


def user(name, idle_min):
    at = T0 - timedelta(minutes=idle_min)
    return User(name=name, created=at, last_activity=at,
                servers=(Server(name="", ready=True, started=at, last_activity=at),))


def test_plan_warnings_come_from_the_planners_verdicts_and_claim_nothing(monkeypatch):
    judged = []
    real = jobs.judge_server
    monkeypatch.setattr(jobs, "judge_server", lambda *a: judged.append(a[1].name) or real(*a))
    warned = Warned()
    plan = plan_pass([user("ann", 50), user("bob", 10), user("cat", 70)], T0, SETTINGS,
                     PassStats(), forewarned=warned)
    assert [(n.event, n.user) for n in plan.warnings] == [(SERVER_STOP_SOON, "ann")]
    assert plan.due == plan.warnings and len(judged) == 3  # each server judged once
    assert [job.user for job in plan.jobs] == ["cat"]
    assert len(warned) == 0  # a plan that is not acted on skips nothing


def test_plan_warnings_are_claimed_when_the_plan_is_acted_on():
    warned, sent = Warned(), []

    class Outbox:
        def send(self, notice):
            sent.append(notice)
            return True

    plan = plan_pass([user("ann", 50)], T0, SETTINGS, PassStats(), forewarned=warned)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for _ in range(2):  # the second plan holds the same stretch: claimed already
            context = PassContext.start(Runtime(pool, 1, outbox=Outbox(), forewarned=warned))
            act(plan, Actor(None, SETTINGS, context, None), context)
    assert [(n.event, n.user) for n in sent] == [(SERVER_STOP_SOON, "ann")] and len(warned) == 1


def test_plan_a_tripped_guard_warns_nobody_and_carries_its_notice():
    settings = replace(SETTINGS, max_stop_fraction=0.5)
    stats = PassStats()
    plan = plan_pass([user("ann", 50), user("bob", 70), user("cat", 80)], T0, settings, stats,
                     forewarned=Warned())
    assert stats.guard_tripped and plan.warnings == () and plan.due == ()
    assert plan.tripped.event == GUARD_TRIPPED
    assert dict(plan.tripped.counts) == {"planned": 2, "running": 3, "limit": 0.5}
