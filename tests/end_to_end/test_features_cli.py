"""The decisions beyond the reference, from the command line: durations, the kernel check's
refusal without a proxy URL, the mass-cull guard's exit code and STATUS=, the JSON plan."""

import json
import subprocess
import sys

from tests.end_to_end.conftest import culler_env
from tests.notify_listener import NotifyListener
from tests.support.fakehub import active_user, crowd, idle_user


def test_cli_durations_are_read_and_logs_keep_seconds(run_culler, fake_hub):
    fake_hub.add(idle_user("ann", 7200), active_user("bob"))
    result = run_culler("--url=" + fake_hub.api_url, "--timeout=1h30m", "--cull-every=2m",
                        "--once", token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    assert "timeout=5400 cull_every=120" in result.stderr
    assert "stop user=ann server=- reason=idle idle_s=72" in result.stderr
    assert fake_hub.stopped_servers() == [("ann", "")]


def test_cli_bad_duration_exits_78_naming_the_option(run_culler, fake_hub):
    result = run_culler("--url=" + fake_hub.api_url, "--max-age=3 weeks", "--once",
                        token=fake_hub.token)
    assert result.returncode == 78 and "--max-age" in result.stderr
    assert "1h30m" in result.stderr and fake_hub.records() == []


def test_cli_check_kernels_without_the_proxy_url_exits_78(run_culler, fake_hub):
    result = run_culler("--url=" + fake_hub.api_url, "--check-kernels", "--once",
                        token=fake_hub.token)
    assert result.returncode == 78 and "--server-url-base" in result.stderr
    assert fake_hub.records() == []


def test_cli_check_kernels_takes_the_proxy_url_a_managed_service_is_given(run_culler,
                                                                         fake_hub):
    fake_hub.add(idle_user("busy", 7200), idle_user("idle", 7200))
    fake_hub.update_server("busy", "", kernels=("busy",))
    env = culler_env(fake_hub.token, JUPYTERHUB_PUBLIC_HUB_URL=fake_hub.url + "/hub/",
                     JUPYTERHUB_API_URL=fake_hub.api_url)
    result = run_culler("--check-kernels", "--timeout=1h", "--once", env=env)
    assert result.returncode == 0, result.stderr
    assert fake_hub.stopped_servers() == [("idle", "")]
    assert "keep user=busy server=- reason=kernel-busy" in result.stderr


def test_cli_check_kernels_with_a_token_lacking_tokens_exits_78(run_culler, fake_hub):
    # access:servers is of no use: the culler's token never goes to a server
    fake_hub.scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers",
                       "access:servers"]
    result = run_culler("--url=" + fake_hub.api_url, "--check-kernels", "--once",
                        "--server-url-base=" + fake_hub.url, token=fake_hub.token)
    assert result.returncode == 78 and "lacks the scope tokens" in result.stderr


def test_cli_guard_trip_exits_75_and_says_so_in_the_log_and_status(fake_hub, tmp_path):
    fake_hub.add(*crowd(100, 90))
    with NotifyListener.bind_path(tmp_path) as listener:
        result = subprocess.run(
            [sys.executable, "-m", "idle_culler_daemon", "--url=" + fake_hub.api_url,
             "--timeout=1h", "--max-stop-fraction=0.5", "--once"],
            env=culler_env(fake_hub.token, NOTIFY_SOCKET=listener.notify_socket),
            capture_output=True, text=True, timeout=60)
        statuses = [m.get("STATUS") for m in listener.drain() if m.get("STATUS")]
    assert result.returncode == 75
    (error,) = [line for line in result.stderr.splitlines() if "mass-cull-guard" in line]
    assert "level=ERROR " in error and "share=90/100" in error
    assert any(status.startswith("mass-cull guard: would stop 90 of 100") for status in statuses)
    assert fake_hub.stopped_servers() == []


def test_cli_dry_run_json_plan_parses_and_shows_the_whole_plan(run_culler, fake_hub):
    fake_hub.add(*crowd(10, 6))
    fake_hub.update_server("u000", "", user_options={"profile": "gpu-a100"})
    result = run_culler("--url=" + fake_hub.api_url, "--timeout=1h", "--once", "--dry-run",
                        "--output=json", "--max-stops-per-pass=2", token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    actions, summary = objects[:-1], objects[-1]
    assert len(actions) == 6 and {a["action"] for a in actions} == {"stop"}
    assert sorted(a["user"] for a in actions if not a["held_back"]) == ["u004", "u005"]
    assert [a["profile"] for a in actions if a["user"] == "u000"] == ["gpu-a100"]
    assert all(isinstance(a["idle_s"], int) and a["rule"] == "default" for a in actions)
    assert summary["type"] == "summary" and (summary["stop"], summary["held_back"]) == (2, 4)
    assert fake_hub.stopped_servers() == []


def test_cli_dry_run_json_plan_stays_one_object_per_line_whatever_users_chose(run_culler,
                                                                               fake_hub):
    # A lone surrogate in a profile made the plan's print die (UnicodeEncodeError, exit 1,
    # nothing on stdout); U+2028, U+2029 and U+0085 in names cut lines for splitlines().
    names = ["sep\u2028arator", "para\u2029graph", "nel\u0085line"]
    fake_hub.add(*[idle_user(name, 7200) for name in names])
    fake_hub.update_server(names[0], "", user_options={"profile": "sur\ud800rogate"})
    result = run_culler("--url=" + fake_hub.api_url, "--timeout=1h", "--once", "--dry-run",
                        "--output=json", token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(names) + 1
    actions = [json.loads(line) for line in lines][:-1]
    assert sorted(a["user"] for a in actions) == sorted(names)
    assert [a["profile"] for a in actions if a["user"] == names[0]] == ["sur\ud800rogate"]
