"""The command line end to end: exit codes, the pass, dry-run, signals, and the token's secrecy."""

import signal
import subprocess
import sys
import time

import pytest

from tests.end_to_end.conftest import SCRIPT, culler_env
from tests.support.fakehub import active_user, idle_user, inactive_user

COMMAND_LINES = [
    "--url={url} --timeout=3600 --cull-every=600 --concurrency=10 --cull-users "
    "--remove-named-servers --cull-admin-users=false --max-age=0",
    "--timeout=600 --cull-every=60 --concurrency=5 --max-age=0 --cull-users",
    "--cull-users=True --cull-named-servers=false --api-page-size=200",
    "--cull_users --cull-every=0 --logging=debug",
    "--IdleCuller.timeout=3600 --IdleCuller.cull_users=True",
]


def terminate(process):
    """SIGTERM, and the exit code within 10 s; a process still there after that is killed."""
    try:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_installed_script_and_module_both_answer_version(run_culler):
    assert SCRIPT.exists(), "the console script is not installed in this environment"
    installed = run_culler("--version", script=True)
    module = run_culler("--version")
    assert installed.returncode == module.returncode == 0
    assert installed.stdout == module.stdout and installed.stdout.startswith(
        "jupyterhub-idle-culler ")


def test_cli_help_lists_every_option(run_culler):
    from idle_culler_daemon.options import OPTIONS
    result = run_culler("--help")
    assert result.returncode == 0
    for option in OPTIONS:
        assert option.flag in result.stdout


def test_cli_help_groups_the_options_and_points_to_the_man_page(run_culler):
    result = run_culler("--help")
    titles = ["hub connection:", "what to cull:", "rules:", "run mode:", "output:", "metrics:"]
    lines = result.stdout.splitlines()
    assert [line for line in lines if line in titles] == titles
    assert "man jupyterhub-idle-culler" in " ".join(result.stdout.split())


def test_cli_unknown_option_is_exit_2_naming_it(run_culler):
    result = run_culler("--cull-evry=5")
    assert result.returncode == 2 and "--cull-evry=5" in result.stderr
    assert "did you mean --cull-every?" in result.stderr


def test_cli_missing_token_exits_78_naming_the_three_places(run_culler):
    result = run_culler("--once")
    assert result.returncode == 78
    for place in ("--api-token-file", "CREDENTIALS_DIRECTORY", "JUPYTERHUB_API_TOKEN"):
        assert place in result.stderr


def test_cli_bad_value_exits_78_before_contacting_the_hub(run_culler, fake_hub):
    result = run_culler("--url=" + fake_hub.api_url, "--timeout=soon", "--once",
                        token=fake_hub.token)
    assert result.returncode == 78 and "--timeout" in result.stderr and "soon" in result.stderr
    assert fake_hub.records() == []


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_cli_accepts_generated_command_lines(run_culler, fake_hub, line):
    fake_hub.add(idle_user("ann", 7200), active_user("bob"))
    args = line.format(url=fake_hub.api_url).split()
    if "--url" not in line:
        args.append("--url=" + fake_hub.api_url)
    result = run_culler(*args, "--once", "--dry-run", token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    assert "would-stop user=ann" in result.stderr and fake_hub.stopped_servers() == []


def test_cli_once_stops_idle_servers_and_deletes_idle_users(run_culler, fake_hub):
    fake_hub.add(idle_user("ann", 7200), active_user("bob"), inactive_user("cy", 7200))
    result = run_culler("--url=" + fake_hub.api_url, "--timeout=3600", "--cull-users", "--once",
                        token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    assert fake_hub.stopped_servers() == [("ann", "")]
    assert sorted(fake_hub.deleted_users()) == ["ann", "cy"]
    assert "event=stop user=ann server=- reason=idle" in result.stderr
    assert "event=pass-done users=3" in result.stderr


def test_cli_once_dry_run_prints_a_table_and_changes_nothing(run_culler, fake_hub):
    fake_hub.add(idle_user("ann", 7200), idle_user("bob", 9000, server_name="lab"))
    result = run_culler("--url=" + fake_hub.api_url, "--timeout=3600", "--cull-users", "--once",
                        "--dry-run", token=fake_hub.token)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ACTION", "USER", "SERVER", "REASON", "IDLE", "FOR", "AGE",
                                "RULE"]
    assert any(line.split()[:4] == ["would-stop", "ann", "-", "idle"] for line in lines)
    assert any(line.split()[:4] == ["would-stop", "bob", "lab", "idle"] for line in lines)
    assert any(line.split()[:2] == ["would-delete", "ann"] for line in lines)
    assert fake_hub.stopped_servers() == [] and fake_hub.deleted_users() == []
    assert [r.method for r in fake_hub.records()].count("DELETE") == 0


def test_cli_once_unreachable_hub_exits_75(run_culler, unused_port):
    result = run_culler("--url=http://127.0.0.1:%d/hub/api" % unused_port, "--once",
                        "--request-timeout=1", token="t0k3n-abcdef")
    assert result.returncode == 75
    assert "event=pass-aborted reason=hub-error" in result.stderr


def test_cli_unreachable_hub_one_line_of_ours_per_attempt_and_no_promise_with_once(
        run_culler, unused_port):
    result = run_culler("--url=http://127.0.0.1:%d/hub/api" % unused_port, "--once",
                        "--request-timeout=1", token="t0k3n-abcdef")
    attempts = [line for line in result.stderr.splitlines() if "hub-attempt-failed" in line]
    assert len(attempts) == 4, result.stderr
    for number, line in enumerate(attempts, 1):
        assert 'request="GET /hub/api/"' in line and "hub=http://127.0.0.1:%d" % unused_port \
            in line and "attempt=%d attempts=4" % number in line, line
    assert [line.split("retry_in_s=")[1].split()[0] for line in attempts] == \
        ["0", "1.0", "2.0", "-"]
    assert "Retrying" not in result.stderr and "connectionpool" not in result.stderr
    aborted = [line for line in result.stderr.splitlines() if "pass-aborted" in line]
    assert aborted and "next pass" not in aborted[0] and "no other pass (--once)" in aborted[0]


@pytest.mark.parametrize("path,fault,hint", [
    ("", None, "did you mean --url=http://127.0.0.1:{port}/hub/api?"),
    ("/hub", None, "did you mean --url=http://127.0.0.1:{port}/hub/api?"),
    ("/hub/api", "html", "text/html"),
    ("/hub/api", 404, "GET / answered 404"),
])
def test_cli_url_that_is_not_the_api_exits_78_with_a_hint(run_culler, fake_hub, path, fault,
                                                          hint):
    if fault == "html":
        fake_hub.faults.add("GET /", "status", count=None, status=200,
                            body="<!DOCTYPE html><html></html>", content_type="text/html")
    elif fault:
        fake_hub.faults.add("GET /", fault, count=None)
    url = "http://127.0.0.1:%d%s" % (fake_hub.port, path)
    result = run_culler("--url=" + url, "--once", token=fake_hub.token)
    assert result.returncode == 78, result.stderr
    assert "does not look like the JupyterHub API" in result.stderr
    assert hint.format(port=fake_hub.port) in result.stderr
    assert len(fake_hub.records()) == 1  # asked once: no retries, no second pass


def test_cli_dry_run_with_a_read_only_token_warns_about_the_write_scopes(run_culler,
                                                                        fake_hub):
    fake_hub.scopes = ["list:users", "read:users", "read:users:activity", "read:servers"]
    fake_hub.add(idle_user("ann", 7200), inactive_user("cy", 7200))
    result = run_culler("--url=" + fake_hub.api_url, "--timeout=3600", "--cull-users", "--once",
                        "--dry-run", token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "preflight-scope" in line]
    assert len(warnings) == 2 and "missing=delete:servers" in warnings[0]
    assert "missing=\"delete:users or admin:users\"" in warnings[1]
    done = [line for line in result.stderr.splitlines() if "event=pass-done" in line][0]
    assert "dry_run=True would_stop=1 would_delete=2" in done
    without = run_culler("--url=" + fake_hub.api_url, "--cull-users", "--once",
                         token=fake_hub.token)
    assert without.returncode == 78 and "delete:servers" in without.stderr


def test_cli_show_config_prints_each_source_and_never_the_token(run_culler, tmp_path):
    config = tmp_path / "c.ini"
    config.write_text("[culler]\ntimeout = 900\n")
    env = culler_env("t0k3n-show-me-not", JUPYTERHUB_IDLE_CULLER_CONCURRENCY="4",
                     JUPYTERHUB_IDLE_CULLER_TIMOUT="5")
    result = run_culler("--config=%s" % config, "--cull-users", "--show-config", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "timeout = 900 ; config file %s" % config in lines
    assert "concurrency = 4 ; environment JUPYTERHUB_IDLE_CULLER_CONCURRENCY" in lines
    assert "cull_users = true ; command line" in lines
    assert "# api token: <redacted> ($JUPYTERHUB_API_TOKEN)" in lines
    assert any("did you mean JUPYTERHUB_IDLE_CULLER_TIMEOUT?" in line for line in lines)
    assert "t0k3n-show-me-not" not in result.stdout + result.stderr


def test_cli_unknown_environment_variable_is_a_warning_in_the_log(run_culler, fake_hub):
    env = culler_env(fake_hub.token, JUPYTERHUB_IDLE_CULLER_CULL_USER="true")
    result = run_culler("--url=" + fake_hub.api_url, "--once", env=env)
    assert result.returncode == 0
    warning = [line for line in result.stderr.splitlines() if "config-warning" in line]
    assert warning and "level=WARNING" in warning[0]
    assert "did you mean JUPYTERHUB_IDLE_CULLER_CULL_USERS?" in warning[0]


def test_cli_reads_the_reference_config_file_in_its_working_directory(run_culler, fake_hub,
                                                                     tmp_path):
    # The reference's traitlets file, as an operator of jupyterhub-idle-culler 2.0 has it.
    (tmp_path / "idle_culler_config.py").write_text(
        "c = get_config()  # noqa\nc.IdleCuller.timeout = 2 * 60 * 60\n"
        "c.IdleCuller.cull_users = True\nc.Application.log_level = 'WARN'\n"
        "c.IdleCuller.url = None\n", encoding="utf-8")
    fake_hub.add(idle_user("ann", 3 * 3600), idle_user("bob", 3600))
    env = culler_env(fake_hub.token, JUPYTERHUB_API_URL=fake_hub.api_url)
    result = run_culler("--once", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert fake_hub.deleted_users() == ["ann"] and "level=INFO" not in result.stderr


def test_cli_missing_scope_exits_78_naming_it(run_culler, fake_hub):
    fake_hub.scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    fake_hub.add(idle_user("ann", 7200))
    result = run_culler("--url=" + fake_hub.api_url, "--cull-users", "--once",
                        token=fake_hub.token)
    assert result.returncode == 78
    assert "delete:users or admin:users" in result.stderr
    assert fake_hub.stopped_servers() == []


def test_cli_failing_pass_never_prints_the_token(run_culler, fake_hub):
    fake_hub.faults.add("GET /users", 500, count=None,
                        message="invalid token %s for request" % fake_hub.token)
    result = run_culler("--url=" + fake_hub.api_url, "--once", "--log-level=DEBUG",
                        token=fake_hub.token)
    assert result.returncode == 75
    assert fake_hub.token not in result.stderr + result.stdout
    assert "<redacted>" in result.stderr


def test_cli_json_logs_every_line_parses(run_culler, fake_hub):
    import json
    fake_hub.add(idle_user("ann", 7200), active_user("bob"))
    result = run_culler("--url=" + fake_hub.api_url, "--once", "--log-format=json",
                        "--log-level=DEBUG", token=fake_hub.token)
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert result.returncode == 0 and records
    stops = [r for r in records if r["event"] == "stop"]
    assert stops and {"time", "level", "user", "server", "reason", "rule", "idle_s",
                      "age_s"} <= set(stops[0])


def test_cli_daemon_survives_an_unreachable_hub_and_stops_on_sigterm(unused_port):
    process = subprocess.Popen(
        [sys.executable, "-m", "idle_culler_daemon", "--url=http://127.0.0.1:%d/hub/api"
         % unused_port, "--cull-every=1", "--timeout=60", "--request-timeout=1"],
        env=culler_env("t0k3n-abcdef"), stderr=subprocess.PIPE, text=True)
    try:
        seen = 0
        deadline = time.monotonic() + 20
        while seen < 2 and time.monotonic() < deadline:
            line = process.stderr.readline()
            seen += "pass-aborted" in line
        running = process.poll() is None
    finally:
        code = terminate(process)
    assert seen == 2 and running  # two failed passes, still running
    assert code == 0


def test_cli_token_refused_by_the_hub_exits_78(run_culler, fake_hub):
    result = run_culler("--url=" + fake_hub.api_url, "--once", token="not-the-token")
    assert result.returncode == 78 and "refused the API token" in result.stderr
    assert "not-the-token" not in result.stderr


@pytest.mark.parametrize("token", ["abcd1234\nsecret99", "\ufeffabcd1234secret99",
                                   "abcd1234\x1bsecret99", "abcd1234\u20acsecret99"])
def test_cli_token_that_cannot_be_sent_exits_78_without_a_traceback_or_the_token(
        run_culler, fake_hub, tmp_path, token):
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n", encoding="utf-8")
    result = run_culler("--url=" + fake_hub.api_url, "--once",
                        "--api-token-file=%s" % token_file)
    output = result.stderr + result.stdout
    assert result.returncode == 78 and "Traceback" not in output
    assert "--api-token-file" in result.stderr
    assert "abcd1234" not in output and "secret99" not in output
    assert fake_hub.records() == []


def test_cli_credentials_in_the_url_never_reach_a_line(run_culler, fake_hub):
    fake_hub.add(idle_user("ann", 7200))
    url = fake_hub.api_url.replace("http://", "http://ops:hunter2secret@")
    result = run_culler("--url=" + url, "--once", "--log-level=DEBUG", token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout
    assert fake_hub.stopped_servers() == [("ann", "")]


@pytest.mark.parametrize("content", [b"[culler]\ntimeout = 600 ; caf\xe9\n",
                                     "[culler]\ntimeout = 600\n".encode("utf-16")])
def test_cli_config_file_that_is_not_utf8_exits_78_naming_it(run_culler, fake_hub, tmp_path,
                                                             content):
    config = tmp_path / "culler.ini"
    config.write_bytes(content)
    result = run_culler("--url=" + fake_hub.api_url, "--once", "--config=%s" % config,
                        token=fake_hub.token)
    assert result.returncode == 78 and "Traceback" not in result.stderr
    assert str(config) in result.stderr and fake_hub.records() == []


def test_cli_reload_with_a_new_token_keeps_it_out_of_the_log(fake_hub, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(fake_hub.token)
    new_token = fake_hub.add_token()
    # The first listing works; every later one fails with a message quoting the new token.
    fake_hub.faults.add("GET /users", 500, count=None, skip=1,
                        message="invalid token %s for request" % new_token)
    env = culler_env(None, JUPYTERHUB_IDLE_CULLER_API_TOKEN_FILE=str(token_file))
    process = subprocess.Popen(
        [sys.executable, "-m", "idle_culler_daemon", "--url=" + fake_hub.api_url,
         "--cull-every=1"], env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("pass-done" in line for line in lines):
            lines.append(process.stderr.readline())
        token_file.write_text(new_token + "\n")
        process.send_signal(signal.SIGHUP)
        while time.monotonic() < deadline and not any("pass-aborted" in line for line in lines):
            lines.append(process.stderr.readline())
    finally:
        code = terminate(process)
    assert code == 0
    output = "".join(lines) + process.stderr.read()
    assert "event=reload-changed option=credential detail=replaced" in output
    aborted = [line for line in output.splitlines() if "event=pass-aborted" in line]
    assert aborted and "invalid token <redacted> for request" in aborted[0]
    assert new_token not in output and fake_hub.token not in output


# --- --check-config: what systemctl reload runs first (docs/behaviour.md#check-config) -------

def test_cli_check_config_good_exits_0_and_asks_the_hub_nothing(run_culler, fake_hub, tmp_path):
    config = tmp_path / "c.ini"
    config.write_text("[culler]\ntimeout = 900\n[rule:gpu]\nserver_names = gpu-*\n"
                      "timeout = 15m\n")
    result = run_culler("--url=" + fake_hub.api_url, "--config=%s" % config,
                        "--check-config", token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    assert "the configuration is good" in result.stdout and str(config) in result.stdout
    assert fake_hub.records() == []


@pytest.mark.parametrize("conf,error", [
    ("[culler]\ntimeout = soon\n", "--timeout"),
    ("[culler]\ntimout = 60\n", "did you mean timeout?"),
    ("[rule:x]\nusers = *\nbogus = 1\n", "'bogus'"),
])
def test_cli_check_config_refuses_what_a_start_refuses_with_the_same_message(
        run_culler, fake_hub, tmp_path, conf, error):
    config = tmp_path / "c.ini"
    config.write_text(conf)
    args = ["--url=" + fake_hub.api_url, "--config=%s" % config]
    checked = run_culler(*args, "--check-config", token=fake_hub.token)
    started = run_culler(*args, "--once", token=fake_hub.token)
    assert checked.returncode == started.returncode == 78
    assert error in checked.stderr and checked.stderr == started.stderr
    assert fake_hub.records() == []


def test_cli_check_config_without_a_token_exits_78(run_culler, fake_hub):
    result = run_culler("--url=" + fake_hub.api_url, "--check-config")
    assert result.returncode == 78 and "no API token" in result.stderr


def test_cli_check_config_preflight_asks_the_hub_for_the_scopes(run_culler, fake_hub):
    args = ["--url=" + fake_hub.api_url, "--cull-users", "--check-config", "--preflight"]
    good = run_culler(*args, token=fake_hub.token)
    assert good.returncode == 0, good.stderr
    assert "preflight passed" in good.stdout
    assert fake_hub.records(route="self")
    fake_hub.scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    lacking = run_culler(*args, token=fake_hub.token)
    assert lacking.returncode == 78 and "delete:users or admin:users" in lacking.stderr
    assert fake_hub.stopped_servers() == [] and fake_hub.deleted_users() == []


def test_cli_check_config_preflight_on_an_unreachable_hub_exits_75(run_culler, unused_port):
    result = run_culler("--url=http://127.0.0.1:%d/hub/api" % unused_port, "--check-config",
                        "--preflight", "--request-timeout=1", token="t0k3n-abcdef", timeout=60)
    assert result.returncode == 75, result.stderr
    assert "the hub could not be asked" in result.stderr


def test_cli_preflight_alone_is_a_usage_error(run_culler):
    result = run_culler("--preflight", token="t0k3n-abcdef")
    assert result.returncode == 2 and "--check-config" in result.stderr


# --- rules on what users choose (docs/behaviour.md#rules-on-what-users-choose) ---------------

def test_cli_show_config_with_a_user_options_rule_exits_0(run_culler):
    # It crashed with a TypeError (exit 1) on any rule with user_options.
    result = run_culler("--rule", "vip:user_options=tier=vip,cull=false", "--show-config",
                        token="t0k3n-abcdef")
    assert result.returncode == 0, result.stderr
    assert "# rule vip: user_options=tier=vip, cull=false" in result.stdout.splitlines()


def test_cli_start_warns_once_per_rule_that_users_can_choose_to_cull_less(run_culler, fake_hub):
    result = run_culler("--url=" + fake_hub.api_url, "--once", "--timeout=1h",
                        "--rule", "vip:user_options=tier=vip,cull=false",
                        "--rule", "gpu:profiles=gpu-*,timeout=15m",
                        "--rule", "long:profiles=big-*,timeout=1d", token=fake_hub.token)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "rule-chosen-by-users" in line]
    assert len(warnings) == 2 and "level=WARNING" in warnings[0]
    assert 'rule=vip relaxes="cull=false"' in warnings[0]
    assert 'rule=long relaxes="timeout=86400"' in warnings[1]
    assert all("KubeSpawner" in line for line in warnings)
