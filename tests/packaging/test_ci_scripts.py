"""The .ci/ scripts install system packages only under CI=true; elsewhere (``make deb``,
``make rpm`` on a developer's machine) they name what is missing and the command, and stop."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Sources the library, then stands in for dpkg-query (nothing installed) and apt-get (records
# its arguments), so that nothing on this machine is looked up or installed.
SCRIPT = """
. .ci/lib-packaging.sh
installed() { return 1; }
apt-get() { echo "apt-get $*" >> "$RECORD"; }
ensure_packages fakeroot lintian
echo reached the end
"""


def ensure_packages(tmp_path, ci):
    record = tmp_path / "apt-get.log"
    env = {"RECORD": str(record), "PATH": "/usr/bin:/bin"}
    if ci is not None:
        env["CI"] = ci
    result = subprocess.run(["bash", "-c", SCRIPT], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=30)
    calls = record.read_text().splitlines() if record.exists() else []
    return result, calls


def test_ci_scripts_name_missing_packages_and_install_nothing_outside_ci(tmp_path):
    for ci in (None, "", "false"):
        result, calls = ensure_packages(tmp_path, ci)
        assert result.returncode == 1 and calls == []
        assert "apt-get install --no-install-recommends fakeroot lintian" in result.stderr
        assert "reached the end" not in result.stdout


def test_ci_scripts_install_missing_packages_under_ci(tmp_path):
    result, calls = ensure_packages(tmp_path, "true")
    assert result.returncode == 0 and "reached the end" in result.stdout
    assert calls[-1] == "apt-get install -y -qq --no-install-recommends fakeroot lintian"
