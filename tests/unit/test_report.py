"""What a pass prints: the dry-run plan as a table or as JSON lines, and the STATUS= line."""

import json
import re
from datetime import timedelta

import pytest

from idle_culler_daemon.policy import Action, Verdict
from idle_culler_daemon.report import plan_json, plan_table, status_line
from idle_culler_daemon.stats import PassStats, PlanEntry
from tests.unit.test_log import HOSTILE_NAMES, UNSAFE


def verdict(reason="idle", idle=5400, age=7200, rule="default"):
    return Verdict(Action.STOP, reason, rule, timedelta(seconds=idle), timedelta(seconds=age))


def stats_with_plan():
    stats = PassStats(users_seen=3, servers_running=4)
    stats.plan = [
        PlanEntry("stop", "bob", "gpu", verdict(rule="gpu"), profile="gpu-a100"),
        PlanEntry("stop", "ann", "", verdict("max-age", idle=60, age=90000)),
        PlanEntry("delete", "ann", "", Verdict(Action.DELETE, "idle", "default", None, None)),
        PlanEntry("stop", "cy", "", verdict(idle=700), held_back=True),
    ]
    return stats


def test_plan_json_has_one_object_per_action_then_a_summary():
    lines = [json.loads(line) for line in plan_json(stats_with_plan()).splitlines()]
    assert [line["type"] for line in lines] == ["action"] * 4 + ["summary"]
    first, delete, bob, cy, summary = lines
    assert first == {"type": "action", "action": "stop", "user": "ann", "server": "",
                     "reason": "max-age", "idle_s": 60, "age_s": 90000, "rule": "default",
                     "profile": None, "held_back": False}
    assert delete["action"] == "delete" and delete["server"] is None
    assert delete["idle_s"] is None and delete["age_s"] is None
    assert (bob["server"], bob["rule"], bob["profile"]) == ("gpu", "gpu", "gpu-a100")
    assert cy["held_back"] is True
    assert summary == {"type": "summary", "dry_run": True, "stop": 2, "delete": 1,
                       "held_back": 1, "users_seen": 3, "servers_running": 4,
                       "kept_by_server": 0, "mass_cull_guard": None, "error": None,
                       "complete": True}


def test_plan_json_summary_says_why_a_plan_is_incomplete():
    (summary,) = [json.loads(line) for line in
                  plan_json(PassStats(listing_error="GET /users: 503")).splitlines()]
    assert summary["complete"] is False and summary["error"] == "GET /users: 503"


def test_plan_table_marks_held_back_rows_and_counts_them():
    text = plan_table(stats_with_plan().plan)
    rows = [line.split() for line in text.splitlines()]
    assert ["held-back", "cy", "-", "idle", "11m40s", "2h00m", "default"] in rows
    assert text.splitlines()[-1] == ("2 server(s) would be stopped, 1 user(s) deleted, 1 held "
                                     "back by the mass-cull guard; nothing was changed.")


def test_status_line_shows_a_tripped_guard():
    stats = PassStats(users_seen=100, guard_tripped="mass-cull guard: would stop 90 of 100 "
                                                    "running servers, more than 0.5 of them; "
                                                    "nothing stopped")
    assert status_line(stats, None).startswith("mass-cull guard: would stop 90 of 100")


IDLE = Verdict(Action.STOP, "idle", "default", timedelta(hours=2), timedelta(days=3))


def test_plan_table_rows_and_summary():
    plan = [PlanEntry("stop", "bob", "gpu-1", IDLE), PlanEntry("stop", "ann", "", IDLE),
            PlanEntry("delete", "ann", "", Verdict(Action.DELETE, "idle", "default",
                                                   timedelta(hours=2), timedelta(days=30)))]
    lines = plan_table(plan).splitlines()
    assert lines[0].split() == ["ACTION", "USER", "SERVER", "REASON", "IDLE", "FOR", "AGE",
                                "RULE"]
    assert [line.split()[:3] for line in lines[1:4]] == [
        ["would-stop", "ann", "-"], ["would-delete", "ann", "-"], ["would-stop", "bob", "gpu-1"]]
    assert lines[4] == "2 server(s) would be stopped, 1 user(s) deleted; nothing was changed."


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_plan_table_escapes_names_that_would_forge_a_line_or_move_the_cursor(name):
    table = plan_table([PlanEntry("stop", name, name, IDLE), PlanEntry("stop", "zed", "", IDLE)])
    lines = table.splitlines()
    assert len(lines) == 4 and not any(UNSAFE.search(line) for line in lines), repr(table)
    row = [line for line in lines[1:3] if not line.split()[1] == "zed"][0]
    shown = re.match(r'would-stop\s+("(?:[^"\\]|\\.)*")', row).group(1)
    assert json.loads(shown) == name


def test_plan_json_stays_one_object_per_line_whatever_users_chose():
    # A lone surrogate in user_options.profile crashed the encoder (exit 1); U+2028, U+2029 and
    # U+0085 in names cut lines for splitlines(). Escaped as the JSON logs are.
    hostile = ["sep\u2028arator", "para\u2029graph", "nel\u0085line", "sur\ud800rogate"]
    stats = PassStats(users_seen=4)
    stats.plan = [PlanEntry("stop", name, name, IDLE, profile=name) for name in hostile]
    text = plan_json(stats)
    text.encode("utf-8")  # no UnicodeEncodeError
    lines = text.splitlines()
    assert len(lines) == len(hostile) + 1
    actions = [json.loads(line) for line in lines][:-1]
    assert sorted((a["user"], a["server"], a["profile"]) for a in actions) == sorted(
        (name, name, name) for name in hostile)
