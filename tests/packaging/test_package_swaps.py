"""Swapping jupyterhub-idle-culler and this package in one environment never leaves a hub
without a culler, done the way README.md says.

Both distributions own the module ``jupyterhub_idle_culler`` and the command
``jupyterhub-idle-culler``; pip overwrites one's files with the other's and, on uninstall,
deletes what its own record lists. Each test builds this project's wheel, takes the reference
2.0.0 from the package index (``pip download``, no dependencies: its files are what matters)
and reproduces one sequence in a fresh virtual environment:

- the reference installed over this package (what a TLJH upgrade does), then the README's
  lines (Install, then The Littlest JupyterHub's) run as written;
- this package installed over the reference: the start-up WARNING names the reference, and the
  repair command it gives leaves a working ``python -m jupyterhub_idle_culler``.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from idle_culler_daemon import __version__
from tests.packaging.test_module_wheel import BUILD_TIMEOUT, project_files, run

REPO = Path(__file__).resolve().parents[2]
REFERENCE = "jupyterhub-idle-culler==2.0.0"
OURS = "jupyterhub-idle-culler %s (from jupyterhub-idle-culler-daemon %s)" % (
    __version__, __version__)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """(this project's wheel, the reference's wheel)."""
    top = tmp_path_factory.mktemp("swap-wheels")
    source, out = top / "src", top / "dist"
    source.mkdir()
    project_files(source)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", out, source])
    run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "-d", top / "ref", REFERENCE])
    (ours,) = out.glob("*.whl")
    (reference,) = (top / "ref").glob("*.whl")
    return ours, reference


def fresh_venv(path: Path) -> Path:
    run([sys.executable, "-m", "venv", path])
    return path / "bin" / "python"


def pip(python: Path, *args) -> None:
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args])


def version(python: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m jupyterhub_idle_culler --version`` outside the checkout (never raises)."""
    return subprocess.run([str(python), "-m", "jupyterhub_idle_culler", "--version"],
                          capture_output=True, text=True, timeout=60, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def installed_names(python: Path) -> set:
    listed = run([python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"])
    return {entry["name"].lower() for entry in json.loads(listed.stdout)}


def readme_block_after(heading_text: str) -> str:
    """The first ```sh block after the line that contains ``heading_text``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    rest = text[text.index(heading_text):]
    return re.search(r"^```sh\n(.*?)^```", rest, flags=re.MULTILINE | re.DOTALL).group(1)


def readme_dockerfile_run() -> str:
    """The RUN command of the README's Zero-to-JupyterHub Dockerfile, continuations joined."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```dockerfile\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    (line,) = [line for line in joined.splitlines() if line.startswith("RUN ")]
    return line[len("RUN "):]


def run_readme_lines(block: str, python: Path, wheel: Path, cwd: Path) -> list:
    """Run the block's pip lines as written, with this venv's pip and the built wheel."""
    ran = []
    for line in block.splitlines():
        command = line.split("#", 1)[0].strip()
        if "pip " not in command:
            continue  # tljh-config, make, rm, ...
        command = re.sub(r"^(sudo )?\S*pip ", "%s -m pip " % python, command)
        command = re.sub(r"\S*jupyterhub_idle_culler_daemon-\*\.whl", str(wheel), command)
        result = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=cwd,
                                timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
        ran.append(command)
    return ran


@pytest.mark.behaviour("names")
@pytest.mark.timeout(3 * BUILD_TIMEOUT)
def test_swap_reference_over_this_one_then_the_readme_lines_restore_it(wheels, tmp_path):
    ours, reference = wheels
    python = fresh_venv(tmp_path / "venv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip(python, ours)
    assert version(python, elsewhere).stdout.strip() == OURS
    pip(python, "--no-deps", reference)  # a TLJH upgrade: the reference's files win
    assert OURS not in version(python, elsewhere).stdout

    ran = run_readme_lines(readme_block_after("**Replacing jupyterhub-idle-culler.**"),
                           python, ours, elsewhere)
    assert len(ran) == 2, ran
    assert version(python, elsewhere).stdout.strip() == OURS
    assert "jupyterhub-idle-culler" not in installed_names(python)

    pip(python, "--no-deps", reference)  # the next TLJH upgrade
    ran = run_readme_lines(readme_block_after("**The Littlest JupyterHub**"), python, ours,
                           elsewhere)
    assert len(ran) == 2, ran
    result = version(python, elsewhere)
    assert result.returncode == 0 and result.stdout.strip() == OURS, result.stderr
    assert (python.parent / "jupyterhub-idle-culler").exists()

    # Zero-to-JupyterHub: the Dockerfile's RUN line, on an image whose reference came back.
    pip(python, "--no-deps", reference)
    run_line = readme_dockerfile_run()
    ran = run_readme_lines(run_line.replace(" && ", "\n"), python, ours, elsewhere)
    assert len(ran) == 2, ran
    assert version(python, elsewhere).stdout.strip() == OURS
    assert "jupyterhub-idle-culler" not in installed_names(python)


def start_once(python: Path, cwd: Path) -> subprocess.CompletedProcess:
    """One --once pass against a closed loopback port: enough to log the start-up lines."""
    env = {"JUPYTERHUB_API_TOKEN": "not-a-real-token-0123", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [str(python), "-m", "jupyterhub_idle_culler", "--once", "--log-format=json",
         "--url=http://127.0.0.1:9/hub/api", "--request-timeout=2"],
        capture_output=True, text=True, timeout=120, cwd=cwd, env=env,
        stdin=subprocess.DEVNULL)


def warnings_about_the_reference(stderr: str) -> list:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "reference-also-installed"]


@pytest.mark.behaviour("names")
@pytest.mark.timeout(3 * BUILD_TIMEOUT)
def test_swap_this_one_over_the_reference_warns_and_its_repair_works(wheels, tmp_path):
    ours, reference = wheels
    python = fresh_venv(tmp_path / "venv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip(python, "--no-deps", reference)
    pip(python, ours)
    assert version(python, elsewhere).stdout.strip() == OURS
    (warning,) = warnings_about_the_reference(start_once(python, elsewhere).stderr)
    assert warning["level"] == "WARNING"
    detail = warning["detail"]
    assert "jupyterhub-idle-culler 2.0.0 is also installed" in detail
    assert "'pip uninstall jupyterhub-idle-culler' would delete them" in detail

    repair = detail.split("Remove it safely with: ", 1)[1]
    result = subprocess.run(repair, shell=True, capture_output=True, text=True, cwd=elsewhere,
                            timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (repair, result.stderr[-2000:])
    assert version(python, elsewhere).stdout.strip() == OURS
    assert "jupyterhub-idle-culler" not in installed_names(python)
    assert warnings_about_the_reference(start_once(python, elsewhere).stderr) == []
