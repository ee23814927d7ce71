"""Property tests of the model parser: whatever the hub sends, ``parse_user`` returns a ``User``
or raises its documented ``ModelError``, nothing else; timestamps come out aware and in UTC.

Deterministic for CI: ``derandomize=True`` and no example database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Dict

from hypothesis import HealthCheck, example, given, settings

from idle_culler_daemon.errors import ModelError
from idle_culler_daemon.model import Server, User, parse_hub_time, parse_user
from tests.property.strategies import json_values, timestamps, user_models, zoned_times

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

def _check_time(value: Any) -> None:
    if value is not None:
        assert isinstance(value, datetime) and value.utcoffset() == timedelta(0)


def _parse_or_model_error(model: Any) -> Any:
    try:
        user = parse_user(model)
    except ModelError:
        return None
    assert isinstance(user, User) and isinstance(user.name, str) and user.name
    assert user.admin in (True, False, None)
    assert user.groups is None or all(isinstance(group, str) for group in user.groups)
    assert (user.groups is None) == (model.get("groups") is None)  # unknown, not "none"
    _check_time(user.created)
    _check_time(user.last_activity)
    for server in user.servers:
        assert isinstance(server, Server) and isinstance(server.name, str)
        assert isinstance(server.ready, bool)
        assert server.pending is None or isinstance(server.pending, str)
        _check_time(server.started)
        _check_time(server.last_activity)
    return user


@SETTINGS
@given(json_values)
def test_parse_user_any_json_value_gives_a_user_or_a_model_error(model):
    _parse_or_model_error(model)


@SETTINGS
@given(user_models)
@example({"name": "ann", "servers": {"": {"ready": True,
                                          "last_activity": "9999-12-31T23:59:59-01:00"}}})
def test_parse_user_near_valid_models_give_a_user_or_a_model_error(model):
    _parse_or_model_error(model)


@SETTINGS
@given(timestamps)
@example("9999-12-31T23:59:59-01:00")
@example("0001-01-01T00:00:00+01:00")
def test_parse_hub_time_gives_aware_utc_none_or_a_model_error(value):
    try:
        parsed = parse_hub_time(value)
    except ModelError:
        return
    _check_time(parsed)


@SETTINGS
@given(zoned_times)
def test_parse_hub_time_reads_back_every_aware_time_in_range(moment):
    """A zoned timestamp is the same instant after parsing, or a ModelError when that instant
    is outside what a datetime can hold in UTC."""
    try:
        parsed = parse_hub_time(moment.isoformat())
    except ModelError:
        return
    assert parsed == moment and parsed.utcoffset() == timedelta(0)


@SETTINGS
@given(user_models)
def test_parse_user_keeps_every_server_it_accepts(model):
    user = _parse_or_model_error(model)
    servers: Dict[str, Any] = model.get("servers") if isinstance(model, dict) else None
    if user is not None and isinstance(servers, dict):
        assert sorted(server.name for server in user.servers) == sorted(servers)
