"""Transport and status faults against the loopback fake hub, with the real HubClient in process.

Each case injects a fault, runs one pass (which must return, never raise), then heals the hub
and runs at most two more passes. After every pass: no stop was ever sent for a server active
within the timeout (nor a deletion for an active user); after the healthy passes every idle
server is stopped and every idle server-less user deleted; and neither the raw log messages
nor the lines the daemon would print contain the token.

The expected outcome of the faulty pass is checked too:
``absorbed``: the retries hid the fault, the pass did everything;
``aborted``: the listing failed, so not a single DELETE was sent in that pass (list first,
then act);
``partial``: some DELETEs failed after their retries, the others went through.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import pytest

from idle_culler_daemon.config import CullSettings
from tests.faults.helpers import (
    TIMEOUT_S,
    InProcessCuller,
    LogCapture,
    assert_protected_untouched,
    delete_targets,
    missing_deletions,
    missing_stops,
    populate,
    stop_targets,
)

SETTINGS = CullSettings(timeout=TIMEOUT_S, cull_users=True)


@dataclass
class Case:
    name: str
    faults: List[Tuple[str, Any, Optional[int], Dict[str, Any]]]
    outcome: str  # absorbed, aborted, partial
    backoff: float = 0.1
    slowest_s: float = 10.0  # the faulty pass must end within this (bounded by timeouts)


def fault(route: str, kind: Any, count: Optional[int] = 1, **options: Any):
    return (route, kind, count, options)


LIST = "GET /users"
STOP_ONE = "DELETE /users/idle-1/server"
STOP_ANY = "DELETE /users/*/server*"

CASES = [
    # bursts of 502/503/504: up to three are retried away, a fourth failure ends the listing
    Case("list-502-burst", [fault(LIST, 502, 2)], "absorbed"),
    Case("list-503-burst", [fault(LIST, 503, 3)], "absorbed"),
    Case("list-504-burst-beyond-retries", [fault(LIST, 504, 4)], "aborted"),
    Case("list-mixed-5xx-burst", [fault(LIST, 502), fault(LIST, 503), fault(LIST, 504)],
         "absorbed"),
    Case("list-third-page-503-beyond-retries",
         [fault(LIST, 503, 4, query={"state": "ready", "offset": "10"})], "aborted"),
    # connection resets and drops before any answer
    Case("list-reset", [fault(LIST, "reset")], "absorbed"),
    Case("list-reset-beyond-retries", [fault(LIST, "reset", 4)], "aborted"),
    Case("list-drop-later-page", [fault(LIST, "drop", 2, skip=2)], "absorbed"),
    # read timeouts (--request-timeout=1): the hub says nothing for 3 s
    Case("list-read-timeout", [fault(LIST, "hang", delay=3)], "absorbed"),
    # a page that never finishes: headers, then a byte every 50 ms; not retried (the body
    # has a deadline of its own), so the listing ends within about one read timeout
    Case("list-page-never-finishes", [fault(LIST, "trickle", skip=1)], "aborted",
         slowest_s=4.0),
    # 429 and 503 with Retry-After: waited for, then retried
    Case("list-429-retry-after", [fault(LIST, 429, retry_after=1)], "absorbed"),
    Case("list-503-retry-after", [fault(LIST, 503, retry_after=1, skip=1)], "absorbed"),
    # broken bodies are not retried: the pass ends, nothing is sent
    Case("list-truncated-json", [fault(LIST, "truncated", skip=1)], "aborted"),
    Case("list-short-body", [fault(LIST, "short_body")], "aborted"),
    Case("list-malformed-json", [fault(LIST, "malformed", skip=1)], "aborted"),
    Case("list-html-502-beyond-retries",
         [fault(LIST, "malformed", 4, status=502, body="<html>Bad Gateway</html>",
                content_type="text/html")], "aborted"),
    Case("list-200-html", [fault(LIST, "malformed", body="<html>login</html>",
                                 content_type="text/html")], "aborted"),
    # the hub restarts in the middle of the listing: back in 0.2 s, within the backoff
    Case("list-hub-restarts-mid-listing", [fault(LIST, "restart", skip=1, down_for=0.2)],
         "absorbed", backoff=0.5),
    # ... or stays down longer than the retries last
    Case("list-hub-down-longer-than-retries",
         [fault(LIST, "restart", skip=1, down_for=2.5)], "aborted"),
    # faults on the stops
    Case("stop-502-burst", [fault(STOP_ONE, 502, 3)], "absorbed"),
    Case("stop-503-beyond-retries", [fault(STOP_ONE, 503, 4)], "partial"),
    Case("stop-504-burst-across-users", [fault(STOP_ANY, 504, 3)], "absorbed"),
    Case("stop-reset", [fault(STOP_ANY, "reset", 2)], "absorbed"),
    Case("stop-read-timeout", [fault(STOP_ONE, "hang", delay=3)], "absorbed"),
    Case("stop-429-retry-after", [fault(STOP_ONE, 429, retry_after=1)], "absorbed"),
    Case("stop-500-not-retried", [fault(STOP_ONE, 500)], "partial"),
    Case("stop-hub-restarts", [fault(STOP_ANY, "restart", skip=2, down_for=0.2)],
         "absorbed", backoff=0.5),
    Case("stop-hub-down-longer-than-retries",
         [fault(STOP_ANY, "restart", skip=2, down_for=2.5)], "partial"),
    # faults on the deletions of users
    Case("delete-user-503-beyond-retries", [fault("DELETE /users/gone-0", 503, 4)],
         "partial"),
    Case("delete-user-reset", [fault("DELETE /users/gone-*", "reset", 2)], "absorbed"),
]


def heal(hub) -> None:
    hub.faults.clear()
    assert hub.wait_until(lambda: hub.listening, timeout=10), "the fake hub did not come back"


def run_case(hub, case: Case) -> None:
    people = populate(hub)
    faults = [hub.faults.add(route, kind, count, **options)
              for route, kind, count, options in case.faults]
    culler = InProcessCuller(hub, SETTINGS, backoff_factor=case.backoff)
    try:
        with LogCapture(hub.token) as logs:
            started = time.monotonic()
            first = culler.run_pass()  # invariant 3: returns, never raises
            took = time.monotonic() - started
            assert any(f.hits for f in faults), "the fault never fired: the case tests nothing"
            assert took < case.slowest_s, "the faulty pass took %.1fs" % took
            assert_protected_untouched(hub, people)
            sent_in_first = len(stop_targets(hub)) + len(delete_targets(hub))
            if case.outcome == "absorbed":
                assert first.ok, first
                assert missing_stops(hub, people) == []
                assert missing_deletions(hub, people) == []
            elif case.outcome == "aborted":
                assert first.listing_error and not first.ok
                assert sent_in_first == 0, "DELETEs were sent although the listing failed"
            else:
                assert first.failed + first.delete_failed >= 1 and not first.ok
                assert first.listing_error is None
                assert first.stopped >= 1, "one failing user stopped the whole pass"
            heal(hub)
            for _ in range(2):  # invariant 2: two healthy passes at most
                culler.run_pass()
                assert_protected_untouched(hub, people)
            assert missing_stops(hub, people) == []
            assert missing_deletions(hub, people) == []
            assert culler.passes[-1].ok
    finally:
        culler.close()
    # invariant 4: neither what the code logged nor what the daemon would print has the token
    assert not [line for line in logs.raw if hub.token in line]
    assert hub.token not in logs.text()
    assert not hub.errors, hub.errors


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_fault_keeps_the_invariants(fake_hub, case):
    run_case(fake_hub, case)


def test_retry_after_is_waited_for_before_the_retry(fake_hub):
    populate(fake_hub)
    fake_hub.faults.add(LIST, 429, retry_after=1)
    culler = InProcessCuller(fake_hub, SETTINGS)
    try:
        assert culler.run_pass().ok
    finally:
        culler.close()
    first, second = fake_hub.records(route="list_users")[:2]
    assert first.status == 429 and first.query == second.query
    assert second.started - first.ended >= 0.9  # the backoff alone would be 0 s


def test_hub_restarted_while_a_page_is_in_flight(fake_hub):
    """The restart comes from outside (an operator), while a page request is held open."""
    people = populate(fake_hub)
    held = fake_hub.faults.add(LIST, "hold", skip=1, delay=5)
    culler = InProcessCuller(fake_hub, SETTINGS, backoff_factor=0.5)
    result: Dict[str, Any] = {}

    def one_pass() -> None:
        try:
            result["stats"] = culler.run_pass()
        except BaseException as exc:  # reported below: a pass must never raise
            result["error"] = exc

    runner = threading.Thread(target=one_pass, name="pass")
    try:
        runner.start()
        assert fake_hub.wait_until(lambda: held.hits == 1, timeout=5)
        fake_hub.restart(down_for=0.2)
        held.release()
        runner.join(20)
        assert not runner.is_alive(), "the pass did not end after the hub restarted"
    finally:
        runner.join(20)
        culler.close()
    assert "error" not in result, result.get("error")
    assert fake_hub.restarts == 1
    assert_protected_untouched(fake_hub, people)
    if not result["stats"].ok:  # the retries may or may not have bridged the restart
        culler = InProcessCuller(fake_hub, SETTINGS)
        try:
            for _ in range(2):
                culler.run_pass()
        finally:
            culler.close()
    assert missing_stops(fake_hub, people) == []
    assert missing_deletions(fake_hub, people) == []
    assert_protected_untouched(fake_hub, people)
