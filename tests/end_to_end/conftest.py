"""Run the culler as a subprocess, the way systemd and hubs run it."""

import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(sys.executable).parent / "jupyterhub-idle-culler"


def culler_env(token=None, **extra):
    """A clean environment: no token or culler settings leak in from the developer's shell."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("JUPYTERHUB_", "NOTIFY_SOCKET", "WATCHDOG_", "CREDENTIALS_"))}
    if token:
        env["JUPYTERHUB_API_TOKEN"] = token
    env.update(extra)
    return env


@pytest.fixture
def run_culler():
    """Run ``python -m idle_culler_daemon ARGS`` to completion (bounded) and return it."""
    def run(*args, token=None, timeout=30, env=None, script=False, cwd=None):
        command = [str(SCRIPT)] if script else [sys.executable, "-m", "idle_culler_daemon"]
        return subprocess.run(command + list(args), env=env or culler_env(token), cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
    return run

