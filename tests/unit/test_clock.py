"""The hub's clock (docs/behaviour.md#the-hubs-clock): the offset from Date headers, when to say
so, and a pass on the in-memory hub whose clock is 2 h ahead of the culler's, then 2 h behind."""

import logging
from datetime import timedelta

import pytest

from idle_culler_daemon.clock import ClockWatch, Notice, Sample, hub_offset, sample
from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.cull import Runtime, run_pass
from idle_culler_daemon.stats import PassStats
from tests.fakes import NOW, InlineExecutor, MemoryHub, stamp

HOUR = 3600
MINUTE = 60


def seconds(value):
    return timedelta(seconds=value)


def dated(offset_s, after_s=0.3):
    """A sample whose answer arrived ``after_s`` after NOW (culler's clock), from a hub whose
    clock is ``offset_s`` ahead; its Date truncated to the second, as HTTP has it."""
    hub_time = NOW + seconds(after_s + offset_s)
    return Sample(NOW + seconds(after_s), hub_time.replace(microsecond=0))


# --- the offset -------------------------------------------------------------------------------

@pytest.mark.parametrize("offset_s", [7200, -7200, 45, -31, 3])
def test_hub_offset_is_the_hub_clock_minus_the_cullers(offset_s):
    assert hub_offset([dated(offset_s)]) == seconds(offset_s)


def test_hub_offset_corrects_for_the_dates_one_second_resolution():
    # Answered at NOW+0.8 s by a hub 3.9 s ahead: its clock said NOW+4.7 s, its Date NOW+4 s
    # (truncated). Date minus the culler's time is 3.2 s, which would round to 3; with the
    # half second the Date hides on average it is 3.7 s: 4, the whole second nearest 3.9.
    assert hub_offset([dated(3.9, after_s=0.8)]) == seconds(4)
    # 10.1 s behind: Date NOW-10 s, minus 0.8 s is -10.8 (-11); corrected -10.3: -10.
    assert hub_offset([dated(-10.1, after_s=0.8)]) == seconds(-10)


def test_hub_offset_under_two_seconds_is_no_offset():
    for offset_s in (0, 0.4, 1.4, -0.9, -1.4):
        assert hub_offset([dated(offset_s)]) == timedelta(0), offset_s
    # NOW+2.9 s at the hub: Date NOW+2 s, corrected 2.2 s after the answer at NOW+0.3 s
    assert hub_offset([dated(2.6)]) == seconds(2)
    assert hub_offset([dated(-2.6)]) == seconds(-3)  # Date NOW-3 s: -2.8 s


def test_hub_offset_takes_the_median_of_the_dated_samples():
    samples = [dated(7200, 0.1), dated(7201, 0.2), dated(30, 0.3), dated(7199, 0.4),
               dated(9000, 0.5)]
    assert hub_offset(samples) == seconds(7200)  # one slow or odd answer does not move it
    assert hub_offset(samples[:2]) == seconds(7201)  # even count: the mean of the middle two


def test_hub_offset_without_a_usable_date_is_none():
    assert hub_offset([]) is None
    assert hub_offset([Sample(NOW, None)]) is None
    assert hub_offset([Sample(NOW, None), dated(-7200)]) == seconds(-7200)


def test_sample_is_taken_in_the_middle_of_the_request():
    # The hub wrote its Date some time between sending and the answer: the middle is the best
    # guess, so a 4 s request to a hub 10 s ahead is not read as 8 or 12 s.
    one = sample(NOW, NOW + seconds(4), (NOW + seconds(12)).replace(microsecond=0))
    assert one.culler_time == NOW + seconds(2)
    assert hub_offset([one]) == seconds(10)


# --- when to say so ---------------------------------------------------------------------------

def test_clock_watch_warns_once_and_again_after_a_move_of_30_seconds():
    watch = ClockWatch()
    seen = [watch.observe(seconds(value)) for value in (7200, 7200, 7229, 7171, 7170)]
    assert seen == [Notice("offset", 7200), None, None, None, Notice("offset", 7170)]
    assert watch.observe(seconds(-7200)) == Notice("offset", -7200)
    assert watch.observe(seconds(-7190)) is None


def test_clock_watch_says_the_figure_at_start_and_when_the_clocks_agree_again():
    watch = ClockWatch()
    assert watch.observe(timedelta(0)) == Notice("in-step", 0)
    assert watch.observe(timedelta(0)) is None
    assert watch.observe(seconds(25)) is None  # under 30 s: no WARNING
    assert watch.observe(seconds(40)) == Notice("offset", 40)
    assert watch.observe(seconds(15)) is None  # moved by 25 s only
    assert watch.observe(timedelta(0)) == Notice("in-step", 0)
    assert watch.observe(seconds(-29)) is None


def test_clock_watch_says_a_missing_date_once():
    watch = ClockWatch()
    assert watch.observe(None) == Notice("unknown")
    assert [watch.observe(None) for _ in range(3)] == [None, None, None]
    assert watch.observe(seconds(3600)) == Notice("offset", 3600)
    assert watch.observe(None) is None


def test_clock_watch_first_offset_under_30_seconds_is_said_at_info():
    assert ClockWatch().observe(seconds(-29)) == Notice("in-step", -29)


# --- a pass on the hub's clock ----------------------------------------------------------------

def server_on(hub_now, idle_s, age_s=None):
    """A ready default server whose timestamps are written on the hub's clock ``hub_now``."""
    return {"name": "", "ready": True, "pending": None, "url": "/user/x/",
            "last_activity": stamp(idle_s, hub_now),
            "started": stamp(idle_s if age_s is None else age_s, hub_now)}


def user_on(hub_now, name, server=None, idle_s=0, created_s=30 * 86400):
    return {"kind": "user", "name": name, "admin": False, "groups": [],
            "created": stamp(created_s, hub_now), "last_activity": stamp(idle_s, hub_now),
            "servers": {"": server} if server else {}}


def pass_against(hub, settings, **runtime):
    return run_pass(hub, settings, NOW, Runtime(InlineExecutor(), 4, **runtime))


def test_pass_on_a_hub_two_hours_behind_keeps_servers_idle_30_minutes(caplog):
    # The culler's clock is 2 h ahead of the hub's: measured on it, the server idle 30 min
    # looks idle 2 h 30 min and was stopped. On the hub's clock it is kept.
    hub_now = NOW - seconds(2 * HOUR)
    hub = MemoryHub([user_on(hub_now, "fresh", server_on(hub_now, 30 * MINUTE)),
                     user_on(hub_now, "old", server_on(hub_now, 3 * HOUR))], date=hub_now)
    with caplog.at_level(logging.INFO):
        stats = pass_against(hub, CullSettings(timeout=HOUR))
    assert hub.of_kind("stop") == [("stop", "old", "", False)]
    assert stats.hub_clock_offset_s == -7200
    assert "clock-offset offset_s=-7200" in caplog.text
    assert [r.levelname for r in caplog.records if "clock-offset" in r.getMessage()] == \
        ["WARNING"]
    assert "stop user=old server=- reason=idle idle_s=10800 " in caplog.text


def test_pass_on_a_hub_two_hours_ahead_stops_servers_idle_90_minutes(caplog):
    # The culler's clock is 2 h behind: a server idle 90 min looked idle -30 min and was kept.
    hub_now = NOW + seconds(2 * HOUR)
    hub = MemoryHub([user_on(hub_now, "idle", server_on(hub_now, 90 * MINUTE)),
                     user_on(hub_now, "busy", server_on(hub_now, 10 * MINUTE))], date=hub_now)
    with caplog.at_level(logging.WARNING):
        stats = pass_against(hub, CullSettings(timeout=HOUR))
    assert hub.of_kind("stop") == [("stop", "idle", "", False)]
    assert stats.hub_clock_offset_s == 7200
    assert "clock-offset offset_s=7200" in caplog.text


def test_pass_measures_max_age_and_the_dry_run_plan_on_the_hubs_clock():
    hub_now = NOW - seconds(2 * HOUR)  # the culler's clock is 2 h ahead
    users = [
        # started 1 h ago at the hub: under --max-age=90m (3 h on the culler's clock)
        user_on(hub_now, "young", server_on(hub_now, 5 * MINUTE, age_s=HOUR)),
        user_on(hub_now, "aged", server_on(hub_now, 5 * MINUTE, age_s=2 * HOUR)),
    ]
    hub = MemoryHub(users, date=hub_now)
    stats = pass_against(hub, CullSettings(timeout=HOUR, max_age=90 * MINUTE), dry_run=True)
    assert [(entry.action, entry.user) for entry in stats.plan] == [("stop", "aged")]
    verdict = stats.plan[0].verdict
    assert verdict.reason == "max-age"  # and the figures the plan reports, on the hub's clock
    assert (verdict.age, verdict.idle_for) == (seconds(2 * HOUR), seconds(5 * MINUTE))


def test_pass_measures_rule_timeouts_on_the_hubs_clock():
    hub_now = NOW + seconds(2 * HOUR)  # the culler's clock is 2 h behind
    rules = (RuleSettings("short", users=("short-*",), timeout=20 * MINUTE),)
    hub = MemoryHub([user_on(hub_now, "short-a", server_on(hub_now, 30 * MINUTE)),
                     user_on(hub_now, "short-b", server_on(hub_now, 10 * MINUTE)),
                     user_on(hub_now, "long", server_on(hub_now, 30 * MINUTE))], date=hub_now)
    pass_against(hub, CullSettings(timeout=HOUR, rules=rules))
    assert hub.of_kind("stop") == [("stop", "short-a", "", False)]


def test_pass_measures_user_idle_time_on_the_hubs_clock():
    hub_now = NOW - seconds(2 * HOUR)  # the culler's clock is 2 h ahead
    # no server, idle 30 min at the hub: not deleted (2 h 30 min on the culler's clock)
    hub = MemoryHub([user_on(hub_now, "recent", idle_s=30 * MINUTE, created_s=HOUR),
                     user_on(hub_now, "gone", idle_s=3 * HOUR, created_s=4 * HOUR)],
                    date=hub_now)
    stats = pass_against(hub, CullSettings(timeout=HOUR, cull_users=True))
    assert hub.of_kind("delete") == [("delete", "gone")] and stats.deleted == 1


def test_pass_without_a_date_uses_the_cullers_clock_and_says_so_once(caplog):
    hub = MemoryHub([user_on(NOW, "idle", server_on(NOW, 2 * HOUR))], date=None)
    watch = ClockWatch()
    with caplog.at_level(logging.WARNING):
        first = run_pass(hub, CullSettings(timeout=HOUR), NOW,
                         Runtime(InlineExecutor(), 4), clock_watch=watch)
        second = run_pass(hub, CullSettings(timeout=HOUR), NOW,
                          Runtime(InlineExecutor(), 4), clock_watch=watch)
    assert first.stopped == second.stopped == 1
    assert first.hub_clock_offset_s == 0
    assert caplog.text.count("clock-unknown") == 1 and "Date header" in caplog.text


def test_each_pass_measures_again_after_the_culler_clock_jumps(caplog):
    # A VM resumed from suspend, or NTP stepping the clock by 2 h, between two passes: the
    # second pass takes the new offset, and the hub-side idle times do not change.
    hub = MemoryHub([user_on(NOW, "idle", server_on(NOW, 90 * MINUTE)),
                     user_on(NOW, "busy", server_on(NOW, 10 * MINUTE))], date=NOW)
    watch = ClockWatch()
    with caplog.at_level(logging.INFO):
        before = run_pass(hub, CullSettings(timeout=HOUR), NOW, Runtime(InlineExecutor(), 4),
                          clock_watch=watch)
        after = run_pass(hub, CullSettings(timeout=HOUR), NOW + seconds(2 * HOUR),
                         Runtime(InlineExecutor(), 4), clock_watch=watch)
    assert (before.hub_clock_offset_s, after.hub_clock_offset_s) == (0, -7200)
    assert [call[1] for call in hub.of_kind("stop")] == ["idle", "idle"]
    assert "clock-offset offset_s=0 " in caplog.text and "clock-offset offset_s=-7200 " \
        in caplog.text


def test_a_failed_listing_measures_nothing():
    class DownHub(MemoryHub):
        def users_page(self, state, offset):
            from idle_culler_daemon.errors import HubUnavailable
            raise HubUnavailable("GET /users: connection refused")

    stats = pass_against(DownHub([]), CullSettings(timeout=HOUR))
    assert isinstance(stats, PassStats) and stats.hub_clock_offset_s is None


def test_the_kernel_checks_second_look_is_on_the_hubs_clock():
    # The culler's clock is 2 h ahead. Both servers are idle 90 min at the hub; the first one's
    # own last_activity is 30 min ago (hub's clock): kept. On the culler's clock it looked
    # 2 h 30 min ago, and the server was stopped.
    hub_now = NOW - seconds(2 * HOUR)

    def own(idle_s):
        return {"status": {"started": stamp(3 * HOUR, hub_now), "connections": 0,
                           "last_activity": stamp(idle_s, hub_now), "kernels": 0}}

    users = [user_on(hub_now, name, dict(server_on(hub_now, 90 * MINUTE), url="/user/%s/" % name))
             for name in ("recent", "quiet")]
    hub = MemoryHub(users, date=hub_now,
                    servers={"/user/recent/": own(30 * MINUTE), "/user/quiet/": own(90 * MINUTE)})
    pass_against(hub, CullSettings(timeout=HOUR, check_kernels=True))
    assert len(hub.of_kind("status")) == 2
    assert hub.of_kind("stop") == [("stop", "quiet", "", False)]
