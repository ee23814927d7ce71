"""One test per rule of docs/behaviour.md#server-rules, #user-rules and #rules."""

from datetime import timedelta

import pytest

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.model import Server, ServerStatus, User
from idle_culler_daemon.policy import (
    Action,
    PlannedUser,
    Verdict,
    guard_plan,
    judge_server,
    judge_server_status,
    judge_user,
    kernels_needed,
    select_rule,
)
from tests.fakes import NOW

SETTINGS = CullSettings(timeout=600, cull_users=True)


def server(name="", idle=None, age=None, ready=True, pending=None, options=None):
    return Server(name=name, ready=ready, pending=pending,
                  started=NOW - timedelta(seconds=age) if age is not None else None,
                  last_activity=NOW - timedelta(seconds=idle) if idle is not None else None,
                  url="/user/ann/%s" % name, user_options=options)


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


# --- rules on profiles and user_options (docs/behaviour.md#profile-rules) ---

GPU_PROFILE = RuleSettings("gpu", profiles=("gpu-*",), timeout=900)
PROFILED = CullSettings(timeout=3600, cull_users=True, rules=(GPU_PROFILE,))


def test_profile_rule_gives_gpu_servers_their_timeout_and_not_the_others():
    gpu = judge_server(user(), server(idle=1800, options=(("profile", "gpu-a100"),)), NOW,
                       PROFILED)
    assert (gpu.action, gpu.rule) == (Action.STOP, "gpu")
    cpu = judge_server(user(), server(idle=1800, options=(("profile", "cpu-small"),)), NOW,
                       PROFILED)
    none = judge_server(user(), server(idle=1800, options=()), NOW, PROFILED)
    assert (cpu.action, cpu.rule) == (none.action, none.rule) == (Action.KEEP, "default")


def test_profile_rule_never_matches_a_server_whose_options_are_unknown():
    unknown = judge_server(user(), server(idle=1800, options=None), NOW, PROFILED)
    assert (unknown.action, unknown.rule) == (Action.KEEP, "default")


def test_profile_rule_never_decides_for_the_user_record():
    assert select_rule((GPU_PROFILE,), user(), None, (("profile", "gpu-a100"),)) is None
    assert judge_user(user(idle=5000, created=9000), NOW, PROFILED, False).rule == "default"


def test_user_options_rule_needs_every_key_and_takes_alternatives_on_one_key():
    rule = RuleSettings("big", user_options=(("image", "*torch*"), ("size", "large"),
                                             ("size", "xl")), cull=False)
    options = (("image", "quay.io/x/pytorch:2"), ("size", "xl"))
    assert select_rule((rule,), user(), "", options) is rule
    assert select_rule((rule,), user(), "", (("image", "pytorch"), ("size", "small"))) is None
    assert select_rule((rule,), user(), "", (("size", "xl"),)) is None


def test_user_options_rule_matches_scalars_by_their_text():
    rule = RuleSettings("gpu", user_options=(("gpu", "true"), ("cores", "8")), timeout=60)
    assert select_rule((rule,), user(), "", (("gpu", "true"), ("cores", "8"))) is rule


def test_profile_rule_combines_with_the_other_matchers():
    rule = RuleSettings("ann-gpu", users=("ann",), server_names=("",), profiles=("gpu-*",))
    options = (("profile", "gpu-1"),)
    assert select_rule((rule,), user("ann"), "", options) is rule
    assert select_rule((rule,), user("bob"), "", options) is None
    assert select_rule((rule,), user("ann"), "lab", options) is None


# --- a second look at idle servers (docs/behaviour.md#kernel-checks) ---

CHECKED = CullSettings(timeout=600, check_kernels=True)


def test_check_kernels_marks_idle_stops_to_be_asked_with_their_timeout():
    verdict = judge_server(user(), server(idle=700, age=800), NOW, CHECKED)
    assert (verdict.action, verdict.check_within_s) == (Action.STOP, 600)
    assert judge_server(user(), server(idle=700, age=800), NOW, SETTINGS).check_within_s is None


def test_check_kernels_per_rule_overrides_the_global_setting():
    rule = RuleSettings("gpu", profiles=("gpu-*",), timeout=60, check_kernels=True)
    settings = CullSettings(timeout=600, rules=(rule,))
    gpu = judge_server(user(), server(idle=100, options=(("profile", "gpu-x"),)), NOW, settings)
    assert gpu.check_within_s == 60
    off = RuleSettings("cpu", profiles=("cpu-*",), check_kernels=False)
    cpu = judge_server(user(), server(idle=900, options=(("profile", "cpu-x"),)), NOW,
                       CullSettings(timeout=600, check_kernels=True, rules=(off,)))
    assert cpu.action is Action.STOP and cpu.check_within_s is None


def test_max_age_wins_over_the_kernel_check():
    settings = CullSettings(timeout=600, max_age=3600, check_kernels=True)
    old = judge_server(user(), server(idle=700, age=7200), NOW, settings)
    assert old.action is Action.STOP and old.check_within_s is None
    assert judge_server(user(), server(idle=700, age=1800), NOW, settings).check_within_s == 600
    spared = CullSettings(timeout=600, max_age=3600, check_kernels=True, cull_admin_users=False)
    admin = judge_server(user(admin=True), server(idle=700, age=7200), NOW, spared)
    assert admin.check_within_s == 600  # max-age does not apply to a spared admin


def stop_to_check(idle=700):
    return Verdict(Action.STOP, "idle", "default", timedelta(seconds=idle),
                   timedelta(seconds=idle), check_within_s=600)


def test_second_look_keeps_a_server_with_a_busy_kernel():
    status = ServerStatus(NOW - timedelta(hours=2), 2, ("idle", "busy"))
    verdict = judge_server_status(stop_to_check(), status, NOW)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "kernel-busy")
    assert verdict.idle_for == timedelta(hours=2)


def test_second_look_keeps_a_server_whose_own_activity_is_recent():
    status = ServerStatus(NOW - timedelta(seconds=599), 0)
    verdict = judge_server_status(stop_to_check(), status, NOW)
    assert (verdict.action, verdict.reason) == (Action.KEEP, "server-active")


def test_second_look_stops_a_quiet_server_as_planned():
    for status in (ServerStatus(NOW - timedelta(seconds=600), 0),
                   ServerStatus(NOW - timedelta(hours=1), 1, ("idle",)),
                   ServerStatus(None, 1, ("starting",))):
        assert judge_server_status(stop_to_check(), status, NOW) == stop_to_check()


def test_second_look_changes_nothing_that_did_not_ask_for_it():
    plain = Verdict(Action.STOP, "max-age", "default")
    busy = ServerStatus(NOW, 1, ("busy",))
    assert judge_server_status(plain, busy, NOW) is plain


def test_kernels_are_asked_for_only_when_the_status_leaves_it_open():
    quiet = ServerStatus(NOW - timedelta(hours=1), 2)
    assert kernels_needed(stop_to_check(), quiet)
    assert not kernels_needed(stop_to_check(), ServerStatus(NOW - timedelta(hours=1), 0))
    assert kernels_needed(stop_to_check(), ServerStatus(NOW - timedelta(hours=1), None))
    assert not kernels_needed(Verdict(Action.KEEP, "server-active"), quiet)
    assert not kernels_needed(stop_to_check(), ServerStatus(None, 2, ("idle", "idle")))


# --- the mass-cull guard (docs/behaviour.md#mass-cull-guard) ---

def idle_times(*seconds):
    return [timedelta(seconds=value) for value in seconds]


def one_stop_each(*seconds):
    """One user per idle time, each with one server to stop."""
    return [PlannedUser((idle,)) for idle in idle_times(*seconds)]


def test_guard_trips_when_more_than_the_fraction_would_go():
    verdict = guard_plan(one_stop_each(*range(90)), 100, 100,
                         CullSettings(max_stop_fraction=0.5))
    assert verdict.tripped and verdict.held_stops == {(i, 0) for i in range(90)}
    assert (verdict.stopping, verdict.running) == (90, 100)


def test_guard_allows_exactly_the_fraction():
    verdict = guard_plan(one_stop_each(*range(50)), 100, 100, CullSettings(max_stop_fraction=0.5))
    assert not verdict.tripped and not verdict.held_stops


def test_guard_holds_back_all_but_the_longest_idle():
    planned = one_stop_each(50, 900, 10, 700, 900)
    verdict = guard_plan(planned, 10, 10, CullSettings(max_stops_per_pass=2))
    assert verdict.held_stops == {(0, 0), (2, 0), (3, 0)} and not verdict.tripped  # 900s go
    assert guard_plan(planned, 10, 10, CullSettings(max_stops_per_pass=5)).held_stops == set()
    assert guard_plan(planned, 10, 10, CullSettings()).held_stops == set()


def test_guard_fraction_is_judged_before_the_per_pass_cap():
    settings = CullSettings(max_stops_per_pass=10, max_stop_fraction=0.5)
    assert guard_plan(one_stop_each(*range(90)), 100, 100, settings).tripped
    verdict = guard_plan(one_stop_each(*range(30)), 100, 100, settings)
    assert not verdict.tripped and len(verdict.held_stops) == 20


def test_guard_fraction_counts_users_not_servers():
    # One user with 12 idle servers and 3 of 10 other users idle: 4 of 11 users, not 15 of 22
    # servers, so 0.5 lets them all go.
    planned = [PlannedUser(tuple(idle_times(*[900] * 12)))] + one_stop_each(900, 900, 900)
    verdict = guard_plan(planned, 11, 11, CullSettings(max_stop_fraction=0.5))
    assert not verdict.tripped and not verdict.held_stops and verdict.stopping == 4


def test_guard_fraction_counts_deletions_over_the_users_listed():
    deleting = [PlannedUser((), True, timedelta(days=days)) for days in range(20)]
    assert guard_plan(deleting, 20, 40, CullSettings(max_stop_fraction=0.5)).tripped is False
    verdict = guard_plan(deleting, 20, 40, CullSettings(max_stop_fraction=0.1))
    assert verdict.tripped and verdict.held_deletions == set(range(20))


def test_guard_cap_counts_deletions_on_their_own_longest_idle_first():
    deleting = [PlannedUser((), True, timedelta(days=days)) for days in (3, 9, 1, 7)]
    verdict = guard_plan(deleting, 0, 4, CullSettings(max_stops_per_pass=2))
    assert verdict.held_deletions == {0, 2} and not verdict.held_stops


def test_guard_a_user_whose_stop_waits_is_not_deleted_either():
    planned = [PlannedUser(tuple(idle_times(100)), True, timedelta(0)),
               PlannedUser(tuple(idle_times(900)), True, timedelta(0))]
    verdict = guard_plan(planned, 2, 2, CullSettings(max_stops_per_pass=1))
    assert verdict.held_stops == {(0, 0)} and verdict.held_deletions == {0}


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
