"""The user-model parser: strict where decisions depend on it, lenient elsewhere."""

from datetime import datetime, timezone

import pytest

from idle_culler_daemon.errors import ModelError
from idle_culler_daemon.model import parse_hub_time, parse_server_status, parse_user
from tests.fakes import server_model, user_model


def test_parse_hub_time_reads_naive_timestamps_as_utc():
    assert parse_hub_time("2026-11-26T10:00:00") == datetime(2026, 11, 26, 10, tzinfo=timezone.utc)


def test_parse_hub_time_converts_other_zones_to_utc():
    assert parse_hub_time("2026-11-26T12:00:00+02:00") == datetime(2026, 11, 26, 10,
                                                                    tzinfo=timezone.utc)


def test_parse_hub_time_keeps_none_and_refuses_garbage():
    assert parse_hub_time(None) is None
    with pytest.raises(ModelError):
        parse_hub_time("yesterday")
    with pytest.raises(ModelError):
        parse_hub_time(1700000000)


def test_parse_user_reads_servers_with_names():
    model = user_model("ann", {"": server_model(10), "lab": server_model(20, name="lab")})
    user = parse_user(model)
    assert [s.name for s in user.servers] == ["", "lab"]
    assert user.servers[0].is_default and user.servers[0].ready


def test_parse_user_without_servers_key_uses_the_legacy_server_field():
    model = user_model("ann")
    del model["servers"]
    model.update(server="/user/ann/", pending=None)
    user = parse_user(model)
    assert len(user.servers) == 1 and user.servers[0].ready
    assert user.servers[0].last_activity == user.last_activity


def test_parse_user_old_hub_server_without_ready_uses_url():
    model = user_model("ann", {"": {"url": "/user/ann/", "started": None,
                                    "last_activity": None, "pending": None}})
    assert parse_user(model).servers[0].ready


@pytest.mark.parametrize("mutate", [
    lambda m: m.update(name=None),
    lambda m: m.update(admin="yes"),
    lambda m: m.update(groups="staff"),
    lambda m: m.update(last_activity="not a date"),
    lambda m: m.update(servers=[1, 2]),
    lambda m: m["servers"][""].update(ready="true"),
    lambda m: m["servers"][""].update(last_activity=12),
    lambda m: m["servers"].update(lab="running"),
])
def test_parse_user_refuses_wrong_types(mutate):
    model = user_model("ann", {"": server_model(10)})
    mutate(model)
    with pytest.raises(ModelError):
        parse_user(model)


def test_parse_user_refuses_something_that_is_not_an_object():
    with pytest.raises(ModelError):
        parse_user(["ann"])


def test_parse_user_without_admin_key_leaves_admin_unknown():
    model = user_model("ann")
    del model["admin"]
    assert parse_user(model).admin is None


def test_parse_user_keeps_url_user_options_and_profile():
    model = user_model("ann", {"": server_model(10)})
    model["servers"][""]["user_options"] = {"profile": "gpu-a100", "gpu": True, "cores": 8,
                                            "image": "x/torch", "env": {"A": "1"},
                                            "volumes": ["a"], "note": None}
    (server,) = parse_user(model).servers
    assert server.url == "/user/x/" and server.profile == "gpu-a100"
    assert dict(server.user_options) == {"profile": "gpu-a100", "gpu": "true", "cores": "8",
                                         "image": "x/torch"}


def test_parse_user_tells_options_unknown_from_options_empty():
    model = user_model("ann", {"": server_model(10), "lab": server_model(10, name="lab")})
    model["servers"][""]["user_options"] = None
    default, lab = parse_user(model).servers
    assert default.user_options == () and default.profile is None
    assert lab.user_options is None  # the model carries no user_options at all
    legacy = {"name": "ann", "server": "/user/ann/", "last_activity": None}
    (server,) = parse_user(legacy).servers
    assert server.user_options is None and server.url == "/user/ann/"


def test_parse_user_refuses_user_options_that_are_not_an_object():
    model = user_model("ann", {"": server_model(10)})
    model["servers"][""]["user_options"] = ["gpu"]
    with pytest.raises(ModelError, match="user_options"):
        parse_user(model)


def test_parse_user_tolerates_a_url_of_the_wrong_type():
    model = user_model("ann", {"": server_model(10)})
    model["servers"][""]["url"] = 5
    assert parse_user(model).servers[0].url is None


def test_parse_server_status_reads_jupyter_server_answers():
    status = {"started": "2026-11-26T10:00:00.000000Z",
              "last_activity": "2026-11-26T11:00:00.000000Z", "kernels": 2, "connections": 1}
    kernels = [{"id": "a", "execution_state": "busy"}, {"id": "b", "execution_state": "idle"}]
    parsed = parse_server_status(status, kernels)
    assert parsed.last_activity == datetime(2026, 11, 26, 11, tzinfo=timezone.utc)
    assert parsed.kernels == 2 and parsed.kernel_states == ("busy", "idle")
    assert parse_server_status(status).kernel_states is None


@pytest.mark.parametrize("status,kernels", [
    ("<html>login</html>", None), ({"realhub": True}, None), ([], None),
    ({"last_activity": "soon"}, None), ({"last_activity": None, "kernels": "2"}, None),
    ({"last_activity": None}, {"a": 1}), ({"last_activity": None}, ["busy"]),
])
def test_parse_server_status_refuses_what_is_not_a_jupyter_server(status, kernels):
    with pytest.raises(ModelError):
        parse_server_status(status, kernels)
