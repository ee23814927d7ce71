"""Drive a real JupyterHub (plus configurable-http-proxy) on 127.0.0.1 for tests.

Needs only the standard library and `requests`; JupyterHub itself runs from its own virtual
environment (`.venv-hub/` for 6.1, `.venv-hub-1.5/` ... for the others of
tests/realhub/hub-versions.txt) and the proxy from `.node/` (all made by
`scripts/install-realhub.sh`).

    with RealHub(tmp_path, services=[{"name": "culler", "scopes": [...]}], hub="6.1") as hub:
        hub.create_users(["alice", "bob"])
        hub.start_server("alice")
        hub.backdate("alice", last_activity=7200)      # idle for 2 h
        env = hub.service_env("culler")                 # JUPYTERHUB_API_URL/_TOKEN
        ...

Servers are played by a responder inside the hub (no process each; see
jupyterhub_config.py), and timestamps are rewritten through a test-only API of the hub.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import requests

from tests.support import hubversions

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent  # tests/support/ -> the repository root
CONFIG_FILE = HERE / "jupyterhub_config.py"
PROXY_BIN_DIR = REPO / ".node" / "node_modules" / ".bin"
PROXY_BIN = PROXY_BIN_DIR / "configurable-http-proxy"

ADMIN_SERVICE = "realhub-admin"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

# What a culler needs (docs/behaviour.md#scopes-per-feature), and the usual extra for group rules.
CULLER_SCOPES = [
    "list:users",
    "read:users",  # shows `created` (and so lets never-active users be judged)
    "read:users:activity",
    "read:servers",
    "delete:servers",
    "delete:users",
    "read:users:groups",
]

_UNSET = object()
_NAME_COUNTER = itertools.count(1)


def unique_names(prefix: str, count: int = 1) -> list[str]:
    """Fresh user names for tests sharing one hub: prefix-1, prefix-2, ..."""
    return [f"{prefix}-{next(_NAME_COUNTER)}" for _ in range(count)]


def culler_command() -> list[str]:
    """The culler as installed next to the running interpreter (.venv/bin), else -m."""
    script = Path(sys.executable).parent / "jupyterhub-idle-culler"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "idle_culler_daemon"]


def module_command(python: str | None = None) -> list[str]:
    """The culler by the module name hub configurations use: python -m jupyterhub_idle_culler."""
    return [python or sys.executable, "-m", "jupyterhub_idle_culler"]


class RealHubError(RuntimeError):
    pass


def installed(hub=None) -> tuple[bool, str]:
    """(True, "") when that hub version (default 6.1) and the proxy are installed, else
    (False, what is missing)."""
    ok, why = hubversions.get(hub).installed()
    if not ok:
        return False, why
    if not PROXY_BIN.exists():
        return False, "missing .node (run: bash scripts/install-realhub.sh)"
    return True, ""


SINGLEUSER_BIN = REPO / ".venv-hub" / "bin" / "jupyterhub-singleuser"
KERNEL_CLIENT = HERE / "kernel_client.py"


def singleuser_installed() -> tuple[bool, str]:
    """(True, "") when real single-user servers can run (RealHub(spawner="process")): the hub's
    environment has jupyterhub-singleuser, jupyter_server and ipykernel."""
    python = SINGLEUSER_BIN.parent / "python"
    if SINGLEUSER_BIN.exists() and python.exists() and subprocess.run(
            [str(python), "-c", "import jupyter_server, ipykernel"],
            capture_output=True, timeout=60).returncode == 0:
        return True, ""
    return False, "no jupyter_server/ipykernel in .venv-hub (run: bash scripts/install-realhub.sh)"


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (asked from the OS, then released)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def q(segment: str) -> str:
    """Percent-encode one URL path segment (user or server name); "." and ".." too, which
    would otherwise be dot segments that HTTP clients remove (admin_api sends paths as
    written)."""
    if segment in (".", ".."):
        return "%2E" * len(segment)
    return quote(segment, safe="")


def _to_iso(value) -> str | None:
    """An aware datetime, a naive one (UTC), a number of seconds ago, or None -> ISO or None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = datetime.now(timezone.utc) - timedelta(seconds=value)
    if isinstance(value, timedelta):
        value = datetime.now(timezone.utc) - value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, str):
        return value
    raise TypeError(f"cannot turn {value!r} into a timestamp")


def parse_ts(value: str | None) -> datetime | None:
    """Parse a hub timestamp into an aware UTC datetime (None stays None)."""
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pids_with_marker(marker: str, *also: str) -> list[int]:
    """PIDs whose environment holds REALHUB_MARKER=<marker> (children of our hub), and each
    of the NAME=VALUE strings in `also`."""
    needles = {f"REALHUB_MARKER={marker}".encode()} | {entry.encode() for entry in also}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needles <= set(f.read().split(b"\0")):
                    found.append(int(entry))
        except OSError:
            continue
    return found


class RealHub:
    """One JupyterHub + proxy on 127.0.0.1, state in `state_dir`.

    services: [{"name": str, "scopes": [str], "command": [str] or hub -> [str] (optional:
                hub-managed),
                "environment": {str: str} (optional), "cwd": str (optional)}]
    An admin service (ADMIN_SERVICE, built-in admin role) is always added for setup calls.
    On hubs before 2.0 (no roles) every service that has scopes is `admin: True` instead.

    hub: a key of tests/realhub/hub-versions.txt ("1.5" ... "6.1", default "6.1").
    internal_ssl: the hub's internal SSL; the harness then talks TLS to the API with the
    hub's own certificate (`internal_certs`), like every component of such a hub.
    service_poll_interval: seconds between the hub's checks that a managed service still runs
    (it restarts one that exited); None keeps the hub's default (30 s).
    """

    def __init__(
        self,
        state_dir,
        services=(),
        *,
        cleanup_servers: bool = True,
        last_activity_interval: int = 0,
        slow_stop_timeout: float = 10,
        slow_spawn_timeout: float = 10,
        concurrent_spawn_limit: int = 100,
        log_level: str = "INFO",
        start_timeout: float = START_TIMEOUT,
        hub=None,
        internal_ssl: bool = False,
        service_poll_interval: int | None = None,
        spawner: str = "inhub",
        extra_config=None,
    ):
        self.hub_version = hubversions.get(hub)
        self.internal_ssl = bool(internal_ssl)
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.services = []
        self._tokens = {ADMIN_SERVICE: secrets.token_hex(32)}
        for svc in services:
            svc = dict(svc)
            if svc["name"] == ADMIN_SERVICE or svc["name"] in self._tokens:
                raise ValueError(f"duplicate or reserved service name {svc['name']!r}")
            self._tokens[svc["name"]] = svc.get("token") or secrets.token_hex(32)
            self.services.append(svc)
        self.options = {
            "REALHUB_CLEANUP_SERVERS": "1" if cleanup_servers else "0",
            "REALHUB_LAST_ACTIVITY_INTERVAL": str(int(last_activity_interval)),
            "REALHUB_SLOW_STOP_TIMEOUT": str(slow_stop_timeout),
            "REALHUB_SLOW_SPAWN_TIMEOUT": str(slow_spawn_timeout),
            "REALHUB_CONCURRENT_SPAWN_LIMIT": str(int(concurrent_spawn_limit)),
            "REALHUB_LOG_LEVEL": log_level,
            "REALHUB_INTERNAL_SSL": "1" if internal_ssl else "0",
            "REALHUB_SERVICE_POLL_INTERVAL": str(int(service_poll_interval or 0)),
            # "process": real jupyterhub-singleuser servers (needs singleuser_installed())
            "REALHUB_SPAWNER": spawner,
            # a Python file run after jupyterhub_config.py with the same `c` (e.g. bench/)
            "REALHUB_EXTRA_CONFIG": str(Path(extra_config).resolve()) if extra_config else "",
        }
        self.start_timeout = start_timeout
        self.marker = "realhub-" + secrets.token_hex(8)
        self.log_path = self.state_dir / "hub.log"
        self.ports: dict[str, int] | None = None
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self._log_offset = 0
        self._atexit_registered = False
        self.session = requests.Session()
        self.session.trust_env = False  # never go through an HTTP proxy from the environment
        self.session.headers["Authorization"] = "token " + self._tokens[ADMIN_SERVICE]

    # ---- addresses and tokens ---------------------------------------------------------------
    @property
    def hub_url(self) -> str:
        """The hub's own server (what services see as JUPYTERHUB_API_URL, minus /hub/api)."""
        self._need_ports()
        scheme = "https" if self.internal_ssl else "http"
        return f"{scheme}://127.0.0.1:{self.ports['hub']}"

    @property
    def has_scopes(self) -> bool:
        """False on hubs before 2.0: no roles, no scopes, services are admin or nothing."""
        return self.hub_version.has_scopes

    @property
    def internal_certs(self) -> Path:
        """The hub's internal-SSL folder (hub-internal/, hub-ca/, ...; with internal_ssl)."""
        return self.state_dir / "internal-ssl"

    def _use_internal_certs(self) -> bool:
        """Present the hub's own certificate and trust its CA (internal SSL); False while
        the hub has not made them yet."""
        certs = self.internal_certs
        cert, key = certs / "hub-internal" / "hub-internal.crt", certs / "hub-internal" / (
            "hub-internal.key")
        ca = certs / "hub-ca" / "hub-ca.crt"
        if not all(path.exists() for path in (cert, key, ca)):
            return False
        self.session.cert = (str(cert), str(key))
        self.session.verify = str(ca)
        return True

    @property
    def api_url(self) -> str:
        """REST API base, straight to the hub: http://127.0.0.1:PORT/hub/api (no slash)."""
        return self.hub_url + "/hub/api"

    @property
    def public_url(self) -> str:
        """The proxy's public address (servers are at /user/<name>/...)."""
        self._need_ports()
        return f"http://127.0.0.1:{self.ports['public']}"

    def token(self, service_name: str) -> str:
        return self._tokens[service_name]

    @property
    def admin_token(self) -> str:
        return self._tokens[ADMIN_SERVICE]

    def service_env(self, service_name: str, base=None) -> dict:
        """An environment for a culler run as `service_name` (token only in the environment)."""
        env = dict(os.environ if base is None else base)
        env["JUPYTERHUB_API_URL"] = self.api_url
        env["JUPYTERHUB_API_TOKEN"] = self.token(service_name)
        env.pop("CREDENTIALS_DIRECTORY", None)
        return env

    def run_culler(
        self,
        service_name: str,
        *args: str,
        timeout: float = 120,
        env: dict | None = None,
        command: list[str] | None = None,
    ) -> subprocess.CompletedProcess:
        """Run the culler once against this hub as `service_name` (token in the environment
        only); returns the CompletedProcess with text stdout/stderr. Pass "--once" yourself.
        command: how to start it (default: culler_command(); see module_command())."""
        full_env = self.service_env(service_name)
        if env:
            full_env.update(env)
        return subprocess.run(
            (command or culler_command()) + ["--url=" + self.api_url, *args],
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _need_ports(self):
        if self.ports is None:
            raise RealHubError("the hub was never started")

    # ---- process ----------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        """Start the hub and wait until its API answers; raises RealHubError with the log."""
        ok, why = installed(self.hub_version)
        if not ok:
            raise RealHubError(why)
        if self.running:
            return self
        reuse_ports = self.ports is not None  # restart(): same ports, same database
        if not self._atexit_registered:
            # a last resort if the caller never gets to stop() (e.g. an interrupted script)
            atexit.register(self.stop)
            self._atexit_registered = True
        for attempt in range(3):
            if not reuse_ports:
                public, hub, proxy_api, responder = free_ports(4)
                self.ports = {
                    "public": public,
                    "hub": hub,
                    "proxy_api": proxy_api,
                    "responder": responder,
                }
            try:
                self._launch()
                self._wait_ready()
                return self
            except RealHubError as e:
                self._kill()
                if "address already in use" in str(e).lower() and attempt < 2 and not reuse_ports:
                    continue
                raise

    def _command_of(self, service) -> list[str] | None:
        """A managed service's command: a list, or a function of this (started) hub that
        returns one (for command lines that name the hub's port)."""
        command = service.get("command")
        if callable(command):
            command = command(self)
        return [str(part) for part in command] if command else None

    def _write_spec(self) -> Path:
        spec = {
            "services": [
                {"name": ADMIN_SERVICE, "token": self._tokens[ADMIN_SERVICE], "admin": True}
            ]
            + [
                {
                    "name": s["name"],
                    "token": self._tokens[s["name"]],
                    "scopes": list(s.get("scopes") or []),
                    "command": self._command_of(s),
                    "environment": dict(s.get("environment") or {}),
                    "cwd": s.get("cwd"),
                }
                for s in self.services
            ]
        }
        path = self.state_dir / "services.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f, indent=1)
        return path

    def _launch(self):
        env = dict(os.environ)
        for key in list(env):
            if key.startswith(("JUPYTERHUB_", "CONFIGPROXY_")):
                del env[key]
        env.update(self.options)
        env.update(
            {
                "PATH": f"{PROXY_BIN_DIR}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
                "REALHUB_STATE_DIR": str(self.state_dir),
                "REALHUB_PORT": str(self.ports["public"]),
                "REALHUB_HUB_PORT": str(self.ports["hub"]),
                "REALHUB_PROXY_API_PORT": str(self.ports["proxy_api"]),
                "REALHUB_RESPONDER_PORT": str(self.ports["responder"]),
                "REALHUB_SERVICES_JSON": str(self._write_spec()),
                "REALHUB_MARKER": self.marker,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self._log_file = open(self.log_path, "ab")
        self._log_offset = self._log_file.tell()
        self.proc = subprocess.Popen(
            [str(self.hub_version.hub_bin), "-f", str(CONFIG_FILE)],
            cwd=self.state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_ready(self):
        deadline = time.monotonic() + self.start_timeout
        api_ok = False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RealHubError(
                    f"jupyterhub exited with {self.proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            if not api_ok and (not self.internal_ssl or self._use_internal_certs()):
                try:
                    r = self.session.get(self.api_url + "/", timeout=2)
                    api_ok = r.status_code == 200
                except requests.RequestException:
                    pass
            # the API answers before the hub has started its services and checked the
            # proxy's routes; it logs this line once everything is up.
            if api_ok and "JupyterHub is now running" in self._log_since_start():
                return
            time.sleep(0.1)
        raise RealHubError(
            f"jupyterhub did not answer within {self.start_timeout:.0f} s:\n" + self.log_tail()
        )

    def stop(self, timeout: float = STOP_TIMEOUT):
        """SIGTERM the hub, wait (bounded), SIGKILL if needed; then make sure the proxy and
        every hub-managed service are gone too. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill()

    def restart(self):
        """Stop and start again on the same ports and database (use cleanup_servers=False
        to keep servers running across the restart)."""
        self.stop()
        self.start()

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # leftovers: the proxy and hub-managed services run in their own sessions
        leftovers = set(_pids_with_marker(self.marker))
        pid_file = self.state_dir / "jupyterhub-proxy.pid"
        if pid_file.exists():
            try:
                pid = int(pid_file.read_text().strip())
                if pid in _pids_with_marker(self.marker):
                    leftovers.add(pid)
            except (OSError, ValueError):
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in leftovers if _pid_alive(p)]
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and any(_pid_alive(p) for p in alive):
                time.sleep(0.05)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def service_pids(self, service_name: str) -> list[int]:
        """Live processes of a hub-managed service (the hub names it in their environment)."""
        pids = _pids_with_marker(self.marker, f"JUPYTERHUB_SERVICE_NAME={service_name}")
        return sorted(p for p in pids if _pid_alive(p))

    def leftover_pids(self) -> list[int]:
        """Processes started by this hub that are still alive (should be [] after stop())."""
        pids = {p for p in _pids_with_marker(self.marker) if _pid_alive(p)}
        if self.proc is not None and self.proc.poll() is None:
            pids.add(self.proc.pid)
        return sorted(pids)

    # ---- logs -------------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_size(self) -> int:
        """The log's length in bytes now: a mark for wait_for_log(since=...)."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_for_log(self, text: str, *, since: int = 0, count: int = 1,
                     timeout: float = 30) -> str:
        """Wait until `text` appears `count` times in the log after byte `since` (the hub's
        output and that of its managed services); returns that part of the log."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                part = f.read().decode(errors="replace")
            if part.count(text) >= count:
                return part
            if time.monotonic() > deadline:
                raise RealHubError(f"{text!r} not in the hub's log after {timeout:.0f} s:\n"
                                   + self.log_tail(30))
            time.sleep(0.1)

    # ---- raw API ----------------------------------------------------------------------------
    def admin_api(self, method: str, path: str, *, check: bool = False, **kw) -> requests.Response:
        """Call the REST API with the admin token. `path` is relative to api_url ("/users");
        quote path segments yourself (see q()). check=True raises on status >= 400.
        The path is sent as written: requests would turn a quoted "%2E" back into "."."""
        timeout = kw.pop("timeout", 30)
        prepared = self.session.prepare_request(
            requests.Request(method, self.api_url + path, **kw))
        query = prepared.url.partition("?")[2]
        prepared.url = self.api_url + path + ("?" + query if query else "")
        r = self.session.send(prepared, timeout=timeout)
        if check and r.status_code >= 400:
            raise RealHubError(f"{method} {path} -> {r.status_code}: {r.text[:500]}")
        return r

    def api(self, service_name: str, method: str, path: str, **kw) -> requests.Response:
        """Call the REST API with a service's token."""
        kw.setdefault("timeout", 30)
        headers = dict(kw.pop("headers", {}) or {})
        headers["Authorization"] = "token " + self.token(service_name)
        if self.internal_ssl:
            kw.setdefault("cert", self.session.cert)
            kw.setdefault("verify", self.session.verify)
        return requests.request(method, self.api_url + path, headers=headers, **kw)

    # ---- users, groups ----------------------------------------------------------------------
    def create_users(self, names, admin: bool = False) -> list[dict]:
        """Create users (one batch POST); already existing ones are left alone."""
        names = list(names)
        if not names:
            return []
        r = self.admin_api("POST", "/users", json={"usernames": names, "admin": bool(admin)})
        if r.status_code == 409:  # all exist already
            return [self.user_model(n) for n in names]
        if r.status_code >= 400:
            raise RealHubError(f"create users {names[:5]}...: {r.status_code} {r.text[:500]}")
        created = r.json()
        if admin:
            # pre-existing users in the batch were skipped: make them admins too
            for name in set(names) - {u["name"] for u in created}:
                self.admin_api("PATCH", f"/users/{q(name)}", json={"admin": True}, check=True)
        return created

    def create_user(self, name: str, admin: bool = False) -> requests.Response:
        """POST /users/{name} (returns the raw answer: lets tests see what the hub refuses)."""
        return self.admin_api("POST", f"/users/{q(name)}", json={"admin": bool(admin)})

    def set_admin(self, name: str, admin: bool = True):
        self.admin_api("PATCH", f"/users/{q(name)}", json={"admin": bool(admin)}, check=True)

    def delete_user(self, name: str) -> requests.Response:
        return self.admin_api("DELETE", f"/users/{q(name)}")

    def user_exists(self, name: str) -> bool:
        r = self.admin_api("GET", f"/users/{q(name)}")
        if r.status_code == 404:
            return False
        if r.status_code != 200:
            raise RealHubError(f"GET user {name!r}: {r.status_code} {r.text[:300]}")
        return True

    def user_model(self, name: str) -> dict | None:
        """The user model with stopped named servers included; None if no such user."""
        r = self.admin_api("GET", f"/users/{q(name)}", params={"include_stopped_servers": "1"})
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise RealHubError(f"GET user {name!r}: {r.status_code} {r.text[:300]}")
        return r.json()

    def list_users(self, state: str | None = None) -> list[dict]:
        """Every user (follows pagination), optionally filtered by state=ready/active/inactive."""
        users, offset = [], 0
        while True:
            params = {"offset": offset, "limit": 200, "include_stopped_servers": "1"}
            if state:
                params["state"] = state
            r = self.admin_api(
                "GET",
                "/users",
                params=params,
                headers={"Accept": "application/jupyterhub-pagination+json"},
                check=True,
            )
            body = r.json()
            if isinstance(body, list):  # hubs before 2.0: everything in one plain list
                return body
            users.extend(body["items"])
            nxt = body["_pagination"].get("next")
            if not nxt:
                return users
            offset = nxt["offset"]

    def add_to_group(self, group: str, users) -> None:
        """Create the group if needed and add users to it."""
        r = self.admin_api("POST", f"/groups/{q(group)}")
        if r.status_code not in (201, 409):
            raise RealHubError(f"create group {group!r}: {r.status_code} {r.text[:300]}")
        self.admin_api("POST", f"/groups/{q(group)}/users", json={"users": list(users)}, check=True)

    # ---- servers ----------------------------------------------------------------------------
    @staticmethod
    def server_path(user: str, server_name: str = "") -> str:
        if server_name:
            return f"/users/{q(user)}/servers/{q(server_name)}"
        return f"/users/{q(user)}/server"

    def server_model(self, user: str, name: str = "") -> dict | None:
        """The server's model (from the user model, stopped named servers included)."""
        model = self.user_model(user)
        if model is None:
            return None
        return (model.get("servers") or {}).get(name)

    def server_running(self, user: str, name: str = "") -> bool:
        """Running and ready (not pending)."""
        server = self.server_model(user, name)
        return bool(server and server.get("ready") and not server.get("pending"))

    def server_exists(self, user: str, name: str) -> bool:
        """A named server still exists (running or stopped-but-not-removed)."""
        return self.server_model(user, name) is not None

    def start_server(self, user: str, server_name: str = "", timeout: float = 30) -> dict:
        """Start a server and wait until it is ready; returns its model.
        Retries on 429 (spawn limit) and polls on 202 (slow spawn)."""
        deadline = time.monotonic() + timeout
        path = self.server_path(user, server_name)
        delay = 0.05
        while True:
            r = self.admin_api("POST", path, json={})
            if r.status_code in (201, 202):
                break
            if r.status_code == 400 and "already running" in r.text:
                break
            if r.status_code == 429 and time.monotonic() < deadline:
                time.sleep(min(float(r.headers.get("Retry-After") or delay), 1.0))
                delay = min(delay * 2, 1.0)
                continue
            raise RealHubError(f"start {user!r}/{server_name!r}: {r.status_code} {r.text[:300]}")
        return self.wait_server(user, server_name, ready=True, timeout=deadline - time.monotonic())

    def start_servers(self, users, server_name: str = "", timeout: float = 60) -> None:
        """Start one server for each user (all requests first, then wait for all)."""
        deadline = time.monotonic() + timeout
        pending = list(users)
        while pending:
            retry = []
            for user in pending:
                r = self.admin_api("POST", self.server_path(user, server_name), json={})
                if r.status_code == 429:
                    retry.append(user)
                elif r.status_code not in (201, 202) and not (
                    r.status_code == 400 and "already running" in r.text
                ):
                    raise RealHubError(
                        f"start {user!r}/{server_name!r}: {r.status_code} {r.text[:300]}"
                    )
            pending = retry
            if pending:
                if time.monotonic() > deadline:
                    raise RealHubError(f"{len(pending)} servers still refused (429)")
                time.sleep(0.2)
        for user in users:
            self.wait_server(user, server_name, ready=True, timeout=deadline - time.monotonic())

    def wait_server(self, user, server_name="", *, ready=True, timeout: float = 30) -> dict | None:
        """Wait until the server is ready (ready=True) or no longer running (ready=False)."""
        deadline = time.monotonic() + max(timeout, 0.5)
        while True:
            server = self.server_model(user, server_name)
            if ready and server and server.get("ready") and not server.get("pending"):
                return server
            if not ready and not (server and (server.get("ready") or server.get("pending"))):
                return server
            if time.monotonic() > deadline:
                raise RealHubError(
                    f"server {user!r}/{server_name!r} not {'ready' if ready else 'stopped'} "
                    f"after {timeout:.0f} s: {server}\n" + self.log_tail(15)
                )
            time.sleep(0.05)

    def stop_server(
        self, user: str, server_name: str = "", remove: bool = False, wait: bool = True
    ) -> requests.Response:
        kw = {"json": {"remove": True}} if remove else {}
        r = self.admin_api("DELETE", self.server_path(user, server_name), **kw)
        if wait and r.status_code in (202, 204):
            self.wait_server(user, server_name, ready=False)
        return r

    def touch(self, user: str, server_name: str | None = "", when=None) -> None:
        """Post activity (now, or `when`) for the user and one of their servers
        (server_name=None: the user only). Only moves timestamps forward."""
        ts = _to_iso(when if when is not None else datetime.now(timezone.utc))
        body = {"last_activity": ts}
        if server_name is not None:
            body["servers"] = {server_name: {"last_activity": ts}}
        self.admin_api("POST", f"/users/{q(user)}/activity", json=body, check=True)

    # ---- test-only hub extension ------------------------------------------------------------
    def backdate(
        self,
        user: str,
        server_name: str | None = "",
        *,
        last_activity=_UNSET,
        started=_UNSET,
        user_last_activity=_UNSET,
        created=_UNSET,
    ) -> dict:
        """Rewrite timestamps in the hub's database. Each value: an aware datetime (naive =
        UTC), a number of seconds ago, a timedelta ago, or None (clears the field); leave it
        out to keep it. last_activity/started are the server's (server_name "" = default
        server; None = touch no server); user_last_activity/created are the user's.
        Returns what the hub stored (ISO strings)."""
        body = {"user": user}
        if server_name is not None:
            body["server"] = server_name
        for key, value in (
            ("last_activity", last_activity),
            ("started", started),
            ("user_last_activity", user_last_activity),
            ("created", created),
        ):
            if value is not _UNSET:
                body[key] = _to_iso(value)
        if server_name is None and ("last_activity" in body or "started" in body):
            raise ValueError("last_activity/started need a server_name ('' = default server)")
        if server_name is not None and not any(k in body for k in ("last_activity", "started")):
            del body["server"]  # user fields only
        return self.admin_api("POST", "/_realhub/backdate", json=body, check=True).json()

    def set_behaviour(
        self,
        user: str,
        server_name: str = "",
        *,
        start_delay: float = 0,
        stop_delay: float = 0,
        start_fail: bool = False,
    ) -> dict:
        """Make a server's next starts/stops slow or failing (all defaults: back to normal).
        A stop_delay above slow_stop_timeout makes the hub answer 202 to a stop; a
        start_delay above slow_spawn_timeout leaves the server pending ("spawn") and the
        POST answers 202; start_fail makes the start fail (the POST answers 500).
        There is no stop_fail: the hub ignores exceptions from Spawner.stop (answers 204)."""
        body = {
            "user": user,
            "server": server_name,
            "start_delay": start_delay,
            "stop_delay": stop_delay,
            "start_fail": start_fail,
        }
        return self.admin_api("POST", "/_realhub/behaviour", json=body, check=True).json()

    def running_prefixes(self) -> list[str]:
        """URL prefixes the in-hub responder currently serves (one per running server)."""
        return self.admin_api("GET", "/_realhub/running", check=True).json()
