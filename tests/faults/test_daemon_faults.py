"""The daemon as a subprocess (``--cull-every=1``) through every kind of fault in turn.

One process lives through all the phases: each phase adds fresh users (idle, active, pending,
mixed, in the future, without servers), injects its faults between two passes, waits for the
faulty pass, heals the hub, and then requires every idle server of the phase to be stopped by
the end of the second pass that *started* after the healing (pass starts are read from the
hub's own records: the first page of ``state=ready``). After every phase the process is still
running and no stop was ever sent for a server active within the timeout. At the end SIGTERM
gives exit 0, and the token (which the hub even echoes in an error message) is nowhere in the
output.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Callable, List, Optional, Tuple

import pytest

from tests.faults.helpers import (
    IDLE_S,
    TIMEOUT_S,
    Daemon,
    Population,
    assert_protected_untouched,
    missing_deletions,
    missing_stops,
    populate,
)
from tests.support.fakehub import ago, isoformat

LIST = "GET /users"
PAGE_2 = {"state": "ready", "offset": "5"}
ARGS = ("--cull-every=1", "--timeout=%d" % TIMEOUT_S, "--request-timeout=1",
        "--api-page-size=5", "--cull-users", "--log-level=DEBUG")


def raw_user(name: str, **server_fields: Any) -> dict:
    stamp = isoformat(ago(IDLE_S))
    server = {"name": "", "ready": True, "pending": None, "started": stamp,
              "last_activity": stamp, "url": "/user/%s/" % name}
    server.update(server_fields)
    return {"kind": "user", "name": name, "admin": False, "groups": [], "created": stamp,
            "last_activity": stamp, "servers": {"": server}}


def wrong_types_and_duplicates(hub, tag: str) -> None:
    hub.add_raw_user(raw_user("weird" + tag, ready="yes"), name="weird" + tag)
    hub.add_raw_user(raw_user("odd" + tag, last_activity=1700000000), name="odd" + tag)
    # a stale idle copy of an idle user: both sightings agree, one stop
    hub.add_raw_user(raw_user("idle%s-0" % tag), name="idle%s-0~copy" % tag)


# (name, faults to add as (route, kind, count, options), extra setup or None, seconds allowed)
Phase = Tuple[str, List[Tuple[str, Any, Optional[int], dict]], Optional[Callable], float]


def phases(token: str) -> List[Phase]:
    return [
        ("502-burst", [(LIST, 502, 2, {})], None, 10),
        ("503-beyond-retries-echoing-the-token",
         [(LIST, 503, 4, {"message": "bad token %s, try later" % token})], None, 15),
        ("504-on-stops", [("DELETE /users/*/server*", 504, 3, {})], None, 15),
        ("connection-resets", [(LIST, "reset", 2, {}), ("DELETE *", "reset", 1, {})], None, 10),
        ("read-timeout", [(LIST, "hang", 1, {"delay": 2})], None, 10),
        ("page-never-finishes", [(LIST, "trickle", 1, {"query": PAGE_2})], None, 10),
        ("429-retry-after", [(LIST, 429, 1, {"retry_after": 1})], None, 10),
        ("truncated-json", [(LIST, "truncated", 1, {"query": PAGE_2})], None, 10),
        ("malformed-json", [(LIST, "malformed", 1, {})], None, 10),
        ("wrong-types-duplicates-future", [], wrong_types_and_duplicates, 10),
        ("hub-restarts-mid-listing",
         [(LIST, "restart", 1, {"query": PAGE_2, "down_for": 0.3})], None, 15),
        ("hub-down-longer-than-the-retries",
         [(LIST, "restart", 1, {"query": PAGE_2, "down_for": 4.0})], None, 20),
    ]


def first_pages(hub, after: float) -> List[float]:
    """When each pass that started after ``after`` asked for its first ``ready`` page."""
    return [record.started for record in hub.records(route="list_users")
            if record.query.get("state") == "ready" and record.query.get("offset") == "0"
            and record.started > after]


def faulty_pass_seen(daemon: Daemon, number: int, faults: list) -> bool:
    return daemon.passes() >= number and all(fault.hits for fault in faults)


def two_passes_after(daemon: Daemon, hub, healed: float) -> bool:
    """Have two passes started after ``healed``, and the second one ended?"""
    starts = first_pages(hub, healed)
    return len(starts) >= 2 and any(done > starts[1] for done in daemon.pass_done_at)


@pytest.mark.timeout(420)
def test_daemon_survives_every_fault_in_turn(fake_hub):
    daemon = Daemon(fake_hub, *ARGS)
    everyone = Population()
    try:
        daemon.wait_passes(1, timeout=20)
        for number, (name, faults, setup, allowed_s) in enumerate(phases(fake_hub.token)):
            tag = "-p%d" % number
            # right after a pass-done line: the daemon sleeps for about a second now
            daemon.wait_passes(daemon.passes() + 1, timeout=allowed_s)
            people = populate(fake_hub, tag=tag, idle=4, active=4, gone=1)
            for kind in ("idle", "protected", "protected_users", "deletable"):
                getattr(everyone, kind).update(getattr(people, kind))
            if setup is not None:
                setup(fake_hub, tag)
            added = [fake_hub.faults.add(route, kind, count, **options)
                     for route, kind, count, options in faults]
            daemon.wait_for(partial(faulty_pass_seen, daemon, daemon.passes() + 1, added),
                            allowed_s, "phase %s: the faulty pass" % name)
            fake_hub.faults.clear()
            assert fake_hub.wait_until(lambda: fake_hub.listening, timeout=10), name
            daemon.wait_for(partial(two_passes_after, daemon, fake_hub, time.monotonic()),
                            allowed_s + 10, "phase %s: two passes after the healing" % name)
            assert daemon.alive(), "phase %s ended the daemon" % name
            assert_protected_untouched(fake_hub, everyone)
            assert missing_stops(fake_hub, people) == [], name
            assert missing_deletions(fake_hub, people) == [], name
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
    output = daemon.output()
    assert fake_hub.token not in output, "the API token appears in the daemon's output"
    assert "<redacted>" in output  # the hub's echo of it was logged, redacted
    assert not daemon.events_named("crash") and "Traceback" not in output
    assert daemon.events_named("pass-aborted"), "no phase aborted a pass: the faults missed"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", [
    ("raw", "9999-12-31T23:59:59-01:00"),
    ("raw", "0001-01-01T00:00:00+01:00"),
    ("total", "1e400"),
    ("total", "1e18"),
], ids=["activity-past-datetime-max", "activity-before-datetime-min", "total-infinite",
        "total-absurd"])
def test_daemon_survives_data_beyond_the_ranges_of_python(fake_hub, fault):
    """Data a pass cannot use must cost at most that pass (or that user), never the process:
    only configuration errors end the daemon."""
    people = populate(fake_hub)
    kind, value = fault
    if kind == "raw":
        fake_hub.add_raw_user(raw_user("edge", last_activity=value), name="edge")
    else:
        fake_hub.faults.add(LIST, "malformed", count=None, query={"offset": "0"}, body=(
            '{"items": [], "_pagination": {"offset": 0, "limit": 5, "total": %s, '
            '"next": {"offset": 5, "limit": 5}}}' % value))
    daemon = Daemon(fake_hub, *ARGS)
    try:
        daemon.wait_passes(3, timeout=30)
        assert daemon.alive()
        assert_protected_untouched(fake_hub, people)
        if kind == "raw":
            assert missing_stops(fake_hub, people) == []
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
    assert fake_hub.token not in daemon.output()
