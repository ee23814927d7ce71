"""The wheel, installed into a fresh virtual environment, answers ``python -m
jupyterhub_idle_culler --version`` from the installed files (not from this checkout).

Builds with ``python -m build --wheel`` (PEP 517, isolated: setuptools comes from pip's cache or
the index) from a copy of the project's files, so the checkout gets no build/ or egg-info.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from idle_culler_daemon import __version__

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 300
IGNORED = shutil.ignore_patterns(".git", ".venv*", ".node", "build", "dist", "debian",
                                 "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
                                 ".hypothesis")


def project_files(destination: Path) -> None:
    """Copy what git tracks (plus untracked, not ignored files), else the tree minus debris."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
            capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    except (OSError, subprocess.SubprocessError):
        shutil.copytree(REPO, destination, ignore=IGNORED)
        return
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def run(command, **kw):
    kw.setdefault("timeout", BUILD_TIMEOUT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                            env=env, stdin=subprocess.DEVNULL, **kw)
    assert result.returncode == 0, "%s\n%s\n%s" % (command, result.stdout[-3000:],
                                                    result.stderr[-3000:])
    return result


@pytest.mark.timeout(2 * BUILD_TIMEOUT + 120)
def test_wheel_in_a_fresh_venv_runs_python_m_jupyterhub_idle_culler(tmp_path):
    source, out, venv = tmp_path / "src", tmp_path / "dist", tmp_path / "venv"
    source.mkdir()
    project_files(source)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", out, source])
    (wheel,) = out.glob("*.whl")
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel])
    elsewhere = tmp_path / "elsewhere"  # not the checkout: only the installed files can answer
    elsewhere.mkdir()
    result = run([python, "-m", "jupyterhub_idle_culler", "--version"], cwd=elsewhere)
    assert result.stdout.strip() == (
        "jupyterhub-idle-culler %s (from jupyterhub-idle-culler-daemon %s)"
        % (__version__, __version__))
    where = run([python, "-c", "import jupyterhub_idle_culler, idle_culler_daemon; "
                 "print(jupyterhub_idle_culler.__file__); print(idle_culler_daemon.__file__)"],
                cwd=elsewhere).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where
