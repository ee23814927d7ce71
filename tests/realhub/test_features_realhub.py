"""Rules on profiles, the JSON plan and kernel checks against a real JupyterHub 6.1.1.

The profile and plan tests use the shared hub (servers played by the in-hub responder, started
with ``user_options`` through the REST API as a form-based spawner stores them). The kernel
test needs real single-user servers: a hub of its own with ``spawner="process"``
(``jupyterhub-singleuser`` with jupyter_server and ipykernel from ``.venv-hub``), kernels
started and kept busy through the proxy by ``tests/support/kernel_client.py``.
"""

import json
import os
import subprocess
import time

import pytest

from tests.support.realhub import (
    CULLER_SCOPES,
    KERNEL_CLIENT,
    SINGLEUSER_BIN,
    singleuser_installed,
    unique_names,
)

pytestmark = pytest.mark.realhub

HOUR = 3600


def start_with_options(hub, user, options):
    """Start the default server with ``user_options`` (the body of the start request)."""
    answer = hub.admin_api("POST", hub.server_path(user), json=options)
    assert answer.status_code in (201, 202), answer.text
    return hub.wait_server(user, ready=True, timeout=60)


def profiled_users(hub, prefix):
    gpu, cpu, plain = unique_names(prefix, 3)
    hub.create_users([gpu, cpu, plain])
    start_with_options(hub, gpu, {"profile": "gpu-a100"})
    start_with_options(hub, cpu, {"profile": "cpu-small"})
    start_with_options(hub, plain, {})
    for user in (gpu, cpu, plain):
        hub.backdate(user, "", last_activity=1800, started=1800)
    return gpu, cpu, plain


def gpu_rule(tmp_path):
    path = tmp_path / "culler.ini"
    path.write_text("[culler]\ntimeout = 1h\n[rule:gpu]\nprofiles = gpu-*\ntimeout = 900\n")
    return "--config=%s" % path


def test_realhub_profile_rule_stops_the_gpu_server_and_keeps_the_others(realhub, tmp_path):
    gpu, cpu, plain = profiled_users(realhub, "prof")
    assert realhub.server_model(gpu)["user_options"] == {"profile": "gpu-a100"}
    result = realhub.run_culler("culler", gpu_rule(tmp_path), "--once")
    assert result.returncode == 0, result.stderr
    assert not realhub.server_running(gpu)
    assert realhub.server_running(cpu) and realhub.server_running(plain)
    (line,) = [line for line in result.stderr.splitlines() if " event=stop user=%s " % gpu in line]
    assert "reason=idle" in line and "rule=gpu" in line and "idle_s=18" in line


def test_realhub_profile_rule_without_read_servers_is_refused_up_front(realhub, tmp_path):
    # Without read:servers the hub shows no user_options (and no named servers): the preflight
    # refuses such a token before anything is judged.
    gpu, _, _ = profiled_users(realhub, "noprof")
    result = realhub.run_culler("culler-no-read-servers", gpu_rule(tmp_path), "--once")
    assert result.returncode == 78  # the preflight refuses: read:servers is required anyway
    assert "read:servers" in result.stderr and realhub.server_running(gpu)


def test_realhub_dry_run_json_plan(realhub, tmp_path):
    gpu, cpu, plain = profiled_users(realhub, "plan")
    result = realhub.run_culler("culler", gpu_rule(tmp_path), "--timeout=20m", "--once",
                                "--dry-run", "--output=json")
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    summary = objects[-1]
    assert summary["type"] == "summary" and summary["complete"] is True
    ours = {item["user"]: item for item in objects[:-1] if item["user"] in (gpu, cpu, plain)}
    assert set(ours) == {gpu, cpu, plain}  # the gpu rule's 900 s, the global 20 min
    assert ours[gpu]["profile"] == "gpu-a100" and ours[gpu]["rule"] == "gpu"
    assert ours[cpu]["profile"] == "cpu-small" and ours[plain]["profile"] is None
    for item in ours.values():
        assert (item["type"], item["action"], item["server"], item["reason"]) == (
            "action", "stop", "", "idle")
        assert 1790 <= item["idle_s"] <= 1900 and 1790 <= item["age_s"] <= 1900
        assert item["held_back"] is False
    assert all(realhub.server_running(user) for user in (gpu, cpu, plain))  # nothing changed


# --- kernels of real single-user servers -----------------------------------------------------

KERNEL_SERVICES = [{"name": "culler", "scopes": CULLER_SCOPES + ["tokens"]}]
TIMEOUT_S = 3  # the servers' own activity must be older than this: a short wait, not an hour


def require_singleuser():
    ok, why = singleuser_installed()
    if ok:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(why + " (CI=true: not skipping)", pytrace=False)
    pytest.skip(why)


def run_kernel(hub, user, code, until):
    env = dict(os.environ, REALHUB_KERNEL_TOKEN=hub.admin_token)
    result = subprocess.run(
        [str(SINGLEUSER_BIN.parent / "python"), str(KERNEL_CLIENT),
         "%s/user/%s/" % (hub.public_url, user), code, "--until", until, "--timeout", "60"],
        env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]


def three_servers(hub, users):
    """Start the servers that are not running; the first gets a busy kernel, the second an
    idle one, the third none. All look idle at the hub (2 h); returns when the servers' own
    last activity is older than TIMEOUT_S."""
    busy, idle, bare = users
    for user in users:
        if not hub.server_running(user):
            assert hub.admin_api("POST", hub.server_path(user), json={}).status_code in (201,
                                                                                       202)
    for user in users:
        hub.wait_server(user, ready=True, timeout=60)
    status = hub.session.get(hub.public_url + "/user/%s/api/kernels" % busy,
                             params={"no_track_activity": "1"}, timeout=10).json()
    if not any(kernel["execution_state"] == "busy" for kernel in status):
        run_kernel(hub, busy, "import time; time.sleep(600)", "busy")
    run_kernel(hub, idle, "1 + 1", "idle")
    set_up = time.monotonic()
    for user in users:
        hub.backdate(user, "", last_activity=2 * HOUR, started=2 * HOUR)
    time.sleep(max(0.0, set_up + TIMEOUT_S + 1 - time.monotonic()))  # the servers' own clock


def culler(hub, *args):
    result = hub.run_culler("culler", "--timeout=%d" % TIMEOUT_S, "--once",
                            "--server-url-base=" + hub.public_url, *args, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def wait_stopped(hub, *users):
    for user in users:
        hub.wait_server(user, ready=False, timeout=30)


def test_realhub_check_kernels_keeps_only_the_server_whose_kernel_is_busy(fresh_realhub):
    require_singleuser()
    # starts answer 202 at once (the servers come up side by side); a stop that waits for a
    # busy kernel to end answers 204 within 10 s
    hub = fresh_realhub(KERNEL_SERVICES, spawner="process", slow_spawn_timeout=0.1,
                        slow_stop_timeout=10)
    users = busy, idle, bare = unique_names("kern", 3)
    hub.create_users(list(users))
    try:
        # max-age wins: older than --max-age, all three go, busy or not, nothing is asked
        three_servers(hub, users)
        result = culler(hub, "--check-kernels", "--max-age=1h")
        wait_stopped(hub, *users)
        assert "kernel-busy" not in result.stderr and "kernel-check" not in result.stderr

        # --check-kernels: the busy one is kept on its own word, the two others go
        three_servers(hub, users)
        result = culler(hub, "--check-kernels")
        wait_stopped(hub, idle, bare)
        assert hub.server_running(busy)
        assert "keep user=%s server=- reason=kernel-busy" % busy in result.stderr
        assert "kernel-check-failed" not in result.stderr

        # without it, the hub's word alone: all three go
        three_servers(hub, users)
        result = culler(hub)
        wait_stopped(hub, *users)
        assert result.stderr.count(" event=stop user=kern-") == 3
    finally:
        hub.stop()
    assert hub.leftover_pids() == []
