"""``python -m jupyterhub_idle_culler``: the module name hub configurations use runs this culler,
with every option spelling the command line accepts (thinness: tests/unit/test_layering.py)."""

import subprocess
import sys

import pytest

from idle_culler_daemon.options import OPTIONS
from tests.end_to_end.conftest import SCRIPT, culler_env
from tests.support.fakehub import active_user, idle_user

MODULE = [sys.executable, "-m", "jupyterhub_idle_culler"]


def run_module(*args, module=MODULE, token=None, timeout=30):
    return subprocess.run(module + list(args), env=culler_env(token), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def decisions(stderr):
    """The decision lines of a run, without timestamps (``time=... level=... event=...``)."""
    return sorted(line.split(" ", 2)[2] for line in stderr.splitlines()
                  if " event=would-stop " in line or " event=would-delete " in line)


def option_values(tmp_path, fake_hub):
    """A harmless value for every option that takes one (the run stays a dry run)."""
    token_file = tmp_path / "token"
    token_file.write_text(fake_hub.token + "\n")
    config_file = tmp_path / "culler.ini"
    config_file.write_text("[culler]\ntimeout = 3600\n")
    certs = tmp_path / "certs"
    certs.mkdir()
    header_file = tmp_path / "notify-header"
    header_file.write_text("Authorization: Bearer a-dry-run-sends-nothing\n")
    return {
        "url": fake_hub.api_url, "timeout": "3600", "cull_every": "600", "max_age": "0",
        "cull_users": "true", "cull_admin_users": "false", "remove_named_servers": "true",
        "cull_default_servers": "true", "cull_named_servers": "true", "concurrency": "4",
        "api_page_size": "50", "ssl_enabled": "false", "internal_certs_location": str(certs),
        "request_timeout": "20", "api_token_file": str(token_file), "once": "true",
        "dry_run": "true", "exclude_users": "nobody-*", "exclude_groups": "nogroup",
        "rule": "late:users=late-*,timeout=7200", "metrics_port": "0",
        "metrics_address": "127.0.0.1", "metrics_file": str(tmp_path / "culler.prom"),
        "log_level": "INFO", "log_format": "text", "config": str(config_file),
        "check_kernels": "false", "server_url_base": fake_hub.url, "max_stops_per_pass": "0",
        "max_stop_fraction": "1", "output": "table",
        "notify_url": "http://127.0.0.1:9/never-used", "notify_header_file": str(header_file),
        "warn_before": "900",
    }


SPELLINGS = {
    "dashed": lambda name, value: "--%s=%s" % (name.replace("_", "-"), value),
    "underscored (1.x)": lambda name, value: "--%s=%s" % (name, value),
    "traitlets (2.0)": lambda name, value: "--IdleCuller.%s=%s" % (name, value),
}


def test_module_name_answers_version_like_the_console_script():
    module = run_module("--version")
    script = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True,
                            timeout=30)
    assert module.returncode == script.returncode == 0, module.stderr
    assert module.stdout == script.stdout and module.stdout.startswith("jupyterhub-idle-culler ")


def test_module_name_usage_error_and_missing_token_keep_their_exit_codes():
    assert run_module("--cull-evry=5").returncode == 2
    result = run_module("--once")
    assert result.returncode == 78 and "JUPYTERHUB_API_TOKEN" in result.stderr


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_module_name_accepts_every_option_in_every_spelling(fake_hub, tmp_path, spelling):
    fake_hub.add(idle_user("ann", 7200), active_user("bob"))
    values = option_values(tmp_path, fake_hub)
    settable = [option for option in OPTIONS if not option.cli_only]
    assert sorted(values) == sorted(option.name for option in settable)  # none forgotten
    args = [SPELLINGS[spelling](option.name, values[option.name]) for option in settable]
    result = run_module(*args)
    assert result.returncode == 0, result.stderr
    assert "would-stop user=ann server=- reason=idle" in result.stderr
    assert "bob" not in "".join(decisions(result.stderr))
    assert fake_hub.stopped_servers() == []


def test_module_name_bare_flags_and_the_logging_alias(fake_hub):
    fake_hub.add(idle_user("ann", 7200), active_user("bob"))
    args = ["--url=" + fake_hub.api_url, "--timeout=3600", "--cull_users", "--once",
            "--dry-run", "--remove-named-servers", "--logging=debug"]
    ours = run_module(*args, token=fake_hub.token)
    other = run_module(*args, module=[sys.executable, "-m", "idle_culler_daemon"],
                       token=fake_hub.token)
    assert ours.returncode == other.returncode == 0, ours.stderr
    assert "level=DEBUG " in ours.stderr
    assert decisions(ours.stderr) == decisions(other.stderr) != []
