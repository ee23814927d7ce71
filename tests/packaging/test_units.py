"""The systemd units in packaging/systemd/: syntax, sandbox score, and what they promise.

The same checks as .ci/check-units.sh, under pytest. The systemd-analyze tests skip when
the tool is absent, except under CI (CI=true), where a missing tool is a failure.
"""

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from idle_culler_daemon import config, options
from idle_culler_daemon.hub import RetryPolicy

REPO = Path(__file__).resolve().parents[2]
UNITS_DIR = REPO / "packaging" / "systemd"
SERVICE = "jupyterhub-idle-culler.service"
TEMPLATE = "jupyterhub-idle-culler@.service"
ONESHOT = "jupyterhub-idle-culler-oneshot.service"
TIMER = "jupyterhub-idle-culler-oneshot.timer"
UNITS = (SERVICE, TEMPLATE, ONESHOT, TIMER)
SERVICES = (SERVICE, TEMPLATE, ONESHOT)
DAEMONS = (SERVICE, TEMPLATE)
SECURITY_LIMIT = 1.5
# Variables the daemon reads besides JUPYTERHUB_IDLE_CULLER_*, documented in the example.
HUB_VARIABLES = {"JUPYTERHUB_API_URL", "JUPYTERHUB_REQUEST_TIMEOUT", "JUPYTERHUB_PUBLIC_HUB_URL",
                 "JUPYTERHUB_HOST"}


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing, and CI=true forbids skipping")
        pytest.skip("systemd-analyze is not installed")
    return path


def settings(unit: str):
    """The unit's (section, key, value) lines in order; repeated keys are kept."""
    section, lines = None, []
    for raw in (UNITS_DIR / unit).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        lines.append((section, key.strip(), value.strip()))
    return lines


def values(unit: str, key: str, section: str = "Service"):
    return [v for s, k, v in settings(unit) if s == section and k == key]


def seconds(span: str) -> float:
    """A systemd time span as used in our units (``15min``, ``30s``, ``2min 30s``)."""
    factors = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts and "".join(n + u for n, u in parts) == span.replace(" ", ""), span
    return sum(float(number) * factors[unit or "s"] for number, unit in parts)


@pytest.fixture(scope="module")
def verify_root(tmp_path_factory):
    """A --root for verify: the distribution's units, ours, and stand-in commands (ExecStart,
    and ExecReload's /bin/kill in a merged /usr, as on Debian 12 and RHEL 9)."""
    root = tmp_path_factory.mktemp("root")
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(UNITS_DIR / unit, root / "etc/systemd/system" / unit)
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    for command in ("jupyterhub-idle-culler", "kill"):
        binary = root / "usr/bin" / command
        binary.write_text("#!/bin/sh\nexit 0\n")
        binary.chmod(0o755)
    return root


@pytest.mark.parametrize("unit", UNITS + ("jupyterhub-idle-culler@check.service",))
def test_units_verify_prints_nothing(unit, verify_root):
    tool = systemd_analyze()
    if not (Path("/usr/lib/systemd/system") / "sysinit.target").exists():
        pytest.skip("no distribution units to verify against")
    result = subprocess.run(
        [tool, "verify", "--man=no", "--recursive-errors=yes", "--root=%s" % verify_root, unit],
        capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("unit", SERVICES)
def test_units_security_score_is_at_most_limit(unit):
    tool = systemd_analyze()
    result = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(UNITS_DIR / unit)],
        capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert result.returncode == 0 and match, result.stdout + result.stderr
    assert result.stderr == ""  # unknown keys and bad values are reported here
    assert float(match.group(1)) <= SECURITY_LIMIT


def test_units_env_example_keys_are_exactly_the_variables_the_daemon_reads():
    text = (UNITS_DIR / "culler.env.example").read_text(encoding="utf-8")
    keys = re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)
    assert len(keys) == len(set(keys)), "a key is documented twice"
    assert set(keys) == set(options.env_names()) | HUB_VARIABLES


def test_units_exec_start_is_the_console_script():
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg", encoding="utf-8")
    scripts = parser["options.entry_points"]["console_scripts"]
    (name,) = re.findall(r"^\s*([\w-]+)\s*=", scripts, flags=re.MULTILINE)
    for unit in SERVICES:
        (exec_start,) = values(unit, "ExecStart")
        assert exec_start.split()[0] == "/usr/bin/" + name, unit
    assert values(ONESHOT, "ExecStart")[0].split()[1:] == ["--once", "$CULLER_ARGS",
                                                           "--cull-every=300"]
    assert values(TEMPLATE, "ExecStart")[0].split()[1:] == ["$CULLER_ARGS"]
    assert values(SERVICE, "ExecStart")[0].split()[1:] == ["$CULLER_ARGS"]


@pytest.mark.behaviour("reload")
@pytest.mark.parametrize("unit", DAEMONS)
def test_units_daemon_reload_checks_the_configuration_then_sends_sighup(unit):
    # A bad file fails `systemctl reload` (the check exits 78) and the signal is never sent.
    # systemd 252 (Debian 12, RHEL 9) has no Type=notify-reload: ExecReload sends SIGHUP and
    # the daemon itself sends RELOADING=1 + MONOTONIC_USEC=, then READY=1.
    # The check runs as root ("+") with the token file the credential is copied from: a
    # reload's control process cannot read the service's credential under systemd 252.
    token = values(unit, "LoadCredential")[0].split(":", 1)[1]
    assert values(unit, "ExecReload") == [
        "+/usr/bin/jupyterhub-idle-culler --check-config --api-token-file=%s $CULLER_ARGS"
        % token, "/bin/kill -HUP $MAINPID"]
    assert values(unit, "Type") == ["notify"]


@pytest.mark.parametrize("unit", DAEMONS)
def test_units_daemon_is_notify_type_and_stops_restarting_on_config_errors(unit):
    assert values(unit, "Type") == ["notify"] and values(unit, "NotifyAccess") == ["main"]
    assert values(unit, "Restart") == ["on-failure"]
    assert "78" in values(unit, "RestartPreventExitStatus")[0].split()
    assert values(unit, "DynamicUser") == ["yes"]


def test_units_credentials_and_environment_files():
    token = "api-token:/etc/jupyterhub-idle-culler/"
    assert values(SERVICE, "LoadCredential") == [token + "api-token"]
    assert values(ONESHOT, "LoadCredential") == [token + "api-token"]
    assert values(TEMPLATE, "LoadCredential") == [token + "%i.token"]
    shared = "-/etc/jupyterhub-idle-culler/culler.env"
    assert values(SERVICE, "EnvironmentFile") == [shared]
    assert values(ONESHOT, "EnvironmentFile") == [shared]
    # The instance file comes last (wins) and has no "-": without it the start fails.
    assert values(TEMPLATE, "EnvironmentFile") == [shared, "/etc/jupyterhub-idle-culler/%i.env"]


def test_units_template_instances_get_a_dynamic_user_each():
    # Without User=, DynamicUser= names the user after the prefix: all instances (and the
    # plain service) would share one UID, visible to and signallable by each other.
    assert values(TEMPLATE, "User") == ["%p-%i"]
    assert values(SERVICE, "User") == [] and values(ONESHOT, "User") == []


# The worst case of one HTTP call at the default settings, counted by hand from what the
# daemon promises (docs/behaviour.md#worst-case-of-one-call): 4 attempts of 3.05 s connect
# and 60 s read timeout, 3 waits of at most the 30 s Retry-After cap between them, and one
# more read timeout as the deadline of a listing's body.
WORST_CALL_AT_DEFAULTS_S = 4 * (3.05 + 60) + 3 * 30 + 60


def test_units_the_daemons_worst_case_of_one_call_is_the_one_counted_by_hand():
    defaults = config.load_config({}, {"JUPYTERHUB_API_TOKEN": "not-a-token"},
                                  lambda path: "")
    assert RetryPolicy().worst_case_call_s(defaults.hub.read_timeout) == pytest.approx(
        WORST_CALL_AT_DEFAULTS_S)


@pytest.mark.parametrize("unit", DAEMONS)
def test_units_watchdog_half_exceeds_worst_case_call_with_default_settings(unit):
    # The daemon feeds the watchdog from its loop only: one blocking HTTP call must fit in
    # half of WatchdogSec, and a stop waits for the call in flight.
    (watchdog,) = values(unit, "WatchdogSec")
    (stop,) = values(unit, "TimeoutStopSec")
    assert seconds(watchdog) / 2 > WORST_CALL_AT_DEFAULTS_S
    assert seconds(stop) > WORST_CALL_AT_DEFAULTS_S


def test_units_services_share_one_sandbox():
    def sandbox(unit):
        text = (UNITS_DIR / unit).read_text(encoding="utf-8")
        return text[text.index("# Sandbox."):].split("[Install]")[0].strip()

    assert sandbox(SERVICE) == sandbox(TEMPLATE) == sandbox(ONESHOT)


def test_units_timer_runs_the_oneshot_after_the_previous_pass():
    assert values(TIMER, "Unit", "Timer") == [ONESHOT]
    assert values(TIMER, "OnUnitInactiveSec", "Timer")
    assert values(TIMER, "OnBootSec", "Timer")  # the first run; OnUnitInactiveSec needs one
    assert values(TIMER, "WantedBy", "Install") == ["timers.target"]
    assert not values(ONESHOT, "WantedBy", "Install")  # started by the timer only


def test_units_timer_period_is_what_the_readme_says():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (minutes,) = re.findall(r"oneshot\.timer\s+# one pass every (\d+) minutes", readme)
    (period,) = values(TIMER, "OnUnitInactiveSec", "Timer")
    assert seconds(period) == int(minutes) * 60
