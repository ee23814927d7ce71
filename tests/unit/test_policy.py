"""One test per rule of docs/behaviour.md#server-rules, #user-rules and #rules."""

from datetime import timedelta

import pytest

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.model import Server, User
from idle_culler_daemon.policy import (
    Action,
    judge_server,
    judge_user,
    select_rule,
)
from tests.fakes import NOW

SETTINGS = CullSettings(timeout=600, cull_users=True)


def server(name="", idle=None, age=None, ready=True, pending=None):
    return Server(name=name, ready=ready, pending=pending,
                  started=NOW - timedelta(seconds=age) if age is not None else None,
                  last_activity=NOW - timedelta(seconds=idle) if idle is not None else None)


def user(name="ann", admin=False, groups=(), idle=None, created=None, servers=()):
    return User(name=name, admin=admin, groups=tuple(groups),
                created=NOW - timedelta(seconds=created) if created is not None else None,
                last_activity=NOW - timedelta(seconds=idle) if idle is not None else None,
                servers=tuple(servers))


def test_judge_server_stops_at_exactly_the_timeout():
    verdict = judge_server(user(), server(idle=600, age=700), NOW, SETTINGS)
    assert (verdict.action, verdict.reason) == (Action.STOP, "idle")
    assert verdict.idle_for == timedelta(seconds=600) and verdict.rule == "default"


def test_judge_server_keeps_one_second_before_the_timeout():
    assert judge_server(user(), server(idle=599, age=700), NOW, SETTINGS).action is Action.KEEP


def test_judge_server_keeps_pending_server_even_when_long_idle():
    verdict = judge_server(user(), server(idle=86400, pending="spawn"), NOW, SETTINGS)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "pending-spawn")


def test_judge_server_keeps_server_that_is_not_ready():
    verdict = judge_server(user(), server(idle=86400, ready=False), NOW, SETTINGS)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "not-ready")


def test_judge_server_falls_back_to_started_without_last_activity():
    verdict = judge_server(user(), server(idle=None, age=900), NOW, SETTINGS)
    assert verdict.action is Action.STOP and verdict.idle_for == timedelta(seconds=900)


def test_judge_server_keeps_server_without_any_timestamp():
    verdict = judge_server(user(), server(idle=None, age=None), NOW, SETTINGS)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "no-timestamps")


def test_judge_server_keeps_server_with_activity_in_the_future():
    assert judge_server(user(), server(idle=-3600, age=10), NOW, SETTINGS).action is Action.KEEP


@pytest.mark.parametrize("name,settings,expected", [
    ("", CullSettings(cull_default_servers=False), Action.KEEP),
    ("", CullSettings(cull_named_servers=False), Action.STOP),
    ("lab", CullSettings(cull_named_servers=False), Action.KEEP),
    ("lab", CullSettings(cull_default_servers=False), Action.STOP),
])
def test_judge_server_default_and_named_switches_for_the_idle_rule(name, settings, expected):
    assert judge_server(user(), server(name, idle=7200, age=7200), NOW, settings).action \
        is expected


@pytest.mark.parametrize("name,settings,expected", [
    ("", CullSettings(max_age=3600, cull_default_servers=False), Action.KEEP),
    ("lab", CullSettings(max_age=3600, cull_named_servers=False), Action.KEEP),
    ("lab", CullSettings(max_age=3600), Action.STOP),
])
def test_judge_server_default_and_named_switches_for_the_max_age_rule(name, settings, expected):
    assert judge_server(user(), server(name, idle=5, age=7200), NOW, settings).action is expected


def test_judge_server_stops_active_server_older_than_max_age():
    verdict = judge_server(user(), server(idle=5, age=7200), NOW, CullSettings(max_age=7200))
    assert (verdict.action, verdict.reason) == (Action.STOP, "max-age")


def test_judge_server_max_age_zero_is_off():
    assert judge_server(user(), server(idle=5, age=10 ** 7), NOW, CullSettings()).action \
        is Action.KEEP


def test_judge_server_max_age_spares_admins_without_cull_admin_users():
    settings = CullSettings(max_age=3600, cull_admin_users=False)
    verdict = judge_server(user(admin=True), server(idle=5, age=7200), NOW, settings)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "admin")


def test_judge_server_idle_rule_still_stops_admins_without_cull_admin_users():
    settings = CullSettings(max_age=3600, cull_admin_users=False)
    assert judge_server(user(admin=True), server(idle=7200, age=7200), NOW, settings).action \
        is Action.STOP


def test_judge_user_deletes_idle_user_with_no_server_kept():
    verdict = judge_user(user(idle=600, created=9000), NOW, SETTINGS, servers_kept=False)
    assert (verdict.action, verdict.reason) == (Action.DELETE, "idle")


def test_judge_user_keeps_user_with_a_server_alive():
    verdict = judge_user(user(idle=9000, created=9000), NOW, SETTINGS, servers_kept=True)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "servers-alive")


def test_judge_user_needs_cull_users():
    settings = CullSettings(cull_users=False)
    assert judge_user(user(idle=9000), NOW, settings, False).action is Action.KEEP


def test_judge_user_falls_back_to_created_for_a_user_never_active():
    verdict = judge_user(user(idle=None, created=7200), NOW, SETTINGS, False)
    assert verdict.action is Action.DELETE and verdict.idle_for == timedelta(seconds=7200)


def test_judge_user_without_timestamps_is_kept():
    verdict = judge_user(user(idle=None, created=None), NOW, SETTINGS, False)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "no-timestamps")


def test_judge_user_keeps_admin_without_cull_admin_users():
    settings = CullSettings(cull_users=True, cull_admin_users=False)
    verdict = judge_user(user(admin=True, idle=9000, created=9000), NOW, settings, False)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "admin")


def test_judge_user_max_age_honours_cull_admin_users():
    settings = CullSettings(cull_users=True, cull_admin_users=False, max_age=100)
    assert judge_user(user(admin=True, idle=5, created=9000), NOW, settings, False).action \
        is Action.KEEP
    settings = CullSettings(cull_users=True, max_age=100)
    verdict = judge_user(user(admin=True, idle=5, created=9000), NOW, settings, False)
    assert (verdict.action, verdict.reason) == (Action.DELETE, "max-age")


# --- rules (docs/behaviour.md#rules) ---

STAFF = RuleSettings("staff", groups=("staff", "admins"), cull=False)
GPU = RuleSettings("gpu", server_names=("gpu-*",), timeout=900, max_age=28800)
GUESTS = RuleSettings("guests", users=("guest-*",), user_timeout=86400)
RULED = CullSettings(timeout=3600, cull_users=True, rules=(STAFF, GPU, GUESTS))


def test_rules_first_match_wins():
    both = user(groups=("staff",))
    assert select_rule(RULED.rules, both, "gpu-1") is STAFF


def test_rules_all_matchers_of_a_section_must_match():
    rule = RuleSettings("ann-gpu", users=("ann",), server_names=("gpu-*",), timeout=60)
    settings = CullSettings(timeout=3600, rules=(rule,))
    assert judge_server(user("ann"), server("gpu-1", idle=120), NOW, settings).rule == "ann-gpu"
    assert judge_server(user("bob"), server("gpu-1", idle=120), NOW, settings).action \
        is Action.KEEP
    assert judge_server(user("ann"), server("cpu", idle=120), NOW, settings).action is Action.KEEP


def test_rules_excluded_group_is_never_stopped_or_deleted():
    staff = user(groups=("admins",), idle=10 ** 6, created=10 ** 6)
    verdict = judge_server(staff, server(idle=10 ** 6), NOW, RULED)
    assert (verdict.action, verdict.reason, verdict.rule) == (Action.KEEP, "excluded", "staff")
    assert judge_user(staff, NOW, RULED, False).rule == "staff"
    assert judge_user(staff, NOW, RULED, False).action is Action.KEEP


def test_rules_gpu_server_has_the_shorter_timeout_and_the_default_server_not():
    ann = user()
    verdict = judge_server(ann, server("gpu-a", idle=1000), NOW, RULED)
    assert (verdict.action, verdict.rule) == (Action.STOP, "gpu")
    verdict = judge_server(ann, server("", idle=1000), NOW, RULED)
    assert (verdict.action, verdict.rule) == (Action.KEEP, "default")


def test_rules_user_timeout_decides_user_deletion():
    guest = user("guest-7", idle=4000, created=4000)
    assert judge_user(guest, NOW, RULED, False).action is Action.KEEP
    guest = user("guest-7", idle=90000, created=90000)
    verdict = judge_user(guest, NOW, RULED, False)
    assert (verdict.action, verdict.rule) == (Action.DELETE, "guests")


def test_rules_with_server_names_never_decide_for_the_user_record():
    assert select_rule((GPU,), user(), None) is None


def test_judge_user_unknown_admin_flag_counts_as_admin_when_admins_are_spared():
    settings = CullSettings(cull_users=True, cull_admin_users=False)
    unknown = User(name="ann", admin=None, last_activity=NOW - timedelta(days=9))
    assert judge_user(unknown, NOW, settings, False).reason == "admin"
    assert judge_user(unknown, NOW, CullSettings(cull_users=True), False).action is Action.DELETE


# --- users whose groups the model does not show (docs/behaviour.md#matchers) ---

LAB_FAST = RuleSettings("lab-fast", groups=("lab",), timeout=60)
ANN_FAST = RuleSettings("ann-fast", users=("ann",), timeout=60)
GPU_STAFF = RuleSettings("gpu-staff", groups=("staff",), server_names=("gpu-*",), cull=False)


def unknown_groups(name="ann", idle=10 ** 6):
    return User(name=name, admin=False, groups=None,
                created=NOW - timedelta(seconds=idle), last_activity=NOW - timedelta(seconds=idle))


@pytest.mark.parametrize("rules", [(STAFF,), (LAB_FAST,), (GPU, STAFF), (GPU_STAFF, LAB_FAST)])
def test_rules_unknown_groups_keep_when_a_group_rule_could_decide(rules):
    settings = CullSettings(timeout=3600, cull_users=True, rules=rules)
    verdict = judge_server(unknown_groups(), server("", idle=10 ** 6), NOW, settings)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "groups-unknown")
    assert verdict.rule == [rule for rule in rules if rule.groups][-1].name
    verdict = judge_user(unknown_groups(), NOW, settings, False)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "groups-unknown")


def test_rules_unknown_groups_do_not_matter_when_no_group_rule_comes_first():
    settings = CullSettings(timeout=3600, cull_users=True, rules=(ANN_FAST, STAFF, GPU_STAFF))
    verdict = judge_server(unknown_groups(), server("", idle=120), NOW, settings)
    assert (verdict.action, verdict.rule) == (Action.STOP, "ann-fast")  # decided before STAFF
    settings = CullSettings(timeout=3600, rules=(GPU_STAFF,))
    verdict = judge_server(unknown_groups("bob"), server("", idle=7200), NOW, settings)
    assert (verdict.action, verdict.rule) == (Action.STOP, "default")  # not a gpu server
    verdict = judge_server(unknown_groups("bob"), server("", idle=7200), NOW,
                           CullSettings(timeout=3600))
    assert verdict.action is Action.STOP  # no group rule at all
