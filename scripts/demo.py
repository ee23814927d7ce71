"""`make demo`: watch the culler work on a real JupyterHub, in about ten seconds.

Run from the repository root, after the project is installed in .venv (the culler alone is
enough) and scripts/install-realhub.sh has run:

    .venv/bin/python -m scripts.demo

It starts a throw-away JupyterHub 6.1.1 on 127.0.0.1 (state in a temporary folder), creates
about ten users in different situations, makes some of them look idle for two hours (the hub's
timestamps are rewritten; nobody waits), runs the culler once with --dry-run (its plan), then
once for real:

    jupyterhub-idle-culler --once --timeout=3600 --cull-users --remove-named-servers \\
        --cull-admin-users=false --url=<hub API>

with its token in the environment only, shows what changed, and ends with the two commands to
run on one's own hub. The exit code is the culler's, or 1 if the hub ended up in a state the
culler should not have left it in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from tests.support.realhub import RealHub, RealHubError, installed, parse_ts

REPO = Path(__file__).resolve().parent.parent

TIMEOUT = 3600
IDLE = 2 * 3600  # how long the idle ones have been idle
CULLER_TIME_LIMIT = 120  # seconds; the demo kills the culler after this
CULLER_SCOPES = [  # the README's role for --cull-users ("Run it against your hub"), + groups
    "list:users",
    "read:users",  # shows `created`: users who were never active can be judged
    "read:users:activity",
    "read:servers",
    "delete:servers",
    "delete:users",
    "read:users:groups",
]

class Case(NamedTuple):
    user: str
    note: str
    servers: dict  # server name ("" = default) -> "idle" (2 h ago), "recent" (10 min), "active"
    expect_servers: dict  # server name -> "running", "stopped" or "removed"
    expect_user: str  # "kept" or "deleted"
    admin: bool = False
    created_ago: int = 0  # for users without servers: seconds since the user was created


SCENARIO = [
    Case("alice", "idle 2 h", {"": "idle"}, {"": "stopped"}, "deleted"),
    Case("zoë", "idle 2 h; name needs URL quoting", {"": "idle"}, {"": "stopped"}, "deleted"),
    Case("c#d", "idle 2 h; the reference culler would address user 'c'", {"": "idle"},
         {"": "stopped"}, "deleted"),
    Case("c", "active; must survive the culling of 'c#d'", {"": "active"}, {"": "running"},
         "kept"),
    Case("carol", "active now", {"": "active"}, {"": "running"}, "kept"),
    Case("dave", "last active 10 min ago", {"": "recent"}, {"": "running"}, "kept"),
    Case("erin", "default server active, named server idle 2 h",
         {"": "active", "analysis": "idle"}, {"": "running", "analysis": "removed"}, "kept"),
    Case("ivan", "named server active", {"gpu": "active"}, {"gpu": "running"}, "kept"),
    Case("frank", "admin, idle 2 h (--cull-admin-users=false)", {"": "idle"},
         {"": "stopped"}, "kept", admin=True),
    # judged by `created`, which the hub shows only with the read:users scope
    Case("grace", "never started a server, created 2 h ago", {}, {}, "deleted",
         created_ago=IDLE),
    Case("heidi", "never started a server, created just now", {}, {}, "kept"),
]

BOLD = "\033[1m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(f"{BOLD}== {text} =={RESET}")


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def ago(stamp: str | None, now: datetime) -> str:
    moment = parse_ts(stamp)
    if moment is None:
        return "never"
    return duration((now - moment).total_seconds()) + " ago"


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    line = "  ".join("{:<%d}" % w for w in widths)
    say(("  " + line.format(*header)).rstrip())
    say(("  " + line.format(*["-" * w for w in widths])).rstrip())
    for row in rows:
        say(("  " + line.format(*row)).rstrip())


def server_label(name: str) -> str:
    return "(default)" if name == "" else name


# ---- set-up ---------------------------------------------------------------------------------
def build_scenario(hub: RealHub) -> None:
    for case in SCENARIO:
        hub.create_users([case.user], admin=case.admin)
        for server, activity in case.servers.items():
            hub.start_server(case.user, server)  # sets last_activity and started to now
            if activity == "idle":
                hub.backdate(case.user, server, last_activity=IDLE, started=IDLE + 600)
            elif activity == "recent":
                hub.backdate(case.user, server, last_activity=600, started=3000)
        # the user's own last_activity follows their newest server; never-active users
        # have none
        if not case.servers:
            hub.backdate(case.user, None, created=case.created_ago, user_last_activity=None)
        elif all(activity == "idle" for activity in case.servers.values()):
            hub.backdate(case.user, None, user_last_activity=IDLE, created=IDLE + 3600)
        else:
            hub.backdate(case.user, None, created=IDLE + 3600)


def before_table(hub: RealHub) -> None:
    now = datetime.now(timezone.utc)
    rows = []
    for case in SCENARIO:
        model = hub.user_model(case.user)
        admin = "yes" if case.admin else ""
        if not case.servers:
            created = f"created {ago(model['created'], now)}"
            rows.append([case.user, admin, "-", "-", created, case.note])
        note = case.note
        for server in case.servers:
            smodel = model["servers"][server]
            state = "running" if smodel["ready"] else (smodel["pending"] or "stopped")
            last = ago(smodel["last_activity"], now)
            rows.append([case.user, admin, server_label(server), state, last, note])
            note = ""
    table(["USER", "ADMIN", "SERVER", "STATE", "LAST ACTIVITY", "NOTE"], rows)


# ---- the culler -----------------------------------------------------------------------------
def culler_binary() -> Path:
    here = Path(sys.executable).parent / "jupyterhub-idle-culler"
    return here if here.exists() else REPO / ".venv" / "bin" / "jupyterhub-idle-culler"


def run_culler(hub: RealHub, service: str, *extra: str) -> tuple[int, list[str]]:
    """Run the culler once; show and return its output. With --dry-run its stdout is the
    plan table, and only that is shown (the log lines follow the real pass)."""
    binary = culler_binary()
    args = [
        "--once",
        f"--timeout={TIMEOUT}",
        "--cull-users",
        "--remove-named-servers",
        "--cull-admin-users=false",
        f"--url={hub.api_url}",
        *extra,
    ]
    dry_run = "--dry-run" in extra
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    env.pop("CREDENTIALS_DIRECTORY", None)  # the token must come from the variable below
    env["JUPYTERHUB_API_TOKEN"] = hub.token(service)
    shown = os.path.relpath(binary, Path.cwd()) if binary.is_absolute() else str(binary)
    say(f"  $ JUPYTERHUB_API_TOKEN=<{service}'s token> {shown} \\")
    say("      " + " ".join(args))
    say()
    try:
        proc = subprocess.Popen(
            [str(binary), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if dry_run else subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        say(f"  could not run the culler: {exc}")
        say("  (is the project installed in .venv? try: .venv/bin/pip install -e .)")
        return 127, []
    killer = threading.Timer(CULLER_TIME_LIMIT, proc.kill)
    killer.start()
    lines = []
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            say("  | " + line)
        code = proc.wait()
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code < 0:
        say(f"  the culler was killed (signal {-code}; time limit {CULLER_TIME_LIMIT} s)")
        code = 1
    say()
    say(f"  culler exit code: {code}")
    return code, lines


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
_EVENT = re.compile(r"\blevel=(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) event=([a-z][a-z-]*)\s+(.*)$")


def parse_log(lines: list[str]) -> dict[tuple[str, str | None], str]:
    """(user, server) -> why, from the culler's `stop ...` / `delete ...` lines
    (server None: the user itself)."""
    why = {}
    for line in lines:
        match = _EVENT.search(line)
        if not match:
            continue
        event, rest = match.groups()
        if event not in ("stop", "delete", "stop-failed", "delete-failed", "stop-refused",
                         "delete-refused"):
            continue
        fields = {}
        for key, value in _FIELD.findall(rest):
            if value.startswith('"'):
                try:
                    value = json.loads(value)
                except ValueError:
                    value = value.strip('"')
            fields[key] = value
        user = fields.get("user")
        if user is None:
            continue
        detail = fields.get("reason", "")
        if detail == "idle" and fields.get("idle_s", "-") != "-":
            detail = f"idle for {duration(float(fields['idle_s']))} (limit 1h00m)"
        elif detail == "max-age" and fields.get("age_s", "-") != "-":
            detail = f"max-age: {duration(float(fields['age_s']))} old"
        if event.endswith(("-failed", "-refused")):
            detail = f"{event}: {fields.get('error') or fields.get('status') or detail}"
        if event.startswith("stop"):
            server = fields.get("server", "-")
            why[(user, "" if server == "-" else server)] = detail
        else:
            why[(user, None)] = detail
    return why


# ---- after ----------------------------------------------------------------------------------
def after_table(hub: RealHub, why: dict, service: str) -> list[str]:
    """Print the after table; return the list of mismatches with the expected outcome."""
    rows, mismatches = [], []
    for case in SCENARIO:
        user, expect_user = case.user, case.expect_user
        model = hub.user_model(user)
        user_now = "deleted" if model is None else "kept"
        for server in case.servers:
            if model is None:
                now = "gone with user"
            else:
                smodel = (model.get("servers") or {}).get(server)
                if smodel is None:
                    now = "removed" if server else "stopped"
                elif smodel.get("ready"):
                    now = "running"
                else:
                    now = smodel.get("pending") or "stopped"
            expected = case.expect_servers[server]
            ok = now == expected or (now == "gone with user" and expected != "running")
            reason = why.get((user, server), "")
            rows.append([user, server_label(server), now, reason, expected, "ok" if ok else "NO"])
            if not ok:
                mismatches.append(f"{user}/{server_label(server)}: {now}, expected {expected}")
        ok = user_now == expect_user
        reason = why.get((user, None), "")
        rows.append([user, "(user)", user_now, reason, expect_user, "ok" if ok else "NO"])
        if not ok:
            mismatches.append(f"user {user}: {user_now}, expected {expect_user}")
    table(["USER", "SERVER", "NOW", "WHY (from the culler's log)", "EXPECTED", "OK"], rows)
    return mismatches


def on_your_own_hub() -> None:
    heading("On your own hub")
    say("  Give the culler a token with the role of README.md (\"Run it against your hub\"),")
    say("  then look first and act second:")
    say()
    for last in ("--once --dry-run", ""):
        say("  jupyterhub-idle-culler --url=https://hub.example.org/hub/api \\")
        say(f"      --api-token-file=/path/to/token --timeout=1h --cull-users {last}".rstrip())


def main() -> int:
    ok, why_not = installed()
    if not ok:
        say(f"demo: the real JupyterHub is not installed: {why_not}")
        return 2
    with tempfile.TemporaryDirectory(prefix="culler-demo-") as state_dir:
        hub = RealHub(state_dir, services=[{"name": "culler", "scopes": CULLER_SCOPES}])
        try:
            heading("Starting a throw-away JupyterHub 6.1.1 on 127.0.0.1")
            started = time.monotonic()
            hub.start()
            say(f"  hub API: {hub.api_url}  (up in {time.monotonic() - started:.1f} s)")
            say("  service 'culler' has scopes: " + ", ".join(CULLER_SCOPES))

            heading("Before: users and servers (some made to look idle for 2 hours)")
            build_scenario(hub)
            before_table(hub)

            heading("First a dry run: what the culler would do (it sends no DELETE)")
            code, _ = run_culler(hub, "culler", "--dry-run")
            if code != 0:
                return code

            heading(f"Now the real pass (idle limit {TIMEOUT} s = 1 hour)")
            code, lines = run_culler(hub, "culler")

            heading("After")
            mismatches = after_table(hub, parse_log(lines), "culler")
            say()
            if mismatches:
                say("  Unexpected outcome:")
                for text in mismatches:
                    say("    - " + text)
            elif code == 0:
                say("  Everything idle was stopped or removed; active servers, the admin and")
                say("  the new user were left alone.")
            if code == 0 and mismatches:
                code = 1
            if code != 0:
                say()
                say("  Last lines of the hub's log:")
                for line in hub.log_tail(15).splitlines():
                    say("  | " + line)
            else:
                on_your_own_hub()
            return code
        except RealHubError as exc:
            say(f"demo: the hub failed: {exc}")
            return 1
        finally:
            hub.stop()
            say()
            say("Hub stopped." if not hub.leftover_pids() else "demo: processes left running!")


if __name__ == "__main__":
    sys.exit(main())
