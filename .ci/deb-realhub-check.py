#!/usr/bin/env python3
"""Check that an installed culler binary culls a real JupyterHub on 127.0.0.1.

    PYTHONPATH=. .venv/bin/python .ci/deb-realhub-check.py [/usr/bin/jupyterhub-idle-culler]

Run by .ci/check-deb-install.sh after `apt-get install ./…deb`. The hub comes from
tests/support/realhub.py (needs `bash scripts/install-realhub.sh`). The binary runs with a
clean environment (Debian's python3 and python3-* libraries, as under systemd), `--once`, and
the hub URL and token in the environment only, never on the command line. Exit 0 when every
check holds; otherwise 1, with the culler's output and the hub's log tail.
"""

import subprocess
import sys
import tempfile

from tests.support.realhub import CULLER_SCOPES, RealHub, installed

BINARY = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/jupyterhub-idle-culler"
HOUR = 3600


def main() -> int:
    ok, why = installed()
    if not ok:
        print("deb-realhub-check: the real hub is not installed: " + why, file=sys.stderr)
        return 1
    failures = []

    def check(condition: bool, what: str) -> None:
        print(("ok   " if condition else "FAIL ") + what)
        if not condition:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="deb-realhub-") as state:
        with RealHub(state, services=[{"name": "culler", "scopes": CULLER_SCOPES}]) as hub:
            hub.create_users(["idle-ann", "busy-bob", "gone-cy"])
            hub.start_server("idle-ann")
            hub.start_server("busy-bob")
            # ann's server has been idle for 2 h (she herself was active since: kept);
            # bob's server is active; cy has no server and has not been seen for 2 h.
            hub.backdate("idle-ann", "", last_activity=2 * HOUR, started=3 * HOUR)
            hub.backdate("gone-cy", None, user_last_activity=2 * HOUR, created=3 * HOUR)

            env = hub.service_env("culler", base={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
            token = env["JUPYTERHUB_API_TOKEN"]
            command = [BINARY, "--once", "--timeout=3600", "--cull-users"]
            print("running: " + " ".join(command) + "  (JUPYTERHUB_API_URL=%s, token in env)"
                  % env["JUPYTERHUB_API_URL"])
            result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL,
                                    capture_output=True, text=True, timeout=120)
            output = result.stdout + result.stderr
            print(output.rstrip())

            check(result.returncode == 0, "exit code 0 (got %d)" % result.returncode)
            check(token not in output, "the token appears nowhere in the output")
            check(token not in " ".join(command), "the token is not on the command line")
            check(not hub.server_running("idle-ann"), "idle-ann's idle server was stopped")
            check(hub.user_exists("idle-ann"), "idle-ann herself was kept (active user)")
            check(hub.server_running("busy-bob"), "busy-bob's active server kept running")
            check(not hub.user_exists("gone-cy"), "gone-cy (idle user, no server) was deleted")
            if failures:
                print(hub.log_tail(30), file=sys.stderr)
    if failures:
        print("deb-realhub-check: %d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("deb-realhub-check: the installed culler culled the real hub as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
