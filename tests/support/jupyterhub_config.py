# JupyterHub configuration for the real-hub tests and for `make demo`.
#
# Loaded by `.venv-hub/bin/jupyterhub -f tests/realhub/jupyterhub_config.py`, started by
# tests/support/realhub.py, which sets these environment variables:
#
#   REALHUB_STATE_DIR        temporary directory: database, cookie secret, pid files
#   REALHUB_PORT             public (proxy) port on 127.0.0.1
#   REALHUB_HUB_PORT         the hub's own port on 127.0.0.1 (the REST API lives here)
#   REALHUB_PROXY_API_PORT   configurable-http-proxy's API port
#   REALHUB_RESPONDER_PORT   port of the in-hub responder that plays every single-user server
#   REALHUB_SERVICES_JSON    JSON file: {"services": [{name, token, scopes, command?,
#                            environment?, admin?}], ...}
#   REALHUB_MARKER           a unique string put into the environment of every process the
#                            hub starts, so that the harness can find leftovers
# and optionally REALHUB_CLEANUP_SERVERS (1/0), REALHUB_LAST_ACTIVITY_INTERVAL (seconds, 0 =
# never pull activity from the proxy), REALHUB_SLOW_STOP_TIMEOUT, REALHUB_SLOW_SPAWN_TIMEOUT,
# REALHUB_CONCURRENT_SPAWN_LIMIT, REALHUB_LOG_LEVEL, REALHUB_INTERNAL_SSL (1: the hub's
# internal SSL, certificates in STATE_DIR/internal-ssl), REALHUB_SERVICE_POLL_INTERVAL
# (seconds between the hub's checks that a managed service still runs; it restarts one that
# exited; the hub's own default is 30), REALHUB_SPAWNER ("inhub", the default, or "process":
# real jupyterhub-singleuser servers, see the end of the servers part) and
# REALHUB_EXTRA_CONFIG (a Python file run last, with the same `c`).
#
# It is a test fixture: no single-user server process is started (see InHubSpawner) unless
# REALHUB_SPAWNER=process asks for real ones, and a test-only API under /hub/api/_realhub/
# rewrites timestamps in the hub's database.
#
# One file for every JupyterHub of tests/realhub/hub-versions.txt (1.5 to 6.1). What differs:
# before 2.0 there are no roles or scopes (every service is `admin: True`, the test API is
# admin-only), and before 5.0 there is no Authenticator.allow_all (everyone is allowed).

import asyncio
import json
import os
from datetime import datetime, timezone
from urllib.parse import unquote

import jupyterhub
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.spawner import Spawner
from tornado import web

HUB_VERSION = tuple(int(part) for part in jupyterhub.version_info[:2])
HAS_ROLES = HUB_VERSION >= (2, 0)  # roles, scopes and load_roles came with JupyterHub 2.0

if HAS_ROLES:
    from jupyterhub.scopes import needs_scope

    _ADMIN_ONLY = needs_scope("admin:users")
else:
    from jupyterhub.utils import admin_only as _ADMIN_ONLY

c = get_config()  # noqa: F821  (provided by traitlets when the file is loaded)


def _env(name, default=None):
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise RuntimeError(f"jupyterhub_config.py: {name} is not set (see realhub.py)")
        return default
    return value


STATE_DIR = _env("REALHUB_STATE_DIR")
PORT = int(_env("REALHUB_PORT"))
HUB_PORT = int(_env("REALHUB_HUB_PORT"))
PROXY_API_PORT = int(_env("REALHUB_PROXY_API_PORT"))
RESPONDER_PORT = int(_env("REALHUB_RESPONDER_PORT"))
MARKER = _env("REALHUB_MARKER", "realhub")
with open(_env("REALHUB_SERVICES_JSON")) as f:
    SPEC = json.load(f)

# --- network, files --------------------------------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
INTERNAL_SSL = _env("REALHUB_INTERNAL_SSL", "0") == "1"
# With internal SSL the hub serves its API over TLS, and so does the proxy's API.
INTERNAL_SCHEME = "https" if INTERNAL_SSL else "http"
c.JupyterHub.hub_bind_url = f"{INTERNAL_SCHEME}://127.0.0.1:{HUB_PORT}"
c.ConfigurableHTTPProxy.api_url = f"{INTERNAL_SCHEME}://127.0.0.1:{PROXY_API_PORT}"
c.ConfigurableHTTPProxy.pid_file = os.path.join(STATE_DIR, "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.debug = False
c.JupyterHub.db_url = "sqlite:///" + os.path.join(STATE_DIR, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(STATE_DIR, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(STATE_DIR, "jupyterhub.pid")
c.JupyterHub.log_level = _env("REALHUB_LOG_LEVEL", "INFO")
c.JupyterHub.log_datefmt = "%H:%M:%S"

# --- behaviour that matters to a culler ------------------------------------------------------
# Pulling activity from the proxy (every last_activity_interval s) would undo back-dating.
c.JupyterHub.last_activity_interval = int(_env("REALHUB_LAST_ACTIVITY_INTERVAL", "0"))
c.JupyterHub.cleanup_servers = _env("REALHUB_CLEANUP_SERVERS", "1") == "1"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0  # unlimited
c.JupyterHub.concurrent_spawn_limit = int(_env("REALHUB_CONCURRENT_SPAWN_LIMIT", "100"))
c.JupyterHub.active_server_limit = 0
c.JupyterHub.tornado_settings = {
    "slow_stop_timeout": float(_env("REALHUB_SLOW_STOP_TIMEOUT", "10")),
    "slow_spawn_timeout": float(_env("REALHUB_SLOW_SPAWN_TIMEOUT", "10")),
}
c.JupyterHub.authenticator_class = "dummy"
if HUB_VERSION >= (5, 0):  # before 5.0 an empty allow list lets everyone in
    c.Authenticator.allow_all = True
c.Authenticator.admin_users = set()  # the harness makes admins through the API
c.JupyterHub.admin_access = False

# --- internal SSL ----------------------------------------------------------------------------
# The hub makes its certificate authorities and certificates in internal-ssl/ at start-up; its
# API then answers only TLS clients presenting a certificate it trusts, and every managed
# service gets JUPYTERHUB_SSL_KEYFILE, _CERTFILE and _CLIENT_CA. Servers stay plain http
# (InHubSpawner returns an http URL): only the hub's API matters to a culler.
if INTERNAL_SSL:
    c.JupyterHub.internal_ssl = True
    c.JupyterHub.internal_certs_location = os.path.join(STATE_DIR, "internal-ssl")

# --- how fast the hub notices that a managed service exited (and starts it again) ------------
_SERVICE_POLL = int(_env("REALHUB_SERVICE_POLL_INTERVAL", "0"))
if _SERVICE_POLL > 0:
    # The hub builds each service's process spawner without any configuration, so
    # Spawner.poll_interval does not reach it: give the hub a subclass with another default.
    from jupyterhub.services import service as _service_module
    from traitlets import Integer as _Integer

    class _QuickPollServiceSpawner(_service_module._ServiceSpawner):
        poll_interval = _Integer(_SERVICE_POLL)

    _service_module._ServiceSpawner = _QuickPollServiceSpawner

# --- services and their roles ----------------------------------------------------------------
services = []
roles = []
admin_services = []
for svc in SPEC.get("services", []):
    entry = {"name": svc["name"], "api_token": svc["token"]}
    if svc.get("command"):
        entry["command"] = list(svc["command"])
        environment = dict(svc.get("environment") or {})
        environment["REALHUB_MARKER"] = MARKER
        entry["environment"] = environment
        if svc.get("cwd"):
            entry["cwd"] = svc["cwd"]
    if not HAS_ROLES:
        # no scopes to give: a service that needs any gets everything (the 1.x way)
        if svc.get("admin") or svc.get("scopes"):
            entry["admin"] = True
        services.append(entry)
        continue
    services.append(entry)
    if svc.get("admin"):
        admin_services.append(svc["name"])
    if svc.get("scopes"):
        roles.append(
            {
                "name": "realhub-" + svc["name"],
                "description": "test role of service " + svc["name"],
                "scopes": list(svc["scopes"]),
                "services": [svc["name"]],
            }
        )
if admin_services:
    # the built-in admin role: every scope, including granting admin to users
    roles.append({"name": "admin", "services": admin_services})
c.JupyterHub.services = services
if HAS_ROLES:
    c.JupyterHub.load_roles = roles


# --- servers without processes ---------------------------------------------------------------
# One HTTP responder inside the hub plays every single-user server: it answers any request
# below the URL prefix of a running server (the hub's readiness check is GET <prefix>api,
# anything < 500 counts). Starting or stopping a server only adds or removes its prefix.
# Per-server behaviour (delays, failures) is set through the test API below.

_RUNNING_PREFIXES = set()  # as the hub writes them (server.base_url)
_RUNNING_UNQUOTED = set()  # the same, unescaped, for matching requests


def _set_running(prefix, running):
    if running:
        _RUNNING_PREFIXES.add(prefix)
        _RUNNING_UNQUOTED.add(unquote(prefix))
    else:
        _RUNNING_PREFIXES.discard(prefix)
        _RUNNING_UNQUOTED.discard(unquote(prefix))


_BEHAVIOUR = {}  # (user name, server name) -> {"start_delay", "stop_delay", "start_fail"}
# What each server was sent, as a user's own server would see it: the last 200 requests'
# paths and Authorization headers (GET /hub/api/_realhub/recorded, for the tests of what the
# culler sends a user's server).
_RECORDED = []
_RESPONDER = {"server": None}
# Scripted answers (POST /hub/api/_realhub/answer), by the unescaped request path of a running
# server: {"headers": [[name, value], ...], "body": JSON, "stream_bytes": N}. With
# stream_bytes the body is N bytes of spaces, sent in chunks without a Content-Length (a
# hostile server's huge answer); the sending ends when the client goes away.
_SCRIPTED = {}
_STREAM_CHUNK = b" " * 65536


class _ResponderHandler(web.RequestHandler):
    async def _scripted(self, script):
        for name, value in script.get("headers") or ():
            self.add_header(name, value)
        self.set_header("Content-Type", "application/json")
        size = int(script.get("stream_bytes") or 0)
        if not size:
            self.finish(json.dumps(script.get("body")))
            return
        from tornado.iostream import StreamClosedError

        try:
            for _ in range(-(-size // len(_STREAM_CHUNK))):
                self.write(_STREAM_CHUNK)
                await self.flush()
            self.finish()
        except StreamClosedError:
            pass  # the client stopped reading

    async def _answer(self):
        path = self.request.path
        _RECORDED.append({"path": path, "query": self.request.query,
                          "authorization": self.request.headers.get("Authorization"),
                          "cookie": self.request.headers.get("Cookie")})
        del _RECORDED[:-200]
        # The hub asks with its own escaping (/user/c@d.org/api), a client through the proxy
        # may send another (/user/c%40d.org/api): compare unescaped. Prefixes are
        # /user/<name>/ or /user/<name>/<server>/ (names cannot contain "/").
        parts = unquote(path).split("/")
        candidates = {"/".join(parts[:3]) + "/", "/".join(parts[:4]) + "/"}
        if candidates & _RUNNING_UNQUOTED:
            if unquote(path) in _SCRIPTED:
                await self._scripted(_SCRIPTED[unquote(path)])
                return
            self.set_header("X-JupyterHub-Version", jupyterhub.__version__)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"realhub": True, "path": path}))
            return
        self.set_status(503)
        self.finish(json.dumps({"message": "no such server (realhub responder)"}))

    async def get(self, *args):
        await self._answer()

    head = post = put = delete = patch = get

    def log_exception(self, *args, **kwargs):  # quiet
        pass


def _ensure_responder():
    if _RESPONDER["server"] is None:
        from tornado.httpserver import HTTPServer

        app = web.Application([(r"/.*", _ResponderHandler)], log_function=lambda h: None)
        server = HTTPServer(app)
        server.listen(RESPONDER_PORT, address="127.0.0.1")
        _RESPONDER["server"] = server
    return RESPONDER_PORT


class InHubSpawner(Spawner):
    """A Spawner that starts nothing: its 'server' is a URL prefix of the in-hub responder."""

    def _key(self):
        return (self.user.name, self.name or "")

    def _prefix(self):
        return self.server.base_url if self.server else None

    def load_state(self, state):
        super().load_state(state)
        # after a restart with cleanup_servers = False: the server is still "running"
        prefix = state.get("realhub_prefix")
        if prefix:
            _ensure_responder()
            _set_running(prefix, True)
            self._realhub_prefix = prefix

    def get_state(self):
        state = super().get_state()
        prefix = getattr(self, "_realhub_prefix", None)
        if prefix:
            state["realhub_prefix"] = prefix
        return state

    def clear_state(self):
        super().clear_state()
        self._realhub_prefix = None

    async def start(self):
        port = _ensure_responder()
        behaviour = _BEHAVIOUR.get(self._key(), {})
        if behaviour.get("start_delay"):
            await asyncio.sleep(float(behaviour["start_delay"]))
        if behaviour.get("start_fail"):
            raise RuntimeError("realhub: start_fail set for this server")
        prefix = self._prefix()
        self._realhub_prefix = prefix
        _set_running(prefix, True)
        # a URL, not (ip, port): with internal_ssl the hub would make that https
        return f"http://127.0.0.1:{port}"

    async def poll(self):
        prefix = getattr(self, "_realhub_prefix", None)
        if prefix and prefix in _RUNNING_PREFIXES:
            return None
        return 0

    async def stop(self, now=False):
        behaviour = _BEHAVIOUR.get(self._key(), {})
        if behaviour.get("stop_delay") and not now:
            await asyncio.sleep(float(behaviour["stop_delay"]))
        prefix = getattr(self, "_realhub_prefix", None)
        if prefix:
            _set_running(prefix, False)


c.JupyterHub.spawner_class = InHubSpawner
c.Spawner.poll_interval = 30
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 30


# --- real single-user servers (REALHUB_SPAWNER=process) --------------------------------------
# For the few tests that need what only a real jupyter-server has (kernels, its own
# last_activity): jupyterhub-singleuser from the hub's own environment (jupyter_server and
# ipykernel are installed there by scripts/install-realhub.sh), one process per server, as the
# hub's user. It must not post activity to the hub (JUPYTERHUB_ACTIVITY_INTERVAL=0), or the
# back-dated hub view would not stick; as root it needs allow_root. The marker lets the
# harness find the servers and their kernels if the hub leaves any behind.
if _env("REALHUB_SPAWNER", "inhub") == "process":
    import sys

    from jupyterhub.spawner import SimpleLocalProcessSpawner

    c.JupyterHub.spawner_class = SimpleLocalProcessSpawner
    c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(STATE_DIR, "home", "{username}")
    c.Spawner.cmd = [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
    c.Spawner.args = ["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []
    c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": "0", "REALHUB_MARKER": MARKER}


# --- test-only API ---------------------------------------------------------------------------
# POST /hub/api/_realhub/backdate  {"user": name, "server": name (absent: user only; "" for the
#     default server), "last_activity", "started", "user_last_activity", "created": ISO 8601
#     strings (a zone is honoured; none means UTC) or null to clear the field}
#     -> 200 with the values now stored
# POST /hub/api/_realhub/behaviour {"user", "server", "start_delay", "stop_delay",
#     "start_fail"}: replaces the behaviour of that server's next starts/stops. (No
#     "stop_fail": the hub swallows exceptions from Spawner.stop, answers 204 and marks the
#     server stopped anyway, so a failing stop cannot be told from a good one.)
# GET  /hub/api/_realhub/running   the responder's running URL prefixes
# GET  /hub/api/_realhub/recorded  what the responder was sent (last 200 requests)
# POST /hub/api/_realhub/answer    {"path": "/user/NAME/api/status", "headers": [[name, value]],
#     "body": JSON, "stream_bytes": N}: how the responder answers GETs of that path while its
#     server runs (see _SCRIPTED); only {"path"}: back to the default answer
# Every call needs a token with admin:users (the harness's admin service; an admin before 2.0).

_MISSING = object()


def _parse_ts(value):
    if value is None:
        return None
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt  # the hub stores naive UTC


def _iso(dt):
    return None if dt is None else dt.replace(tzinfo=timezone.utc).isoformat()


class BackdateHandler(APIHandler):
    @_ADMIN_ONLY
    def post(self):
        body = self.get_json_body() or {}
        user = self.find_user(body.get("user") or "")
        if user is None:
            raise web.HTTPError(404, "No such user: %r" % body.get("user"))
        result = {"user": user.name}
        try:
            if "user_last_activity" in body:
                user.orm_user.last_activity = _parse_ts(body["user_last_activity"])
            if "created" in body:
                user.orm_user.created = _parse_ts(body["created"])
            server_name = body.get("server", _MISSING)
            if server_name is not _MISSING and server_name is not None:
                orm_spawner = user.orm_spawners.get(server_name)
                if orm_spawner is None:
                    raise web.HTTPError(404, f"No such server {server_name!r} for {user.name}")
                if "last_activity" in body:
                    orm_spawner.last_activity = _parse_ts(body["last_activity"])
                if "started" in body:
                    orm_spawner.started = _parse_ts(body["started"])
                result["server"] = server_name
                result["last_activity"] = _iso(orm_spawner.last_activity)
                result["started"] = _iso(orm_spawner.started)
            elif "last_activity" in body or "started" in body:
                raise web.HTTPError(400, "last_activity/started need 'server' ('' = default)")
        except ValueError as e:
            self.db.rollback()
            raise web.HTTPError(400, f"bad timestamp: {e}") from None
        self.db.commit()
        result["user_last_activity"] = _iso(user.orm_user.last_activity)
        result["created"] = _iso(user.orm_user.created)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))


class BehaviourHandler(APIHandler):
    @_ADMIN_ONLY
    def post(self):
        body = self.get_json_body() or {}
        key = (body.get("user") or "", body.get("server") or "")
        behaviour = {k: body[k] for k in ("start_delay", "stop_delay", "start_fail") if body.get(k)}
        if behaviour:
            _BEHAVIOUR[key] = behaviour
        else:
            _BEHAVIOUR.pop(key, None)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"user": key[0], "server": key[1], "behaviour": behaviour}))


class RunningHandler(APIHandler):
    @_ADMIN_ONLY
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(sorted(_RUNNING_PREFIXES)))


class AnswerHandler(APIHandler):
    @_ADMIN_ONLY
    def post(self):
        body = self.get_json_body() or {}
        path = unquote(body.get("path") or "")
        script = {k: body[k] for k in ("headers", "body", "stream_bytes") if k in body}
        if script:
            _SCRIPTED[path] = script
        else:
            _SCRIPTED.pop(path, None)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"path": path, "scripted": sorted(script)}))


class RecordedHandler(APIHandler):
    @_ADMIN_ONLY
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(_RECORDED))


# extra_handlers is deprecated since JupyterHub 3.1 (it logs a warning) but works in 6.1.1.
c.JupyterHub.extra_handlers = [
    (r"/api/_realhub/backdate", BackdateHandler),
    (r"/api/_realhub/behaviour", BehaviourHandler),
    (r"/api/_realhub/running", RunningHandler),
    (r"/api/_realhub/recorded", RecordedHandler),
    (r"/api/_realhub/answer", AnswerHandler),
]


# --- extra configuration ---------------------------------------------------------------------
# REALHUB_EXTRA_CONFIG names a Python file run last with this same `c` (the benchmark adds its
# own settings this way); nothing happens when it is unset or empty.
_EXTRA_CONFIG = os.environ.get("REALHUB_EXTRA_CONFIG")
if _EXTRA_CONFIG:
    with open(_EXTRA_CONFIG) as _f:
        exec(compile(_f.read(), _EXTRA_CONFIG, "exec"), {"c": c, "__file__": _EXTRA_CONFIG})
