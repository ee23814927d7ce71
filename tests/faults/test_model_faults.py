"""Bad data from the hub: wrong field types, dates in the future, duplicate users across pages
and broken pagination envelopes, with the real HubClient in process.

Whatever the data, a pass returns its figures (never raises), nothing of a user whose model is
doubtful is stopped or deleted, everybody else is culled as usual in the same pass, and the
invariants of ``tests/faults/helpers.py`` hold.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Dict, Optional

import pytest

from idle_culler_daemon.config import CullSettings
from tests.faults.helpers import (
    ACTIVE_S,
    IDLE_S,
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
from tests.support.fakehub import ago, idle_user, isoformat, utcnow

SETTINGS = CullSettings(timeout=TIMEOUT_S, cull_users=True)


def raw_model(name: Any, idle_s: float = IDLE_S, server_patch: Optional[Dict[str, Any]] = None,
              **fields: Any) -> Dict[str, Any]:
    """A user model as the hub sends it (JupyterHub 6, one default server), idle for
    ``idle_s``; ``server_patch`` changes fields of the server, ``fields`` those of the user."""
    stamp = isoformat(ago(idle_s))
    model: Dict[str, Any] = {
        "kind": "user", "name": name, "admin": False, "roles": ["user"], "groups": [],
        "server": "/user/%s/" % name, "pending": None, "created": stamp,
        "last_activity": stamp, "auth_state": None,
        "servers": {"": dict({"name": "", "ready": True, "pending": None, "stopped": False,
                              "started": stamp, "last_activity": stamp,
                              "url": "/user/%s/" % name, "user_options": {},
                              "progress_url": "/hub/api/users/%s/server/progress" % name},
                             **(server_patch or {}))},
    }
    model.update(fields)
    return model


def one_pass(hub, settings: CullSettings = SETTINGS, page_size: int = 5):
    culler = InProcessCuller(hub, settings, page_size=page_size)
    try:
        with LogCapture(hub.token) as logs:
            stats = culler.run_pass()  # must return, never raise
    finally:
        culler.close()
    assert hub.token not in logs.text()
    return stats, logs


# ---------------------------------------------------------------------------------------------
# wrong field types: the user is skipped with a warning, nothing of theirs is touched

WRONG_TYPES = {
    "name-number": dict(name=42),
    "name-empty": dict(name=""),
    "admin-string": dict(admin="no"),
    "groups-string": dict(groups="staff"),
    "groups-numbers": dict(groups=[1, 2]),
    "created-epoch": dict(created=1700000000),
    "last-activity-list": dict(last_activity=[]),
    "last-activity-words": dict(last_activity="yesterday"),
    "last-activity-bad-month": dict(last_activity="2020-13-45T00:00:00Z"),
    "servers-string": dict(servers="none"),
    "servers-list": dict(servers=[{"name": ""}]),
    "server-not-object": dict(servers={"": "running"}),
    "server-ready-string": dict(server_patch={"ready": "yes"}),
    "server-ready-number": dict(server_patch={"ready": 1}),
    "server-pending-number": dict(server_patch={"pending": 5}),
    "server-started-float": dict(server_patch={"started": 1.5}),
    "server-activity-object": dict(server_patch={"last_activity": {"t": 1}}),
    "server-activity-garbage": dict(server_patch={"last_activity": "20x0-01-01"}),
}


@pytest.mark.parametrize("patch", WRONG_TYPES.values(), ids=list(WRONG_TYPES))
def test_wrong_field_types_skip_only_that_user(fake_hub, patch):
    people = populate(fake_hub)
    model = raw_model("weird")
    model["servers"][""].update(patch.get("server_patch", {}))
    model.update({key: value for key, value in patch.items() if key != "server_patch"})
    fake_hub.add_raw_user(model, name="weird", ready=True, active=True)
    stats, logs = one_pass(fake_hub)
    assert "weird" not in [user for user, _ in stop_targets(fake_hub)]
    assert "weird" not in delete_targets(fake_hub)
    assert stats.users_skipped == 1 and "skip-user" in logs.events()
    assert missing_stops(fake_hub, people) == [] and missing_deletions(fake_hub, people) == []
    assert_protected_untouched(fake_hub, people)


def test_a_model_that_is_not_an_object_is_skipped(fake_hub):
    people = populate(fake_hub)
    fake_hub.add_raw_user(["weird", {"ready": True}], name="weird", ready=True, active=True)
    fake_hub.add_raw_user("weird", name="weirder", ready=True, active=True)
    fake_hub.add_raw_user(42, name="weirdest", ready=True, active=True)
    stats, _ = one_pass(fake_hub)
    assert stats.users_skipped == 3
    assert missing_stops(fake_hub, people) == [] and missing_deletions(fake_hub, people) == []
    assert_protected_untouched(fake_hub, people)


# ---------------------------------------------------------------------------------------------
# dates in the future: negative idle time is activity, never idleness

def future(seconds: float, offset: str = "Z") -> str:
    stamp = (utcnow() + timedelta(seconds=seconds)).replace(tzinfo=None).isoformat()
    return stamp + offset


FUTURE_MODELS = {
    "activity-in-an-hour": dict(server_patch={"last_activity": future(3600)}),
    "activity-naive": dict(server_patch={"last_activity": future(3600, "")}),
    "activity-with-offset": dict(server_patch={"last_activity": (
        utcnow() + timedelta(hours=3)).astimezone().isoformat()}),
    "activity-in-2999": dict(server_patch={"last_activity": "2999-01-01T00:00:00.000000Z"}),
    "activity-at-the-end-of-time": dict(server_patch={"last_activity": "9999-12-31T23:59:59Z"}),
    "started-in-the-future-no-activity": dict(server_patch={"last_activity": None,
                                                            "started": future(600)}),
    "legacy-model-user-activity-in-the-future": dict(
        servers=None, server="/user/ahead/", last_activity=future(86400)),
}


@pytest.mark.parametrize("patch", FUTURE_MODELS.values(), ids=list(FUTURE_MODELS))
def test_activity_in_the_future_is_never_idle(fake_hub, patch):
    people = populate(fake_hub)
    model = raw_model("ahead", **patch)
    if model.get("servers") is None:  # the legacy model of hubs before 0.9
        del model["servers"]
    fake_hub.add_raw_user(model, name="ahead", ready=True, active=True)
    stats, _ = one_pass(fake_hub)
    assert "ahead" not in [user for user, _ in stop_targets(fake_hub)]
    assert "ahead" not in delete_targets(fake_hub)
    assert missing_stops(fake_hub, people) == [] and missing_deletions(fake_hub, people) == []
    assert_protected_untouched(fake_hub, people)
    assert stats.listing_error is None


def test_user_created_in_the_future_without_activity_is_not_deleted(fake_hub):
    people = populate(fake_hub)
    model = raw_model("newborn", servers={}, created=future(3600), last_activity=None)
    fake_hub.add_raw_user(model, name="newborn", ready=False, active=False)
    one_pass(fake_hub)
    assert "newborn" not in delete_targets(fake_hub)
    assert missing_deletions(fake_hub, people) == []


@pytest.mark.parametrize("stamp", [
    "9999-12-31T23:59:59-01:00",   # in the future, and beyond datetime.max once in UTC
    "0001-01-01T00:00:00+01:00",   # before datetime.min once in UTC
])
def test_timestamps_beyond_the_datetime_range_do_not_end_the_pass(fake_hub, stamp):
    """The parser must turn any timestamp string into a time or a ModelError (its documented
    contract), also when the conversion to UTC overflows; otherwise the error escapes the pass
    and, in the daemon, ends the process (exit 1)."""
    people = populate(fake_hub)
    fake_hub.add_raw_user(raw_model("edge", server_patch={"last_activity": stamp}),
                          name="edge", ready=True, active=True)
    stats, _ = one_pass(fake_hub)
    assert stats.listing_error is None
    if stamp.startswith("9999"):
        assert "edge" not in [user for user, _ in stop_targets(fake_hub)]
    assert missing_stops(fake_hub, people) == [] and missing_deletions(fake_hub, people) == []
    assert_protected_untouched(fake_hub, people)


# ---------------------------------------------------------------------------------------------
# duplicate users across pages: what the sightings do not agree on is kept

def fillers(hub, count: int, tag: str) -> None:
    hub.add(*[idle_user("fill%s-%02d" % (tag, i), ACTIVE_S) for i in range(count)])


def test_duplicate_idle_sightings_stop_the_server_once(fake_hub):
    fake_hub.add(idle_user("dup", IDLE_S))
    fillers(fake_hub, 12, "a")
    fake_hub.add_raw_user(raw_model("dup"), name="dup~copy", ready=True, active=True)
    stats, _ = one_pass(fake_hub, CullSettings(timeout=TIMEOUT_S))
    assert stop_targets(fake_hub) == [("dup", "")]
    assert stats.stopped == 1


def test_duplicate_active_then_stale_idle_sighting_is_kept(fake_hub):
    """The first page shows the user active, a later page an idle (stale) copy: the two
    sightings disagree, so the server must be kept ("doubt keeps", ``UserJob.merged``).

    Listing order is not time order: the pages after the first are fetched concurrently, so
    the later page may well hold the older snapshot."""
    fake_hub.add(idle_user("dup", ACTIVE_S))
    fillers(fake_hub, 12, "a")
    fake_hub.add_raw_user(raw_model("dup"), name="dup~stale", ready=True, active=True)
    one_pass(fake_hub, CullSettings(timeout=TIMEOUT_S))
    assert ("dup", "") not in stop_targets(fake_hub)


def test_duplicate_stale_idle_then_active_sighting_is_kept(fake_hub):
    fake_hub.add_raw_user(raw_model("dup"), name="dup~stale", ready=True, active=True)
    fillers(fake_hub, 12, "a")
    fake_hub.add(idle_user("dup", ACTIVE_S))
    one_pass(fake_hub, CullSettings(timeout=TIMEOUT_S))
    assert ("dup", "") not in stop_targets(fake_hub)


def test_duplicate_across_the_ready_and_inactive_listings_is_not_deleted(fake_hub):
    """Seen running in ``state=ready``, then (stale) without servers and idle in
    ``state=inactive``: the user must not be deleted."""
    fake_hub.add(idle_user("dup", ACTIVE_S))
    fake_hub.add_raw_user(raw_model("dup", servers={}, server=None), name="dup~stale",
                          ready=False, active=False)
    one_pass(fake_hub)
    assert "dup" not in delete_targets(fake_hub)


def test_duplicates_leave_everybody_else_alone(fake_hub):
    people = populate(fake_hub)
    for name in ("idle-0", "busy-0"):
        fake_hub.add_raw_user(raw_model(name, idle_s=ACTIVE_S), name=name + "~copy",
                              ready=True, active=True)
    one_pass(fake_hub)
    assert_protected_untouched(fake_hub, people)
    assert ("idle-0", "") not in stop_targets(fake_hub)  # its copy says active: kept
    assert sorted(set(missing_stops(fake_hub, people))) == [("idle-0", "")]


# ---------------------------------------------------------------------------------------------
# broken pagination envelopes (valid JSON, wrong shape or types)

ENVELOPES = {
    "null": None,
    "string": "users",
    "number": 42,
    "empty-object": {},
    "items-object": {"items": {}, "_pagination": {}},
    "items-missing": {"_pagination": {"offset": 0, "limit": 5, "total": 0, "next": None}},
    "pagination-list": {"items": [], "_pagination": []},
    "next-not-advancing": {"items": [], "_pagination": {"offset": 0, "limit": 5, "total": 50,
                                                         "next": {"offset": 0}}},
    "next-string": {"items": [], "_pagination": {"next": "page2"}},
    "next-offset-words": {"items": [], "_pagination": {"next": {"offset": "five"}}},
    "total-words": {"items": [], "_pagination": {"limit": 5, "total": "many", "next": None}},
    "total-nan": {"items": [], "_pagination": {"offset": 0, "limit": 5, "total": float("nan"),
                                                "next": {"offset": 5}}},
    "limit-negative": {"items": [], "_pagination": {"offset": 0, "limit": -5, "total": 50,
                                                     "next": {"offset": 5}}},
    "plain-list-of-garbage": [1, "two", None, {"name": 3}, []],
}


@pytest.mark.parametrize("body", ENVELOPES.values(), ids=list(ENVELOPES))
def test_broken_pagination_envelope_ends_at_most_that_pass(fake_hub, body):
    people = populate(fake_hub)
    fake_hub.faults.add("GET /users", "malformed", body=json.dumps(body))
    first, _ = one_pass(fake_hub)
    assert_protected_untouched(fake_hub, people)
    if first.listing_error:
        assert stop_targets(fake_hub) == [] and delete_targets(fake_hub) == []
    for _ in range(2):
        one_pass(fake_hub)
        assert_protected_untouched(fake_hub, people)
    assert missing_stops(fake_hub, people) == [] and missing_deletions(fake_hub, people) == []


@pytest.mark.parametrize("total", ["1e400", "1e18"], ids=["infinite", "absurd"])
def test_absurd_total_in_the_first_page_does_not_end_the_pass(fake_hub, total):
    """``total`` is a number the hub computes; a wrong one (JSON allows 1e400, which Python
    reads as infinity) must end at most this pass with a HubError, never escape it as
    OverflowError or MemoryError (which ends the daemon with exit 1)."""
    people = populate(fake_hub)
    body = ('{"items": [], "_pagination": {"offset": 0, "limit": 5, "total": %s, '
            '"next": {"offset": 5, "limit": 5, "url": null}}}' % total)
    fake_hub.faults.add("GET /users", "malformed", body=body)
    one_pass(fake_hub)
    assert_protected_untouched(fake_hub, people)
    for _ in range(2):
        one_pass(fake_hub)
    assert missing_stops(fake_hub, people) == [] and missing_deletions(fake_hub, people) == []
