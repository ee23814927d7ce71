"""SIGHUP's reload, against the loopback fake hub: all or nothing, preflighted, never fatal.

The culler is built as cli builds it, with a ``load`` that re-reads an in-memory set of files
(the config file and the token file), so each test changes a file and calls ``reload``.
"""

import logging

import pytest

from idle_culler_daemon.config import load_config
from idle_culler_daemon.hub import RetryPolicy
from idle_culler_daemon.options import parse_command_line
from idle_culler_daemon.service import Culler
from tests.support.fakehub import idle_user

READ_ONLY = ["list:users", "read:users", "read:users:activity", "read:servers"]


class Files(dict):
    """An in-memory file system for ``load_config``; values may be bytes (not UTF-8)."""

    def read(self, path):
        if path not in self:
            raise FileNotFoundError(2, "No such file or directory", path)
        value = self[path]
        return value.decode("utf-8") if isinstance(value, bytes) else value


@pytest.fixture
def make_culler(fake_hub):
    made = []

    def make(conf="[culler]\ntimeout = 3600\n", *argv):
        files = Files({"c.ini": conf, "token": fake_hub.token})
        cli = parse_command_line(["--url=" + fake_hub.api_url, "--config=c.ini",
                                  "--api-token-file=token", *argv])
        calls = []

        def load():
            return load_config(cli, {}, files.read)

        culler = Culler(load(), load, logging=lambda config, also: calls.append(
            (config.log_level, config.hub.token, also)))
        culler.policy = RetryPolicy(retries=0)  # a hub that is down fails at once
        made.append(culler)
        return culler, files, calls

    yield make
    for culler in made:
        culler.close()


def one_pass(culler):
    return culler.run_pass(lambda: None)


def test_reload_applies_a_good_file_and_the_new_token_is_redacted_before_the_swap(
        fake_hub, make_culler):
    culler, files, calls = make_culler()
    one_pass(culler)
    new_token = fake_hub.add_token()
    files["c.ini"] = "[culler]\ntimeout = 1200\nlog_level = DEBUG\n"
    files["token"] = new_token
    status = culler.reload()
    assert status == "reloaded: cull_every, log_level, timeout, credential changed"
    assert culler.config.culling.timeout == 1200 and culler.config.hub.token == new_token
    # Logging: first the old settings redacting the new token too, then the new settings
    # (the old token forgotten only once the new one is in force).
    assert calls == [("INFO", fake_hub.token, (new_token,)), ("DEBUG", new_token, ())]
    assert one_pass(culler).ok
    assert fake_hub.records(route="self")[-1].headers["authorization"] == "token " + new_token


@pytest.mark.parametrize("conf,error", [
    ("[culler]\ntimeout = 60\ncull_users = true\n", "lacks the scope"),
    (b"[culler]\ntimeout = 60 \xff\n", "not UTF-8"),
    ("[culler]\ntimeout = 60\n[rule:x]\nusers = *\nbogus = 1\n", "'bogus'"),
    ("[culler]\ntimeout = soon\n", "--timeout"),
])
def test_reload_that_would_fail_is_refused_and_the_running_configuration_stays(
        fake_hub, make_culler, conf, error):
    fake_hub.scopes = READ_ONLY + ["delete:servers"]  # no delete:users for --cull-users
    culler, files, calls = make_culler()
    one_pass(culler)
    files["c.ini"] = conf
    status = culler.reload()
    assert status.startswith("reload refused, the previous configuration stays: ")
    assert error in status
    assert culler.config.culling.timeout == 3600 and not culler.config.culling.cull_users
    assert calls[-1:] in ([], [("INFO", fake_hub.token, ())])  # logging as it was
    fake_hub.add(idle_user("ann", 7200))
    assert one_pass(culler).ok and fake_hub.stopped_servers() == [("ann", "")]


def test_reload_keeps_the_metrics_endpoint_and_says_a_restart_is_needed(fake_hub, make_culler):
    culler, files, _ = make_culler("[culler]\nmetrics_port = 0\ntimeout = 3600\n")
    files["c.ini"] = "[culler]\nmetrics_port = 9180\ntimeout = 1800\n"
    status = culler.reload()
    assert status == "reloaded: cull_every, timeout changed; a restart is needed for metrics_port"
    assert culler.config.metrics_port == 0 and culler.config.culling.timeout == 1800
    assert culler.config.describe()["metrics_port"] == "0"


def test_reload_switches_the_metrics_file(fake_hub, make_culler, tmp_path):
    pytest.importorskip("prometheus_client")
    first, second = tmp_path / "a.prom", tmp_path / "b.prom"
    culler, files, _ = make_culler("[culler]\nmetrics_file = %s\n" % first)
    files["c.ini"] = "[culler]\nmetrics_file = %s\n" % (tmp_path / "missing" / "c.prom")
    assert "cannot write" in culler.reload()
    files["c.ini"] = "[culler]\nmetrics_file = %s\n" % second
    assert culler.reload() == "reloaded: metrics_file changed"
    one_pass(culler)
    assert "jupyterhub_idle_culler_passes_total" in second.read_text()


def test_reload_while_the_hub_is_down_is_checked_before_the_next_pass(fake_hub, make_culler):
    fake_hub.scopes = READ_ONLY + ["delete:servers"]
    culler, files, calls = make_culler()
    one_pass(culler)
    fake_hub.faults.add("GET /", 503, count=1)
    files["c.ini"] = "[culler]\ntimeout = 60\ncull_users = true\n"
    assert culler.reload() == "reloaded: cull_every, cull_users, timeout changed"  # unverified
    fake_hub.add(idle_user("ann", 1800))
    stats = one_pass(culler)  # the preflight refuses it now: the previous one comes back
    assert stats.ok and culler.config.culling.timeout == 3600
    assert not culler.config.culling.cull_users
    assert calls[-1] == ("INFO", fake_hub.token, ())
    assert fake_hub.stopped_servers() == []  # 30 minutes idle is within the 1 h of before


def test_reload_names_the_file_values_that_the_command_line_overrides(fake_hub, make_culler,
                                                                      caplog):
    culler, files, _ = make_culler("[culler]\ntimeout = 3600\n", "--timeout=600")
    files["c.ini"] = "[culler]\ntimeout = 1200\nmax_age = 7d\n"
    with caplog.at_level(logging.INFO):
        status = culler.reload()
    assert culler.config.culling.timeout == 600  # the command line still wins
    assert status == "reloaded: max_age changed"
    overridden = [record.getMessage() for record in caplog.records
                  if "reload-overridden" in record.getMessage()]
    assert len(overridden) == 1 and "options=timeout" in overridden[0]


def test_reload_warns_about_rules_on_values_users_choose(fake_hub, make_culler, caplog):
    culler, files, _ = make_culler()
    files["c.ini"] = ("[culler]\ntimeout = 3600\n[rule:vip]\nuser_options = tier=vip\n"
                      "cull = false\n[rule:gpu]\nprofiles = gpu-*\ntimeout = 15m\n")
    with caplog.at_level(logging.WARNING):
        culler.reload()
    warnings = [record.getMessage() for record in caplog.records
                if "rule-chosen-by-users" in record.getMessage()]
    assert len(warnings) == 1 and "rule=vip" in warnings[0] and "cull=false" in warnings[0]
    assert "KubeSpawner" in warnings[0]
