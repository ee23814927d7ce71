"""Rules, group matching, SIGHUP reloads and metrics against a real JupyterHub 6.1.1."""

import signal
import subprocess
import time
import urllib.request

import pytest

from tests.support.realhub import culler_command, unique_names

pytestmark = pytest.mark.realhub

HOUR = 3600


def write(path, text):
    path.write_text(text)
    return "--config=%s" % path


def test_realhub_excluded_group_is_never_stopped_or_deleted(realhub, tmp_path):
    staff, other = unique_names("grp", 2)
    (group,) = unique_names("staff")
    realhub.create_users([staff, other])
    realhub.add_to_group(group, [staff])
    for user in (staff, other):
        realhub.start_server(user)
        realhub.backdate(user, "", last_activity=2 * HOUR, started=2 * HOUR,
                         user_last_activity=2 * HOUR, created=3 * HOUR)
    config = write(tmp_path / "c.ini", "[rule:staff]\ngroups = %s\ncull = false\n" % group)
    result = realhub.run_culler("culler", config, "--timeout=3600", "--cull-users", "--once")
    assert result.returncode == 0, result.stderr
    assert realhub.server_running(staff) and realhub.user_exists(staff)
    assert not realhub.user_exists(other)


def test_realhub_exclude_groups_option_without_a_file(realhub):
    staff, other = unique_names("xgrp", 2)
    (group,) = unique_names("ops")
    realhub.create_users([staff, other])
    realhub.add_to_group(group, [staff])
    for user in (staff, other):
        realhub.start_server(user)
        realhub.backdate(user, "", last_activity=2 * HOUR, started=2 * HOUR)
    result = realhub.run_culler("culler", "--exclude-groups=" + group, "--timeout=3600",
                                "--once")
    assert result.returncode == 0, result.stderr
    assert realhub.server_running(staff) and not realhub.server_running(other)


def test_realhub_gpu_server_stopped_at_its_shorter_timeout_default_kept(realhub, tmp_path):
    (user,) = unique_names("gpu")
    realhub.create_users([user])
    realhub.start_server(user)
    realhub.start_server(user, "gpu-a")
    for name in ("", "gpu-a"):
        realhub.backdate(user, name, last_activity=1800, started=1800)
    config = write(tmp_path / "c.ini",
                   "[culler]\ntimeout = 3600\n[rule:gpu]\nserver_names = gpu-*\ntimeout = 900\n")
    result = realhub.run_culler("culler", config, "--once")
    assert result.returncode == 0, result.stderr
    assert not realhub.server_running(user, "gpu-a") and realhub.server_running(user)
    assert "event=stop user=%s server=gpu-a reason=idle idle_s=" % user in result.stderr
    assert "rule=gpu" in [line for line in result.stderr.splitlines()
                          if "server=gpu-a" in line][0]


def test_realhub_guest_without_server_deleted_by_user_timeout(realhub, tmp_path):
    (number,) = unique_names("n")
    guest, member = "guest-" + number, "member-" + number
    realhub.create_users([guest, member])
    for user in (guest, member):
        realhub.backdate(user, None, created=HOUR)
    config = write(tmp_path / "c.ini", "[culler]\ntimeout = 86400\ncull_users = true\n"
                   "[rule:guests]\nusers = guest-*\nuser_timeout = 600\n")
    result = realhub.run_culler("culler", config, "--once")
    assert result.returncode == 0, result.stderr
    assert not realhub.user_exists(guest) and realhub.user_exists(member)
    assert "event=delete user=%s reason=idle" % guest in result.stderr


def test_realhub_group_rule_without_read_users_groups_exits_78(realhub, tmp_path):
    config = write(tmp_path / "c.ini", "[rule:staff]\ngroups = staff\ncull = false\n")
    result = realhub.run_culler("culler-no-groups", config, "--once")
    assert result.returncode == 78
    errors = [line for line in result.stderr.splitlines() if "level=ERROR " in line]
    assert len(errors) == 1 and "read:users:groups" in errors[0]


class Daemon:
    """The culler as a long-running subprocess; stderr is read line by line, bounded."""

    def __init__(self, hub, *args):
        env = hub.service_env("culler")
        self.process = subprocess.Popen(culler_command() + ["--url=" + hub.api_url, *args],
                                        env=env, stdin=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.lines = []

    def wait_for(self, needle, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError("%r not seen in:\n%s" % (needle, "".join(self.lines[-30:])))

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def test_realhub_sighup_applies_a_good_file_and_refuses_a_broken_one(realhub, tmp_path):
    first, second = unique_names("hup", 2)
    realhub.create_users([first, second])
    realhub.start_server(first)
    realhub.backdate(first, "", last_activity=1800, started=1800)
    path = tmp_path / "c.ini"
    config = write(path, "[culler]\ntimeout = 3600\n")
    daemon = Daemon(realhub, config, "--cull-every=1")
    try:
        daemon.wait_for("pass-done")
        assert realhub.server_running(first)
        path.write_text("[culler]\ntimeout = 1200\n")
        daemon.process.send_signal(signal.SIGHUP)
        assert "old=3600 new=1200" in daemon.wait_for("reload-changed option=timeout")
        daemon.wait_for("pass-done")
        assert not realhub.server_running(first)
        realhub.start_server(second)
        realhub.backdate(second, "", last_activity=1000, started=1000)
        path.write_text("[culler]\ntimeout = 600\n[rule:x]\nusers = *\nbogus = 1\n")
        daemon.process.send_signal(signal.SIGHUP)
        assert "'bogus'" in daemon.wait_for("reload-refused")
        daemon.wait_for("pass-done")
        daemon.wait_for("pass-done")
        assert realhub.server_running(second)  # the old timeout (1200 s) still applies
    finally:
        assert daemon.stop() == 0


def test_realhub_metrics_counter_equals_the_servers_stopped(realhub, unused_port):
    pytest.importorskip("prometheus_client")
    users = unique_names("metric", 3)
    realhub.create_users(users)
    for user in users:
        realhub.start_server(user)
        realhub.backdate(user, "", last_activity=2 * HOUR, started=2 * HOUR)
    daemon = Daemon(realhub, "--timeout=3600", "--cull-every=1",
                    "--metrics-port=%d" % unused_port)
    try:
        daemon.wait_for("pass-done")
        daemon.wait_for("pass-done")
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % unused_port,
                                    timeout=5) as answer:
            text = answer.read().decode()
    finally:
        assert daemon.stop() == 0
    stopped_lines = [line for line in daemon.lines
                     if " event=stop user=" in line and "result=stopped" in line]
    counted = sum(float(line.split()[-1]) for line in text.splitlines()
                  if line.startswith("jupyterhub_idle_culler_servers_stopped_total{"))
    assert counted == len(stopped_lines) >= 3
    assert all(not realhub.server_running(user) for user in users)
