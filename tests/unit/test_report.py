"""What a pass tells people: the dry-run table, whatever the names in it."""

import json
import re
from datetime import timedelta

import pytest

from idle_culler_daemon.policy import Action, Verdict
from idle_culler_daemon.report import plan_table
from idle_culler_daemon.stats import PlanEntry
from tests.unit.test_log import HOSTILE_NAMES, UNSAFE

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
