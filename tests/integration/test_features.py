"""Decisions beyond the reference, against the loopback fake hub: asking single-user servers
about their kernels (through the "proxy"), the mass-cull guard, rules on profiles."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from idle_culler_daemon.config import CullSettings, HubSettings, RuleSettings
from idle_culler_daemon.cull import Runtime, run_pass
from idle_culler_daemon.errors import HubAuthError, HubHTTPError, HubUnavailable
from idle_culler_daemon.hub import HubClient, RetryPolicy, ServerToken
from tests.integration.test_pass import culler_pass as pass_on
from tests.support.fakehub import AUTO, crowd, idle_user, utcnow

FAST_RETRIES = RetryPolicy(connect_timeout=0.5, backoff_factor=0.01)
ANY_TOKEN = ServerToken(id="1", value="not-a-token-the-hub-knows")


def client(hub, **overrides):
    settings = dict(api_url=hub.api_url, token=hub.token, read_timeout=0.5,
                    server_url_base=hub.url)
    settings.update(overrides)
    return HubClient(HubSettings(**settings), FAST_RETRIES)


def culler_pass(fake_hub, settings):
    return pass_on(fake_hub, settings, server_url_base=fake_hub.url)


# --- the client: asking a single-user server through the proxy ------------------------------

def test_client_asks_a_server_with_the_token_header_and_without_counting_as_activity(fake_hub):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.update_server("ann", "", kernels=("busy",))
    hub = client(fake_hub)
    token = hub.server_token("ann", "", 60)  # ann's own, for this server only
    status = hub.server_status("/user/ann/", token)
    kernels = hub.server_kernels("/user/ann/", token)
    assert status["kernels"] == 1 and kernels[0]["execution_state"] == "busy"
    for record in fake_hub.records(route="server_status") + fake_hub.records(
            route="server_kernels"):
        assert record.headers["authorization"] == "token " + token.value
        assert record.query == {"no_track_activity": "1"}
    assert fake_hub.server("ann").own_last_activity is AUTO  # no activity recorded there
    assert hub.server_status("/user/ann/", token)["last_activity"] == status["last_activity"]


def test_client_asks_named_servers_and_servers_whose_url_lacks_the_slash(fake_hub):
    fake_hub.add(idle_user("c@d", 3600, server_name="my lab"))
    model = client(fake_hub)
    token = model.server_token("c@d", "my lab", 60)
    assert model.server_status("/user/c@d/my%20lab/", token)["kernels"] == 0
    assert model.server_status("/user/c@d/my%20lab", token)["kernels"] == 0


def test_client_never_retries_a_server_nor_follows_its_redirect(fake_hub):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.faults.add("GET */api/status", 503, count=None)
    with pytest.raises(HubUnavailable) as info:
        client(fake_hub).server_status("/user/ann/", ANY_TOKEN)
    assert info.value.status == 503 and len(fake_hub.records(route="server_status")) == 1
    fake_hub.faults.clear()
    fake_hub.faults.add("GET */api/status", 302, count=None,
                        body=b"", message="Found")
    with pytest.raises(HubHTTPError) as info:
        client(fake_hub).server_status("/user/ann/", ANY_TOKEN)
    assert info.value.status == 302 and len(fake_hub.records(route="server_status")) == 2


def test_client_keeps_retrying_the_hub_api_behind_the_same_proxy(fake_hub):
    # the API and the servers share one origin here: the API keeps its retries
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.faults.add("GET /users", 503, count=2)
    assert len(client(fake_hub).users_page("ready", 0).items) == 1
    assert len(fake_hub.records(route="list_users")) == 3


def test_client_a_server_that_does_not_answer_costs_one_request_timeout(fake_hub):
    fake_hub.add(idle_user("ann", 3600))
    fake_hub.faults.add("GET */api/status", "hang", count=None, delay=5)
    started = time.monotonic()
    with pytest.raises(HubUnavailable):
        client(fake_hub, read_timeout=0.3).server_status("/user/ann/", ANY_TOKEN)
    assert time.monotonic() - started < 2 and len(fake_hub.records(route="server_status")) == 1


def test_client_server_answers_a_stopped_server_a_foreign_one_and_a_refusal(fake_hub):
    fake_hub.add(idle_user("ann", 3600), idle_user("bob", 3600))
    fake_hub.update_server("bob", "", kernels=None)
    hub = client(fake_hub)
    with pytest.raises(HubHTTPError) as info:
        hub.server_status("/user/nobody/", ANY_TOKEN)
    assert info.value.status == 302  # not followed
    with pytest.raises(HubHTTPError) as info:
        hub.server_status("/user/bob/", hub.server_token("bob", "", 60))
    assert info.value.status == 404
    with pytest.raises(HubAuthError):  # ann's token is not bob's
        hub.server_status("/user/bob/", hub.server_token("ann", "", 60))
    fake_hub.scopes = ["list:users", "read:servers"]
    with pytest.raises(HubAuthError):  # no "tokens": none is minted
        hub.server_token("ann", "", 60)


# --- whole passes with --check-kernels ------------------------------------------------------

def test_pass_with_check_kernels_keeps_the_busy_server_and_stops_the_others(fake_hub, caplog):
    now = utcnow()
    fake_hub.add(idle_user("busy", 7200, now), idle_user("quiet", 7200, now),
                 idle_user("bare", 7200, now), idle_user("lively", 7200, now))
    fake_hub.update_server("busy", "", kernels=("busy",))
    fake_hub.update_server("quiet", "", kernels=("idle",))
    fake_hub.update_server("lively", "", kernels=("idle",), own_last_activity=now)
    settings = CullSettings(timeout=3600, cull_users=True, check_kernels=True)
    with caplog.at_level(logging.INFO):
        stats = culler_pass(fake_hub, settings)
    assert sorted(user for user, _ in fake_hub.stopped_servers()) == ["bare", "quiet"]
    assert sorted(fake_hub.deleted_users()) == ["bare", "quiet"]
    assert (stats.checked, stats.kept_by_server) == (4, 2)
    assert len(fake_hub.records(route="server_status")) == 4
    assert len(fake_hub.records(route="server_kernels")) == 2  # bare has none; lively: status
    assert fake_hub.server("busy").own_last_activity is AUTO  # our questions left no trace
    assert "reason=kernel-busy" in caplog.text and "reason=server-active" in caplog.text


def test_pass_with_check_kernels_never_stalls_on_a_silent_server(fake_hub, caplog):
    fake_hub.add(*[idle_user("u%d" % i, 7200) for i in range(6)])
    fake_hub.faults.add("GET */api/status", "hang", count=None, delay=5)
    started = time.monotonic()
    hub = HubClient(HubSettings(api_url=fake_hub.api_url, token=fake_hub.token,
                                read_timeout=0.3, pool_size=3, server_url_base=fake_hub.url),
                    RetryPolicy(connect_timeout=1, backoff_factor=0.01))
    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(max_workers=3) as executor:
        stats = run_pass(hub, CullSettings(timeout=3600, check_kernels=True),
                         datetime.now(timezone.utc), Runtime(executor, 3))
    hub.close()
    assert time.monotonic() - started < 4  # 6 silent servers, 3 at a time, 0.3 s each
    assert stats.stopped == 6 and stats.check_failed == 6
    assert caplog.text.count("kernel-check-failed") == 1 and "reason=no-answer" in caplog.text


# --- the mass-cull guard --------------------------------------------------------------------

def test_guard_fraction_on_the_fake_hub_stops_nothing_and_names_90_of_100(fake_hub, caplog):
    fake_hub.add(*crowd(100, 90))
    with caplog.at_level(logging.ERROR):
        stats = culler_pass(fake_hub, CullSettings(timeout=3600, max_stop_fraction=0.5))
    assert fake_hub.stopped_servers() == [] and not stats.ok
    assert [r.method for r in fake_hub.records()].count("DELETE") == 0
    (line,) = [r.getMessage() for r in caplog.records if "mass-cull-guard" in r.getMessage()]
    assert "share=90/100" in line and "fraction=0.9 " in line and "limit=0.5" in line


def test_guard_cap_on_the_fake_hub_takes_the_longest_idle_ten_a_pass(fake_hub):
    fake_hub.add(*crowd(100, 90))
    settings = CullSettings(timeout=3600, max_stops_per_pass=10)
    first = culler_pass(fake_hub, settings)
    assert sorted(user for user, _ in fake_hub.stopped_servers()) == \
        ["u%03d" % i for i in range(80, 90)]
    assert first.held_back == 80 and first.ok
    second = culler_pass(fake_hub, settings)
    assert sorted(user for user, _ in fake_hub.stopped_servers()) == \
        ["u%03d" % i for i in range(70, 90)]
    assert second.held_back == 70


# --- rules on profiles ------------------------------------------------------------------------

def test_profile_rule_on_the_fake_hub(fake_hub):
    now = utcnow()
    for name, options in (("gpu", {"profile": "gpu-a100"}), ("cpu", {"profile": "cpu-small"}),
                          ("plain", {})):
        fake_hub.add(idle_user(name, 1800, now))
        fake_hub.update_server(name, "", user_options=options)
    rule = RuleSettings("gpu", profiles=("gpu-*",), timeout=900)
    culler_pass(fake_hub, CullSettings(timeout=3600, rules=(rule,)))
    assert fake_hub.stopped_servers() == [("gpu", "")]


def test_profile_rule_without_read_servers_matches_nothing_and_says_which_scope(fake_hub,
                                                                                caplog):
    fake_hub.add(idle_user("gpu", 1800))
    fake_hub.update_server("gpu", "", user_options={"profile": "gpu-a100"})
    fake_hub.scopes = ["list:users", "read:users", "delete:servers"]  # no read:servers
    rule = RuleSettings("gpu", profiles=("gpu-*",), timeout=900)
    with caplog.at_level(logging.WARNING):
        culler_pass(fake_hub, CullSettings(timeout=3600, rules=(rule,)))
    assert fake_hub.stopped_servers() == []
    assert "user-options-missing" in caplog.text and "read:servers" in caplog.text
