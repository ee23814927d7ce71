#!/usr/bin/python3
"""A tiny stand-in JupyterHub API for .ci/nspawn-e2e.sh (stdlib only, Debian's python3).

Serves, under /hub/api:
  GET    /                        {"version": ...}
  GET    /user                    the token's owner, with "scopes"
  GET    /users                   ?state=ready|active|inactive&offset=&limit=; the paginated
                                  answer ({"items": [...], "_pagination": {...}}) when the
                                  Accept header asks for it, as JupyterHub >= 2.0 does
  DELETE /users/{name}/server     stops the default server (204), 404 when there is none
  DELETE /users/{name}            deletes the user (204)
and, without authentication, POST /_reset to restore the initial users, and
POST /_slow?seconds=N to make the next GET /hub/api/ answer N seconds late (so that a
reload's preflight lasts long enough to be seen from systemd).

Every token has a world of its own (so side-by-side culler instances don't see each other's
stops); each starts with one idle user ("jürgen": a non-ASCII name, so its DELETE path must
be percent-encoded) and one active user ("active"). Tokens are given as NAME=SCOPES, where
SCOPES is a comma-separated list or "all"; any other token gets 403.

Every request is appended to --record as one JSON line:
  {"method": "DELETE", "path": "/hub/api/users/jürgen/server", "token": "tok-alpha",
   "query": "", "status": 204}
The chosen port is written to --port-file once listening.

Usage: tiny_hub.py --port-file F --record F --token tok-alpha=all --token tok-x=list:users
"""

import argparse
import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

VERSION = "5.2.1"
PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"
ALL_SCOPES = ["list:users", "read:users", "read:users:activity", "read:servers",
              "delete:servers", "admin:users", "read:users:groups"]
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def initial_users():
    """Fresh models: "jürgen" idle for two days, "active" busy right now."""
    now = datetime.now(timezone.utc)
    users = {}
    for name, idle in (("jürgen", timedelta(days=2)), ("active", timedelta(0))):
        seen = now - idle
        server = {"name": "", "ready": True, "pending": None, "stopped": False,
                  "started": iso(now - timedelta(days=3)), "last_activity": iso(seen),
                  "url": "/user/%s/" % name, "progress_url": "", "state": {},
                  "user_options": {}}
        users[name] = {"kind": "user", "name": name, "admin": False, "groups": [],
                       "roles": ["user"], "pending": None, "server": server["url"],
                       "created": iso(now - timedelta(days=30)), "last_activity": iso(seen),
                       "servers": {"": server}}
    return users


class Hub:
    def __init__(self, tokens, record_path):
        self.tokens = tokens  # token -> list of scopes
        self.record_path = record_path
        self.lock = threading.Lock()
        self.worlds = {}
        self.slow_version_s = 0.0  # the next GET /hub/api/ waits this long

    def world(self, token):
        with self.lock:
            return self.worlds.setdefault(token, initial_users())

    def reset(self):
        with self.lock:
            self.worlds.clear()

    def record(self, entry):
        with self.lock, open(self.record_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")


class Handler(BaseHTTPRequestHandler):
    hub = None  # set on the class before serving
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the record file says it all
        pass

    def _token(self):
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() in ("token", "bearer") else ""

    def _answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return status

    def _handle(self, method):
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        token = self._token()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status = self._route(method, path, parse_qs(parts.query), token)
        self.hub.record({"method": method, "path": path, "token": token,
                         "query": parts.query, "status": status})

    def _route(self, method, path, query, token):
        if method == "POST" and path == "/_reset":
            self.hub.reset()
            return self._answer(200, {})
        if method == "POST" and path == "/_slow":
            with self.hub.lock:
                self.hub.slow_version_s = float((query.get("seconds") or ["0"])[0])
            return self._answer(200, {})
        if method == "GET" and path in ("/hub/api", "/hub/api/"):
            with self.hub.lock:
                delay, self.hub.slow_version_s = self.hub.slow_version_s, 0.0
            time.sleep(delay)
            return self._answer(200, {"version": VERSION})
        if token not in self.hub.tokens:
            return self._answer(403, {"status": 403, "message": "invalid token"})
        scopes = self.hub.tokens[token]
        users = self.hub.world(token)
        if method == "GET" and path == "/hub/api/user":
            return self._answer(200, {"kind": "service", "name": "culler-" + token,
                                      "admin": False, "roles": [], "scopes": scopes})
        if method == "GET" and path == "/hub/api/users":
            return self._list(users, query)
        segments = path.split("/")  # ['', 'hub', 'api', 'users', name, ...]
        if method == "DELETE" and len(segments) == 6 and segments[3:6:2] == ["users", "server"]:
            with self.hub.lock:
                user = users.get(segments[4])
                if user is None or "" not in user["servers"]:
                    return self._answer(404, {"status": 404, "message": "no server"})
                del user["servers"][""]
                user["server"] = None
            return self._answer(204)
        if method == "DELETE" and len(segments) == 5 and segments[3] == "users":
            with self.hub.lock:
                if users.pop(segments[4], None) is None:
                    return self._answer(404, {"status": 404, "message": "no such user"})
            return self._answer(204)
        return self._answer(404, {"status": 404, "message": "not found"})

    def _list(self, users, query):
        state = (query.get("state") or [""])[0]
        offset = int((query.get("offset") or ["0"])[0])
        limit = min(int((query.get("limit") or [str(DEFAULT_LIMIT)])[0]), MAX_LIMIT)
        with self.hub.lock:
            chosen = []
            for name in sorted(users):
                servers = users[name]["servers"].values()
                if state == "ready" and not any(s["ready"] for s in servers):
                    continue
                if state == "active" and not servers:
                    continue
                if state == "inactive" and servers:
                    continue
                chosen.append(json.loads(json.dumps(users[name])))
        page = chosen[offset:offset + limit]
        if PAGINATION_MEDIA_TYPE not in self.headers.get("Accept", ""):
            return self._answer(200, chosen)
        following = None
        if offset + limit < len(chosen):
            following = {"offset": offset + limit, "limit": limit,
                         "url": "http://hub.invalid/hub/api/users?offset=%d" % (offset + limit)}
        return self._answer(200, {"items": page, "_pagination": {
            "offset": offset, "limit": limit, "total": len(chosen), "next": following}})

    def do_GET(self):
        self._handle("GET")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_POST(self):
        self._handle("POST")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--token", action="append", default=[], metavar="NAME=SCOPES")
    args = parser.parse_args()
    tokens = {}
    for item in args.token:
        name, _, scopes = item.partition("=")
        tokens[name] = ALL_SCOPES if scopes == "all" else [s for s in scopes.split(",") if s]
    Handler.hub = Hub(tokens, args.record)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w", encoding="utf-8") as out:
        out.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
