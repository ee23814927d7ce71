"""Benchmark one pass of this culler against the reference on a real JupyterHub.

A real JupyterHub (the version the tests pin, with configurable-http-proxy; see
tests/support/realhub.py) holds N users with running servers, of which a share is idle. Each
culler runs one pass against an identical fresh hub, alternating, and the run prints, per pass:
its wall time and bound, the CPU seconds of the hub and of the proxy during the pass (from
/proc), the culler's own CPU seconds and peak RSS, the requests by kind (from the hub's access
log) and whether exactly the idle servers are gone. See bench/README.md for the method.

    .venv/bin/python -m bench.realhub                        # the three scenarios
    .venv/bin/python -m bench.realhub --scenarios list --runs list=6
    .venv/bin/python -m bench.realhub --scenarios fast --ours-args=--api-page-size=200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

import requests

from bench.run import (
    CONCURRENCY,
    MIB,
    OURS_BIN,
    PY_SPY,
    REF_BIN,
    ensure_reference,
    fmt,
    log,
    machine,
    peak_rss_kib,
    service_env,
)
from tests.support import hubversions
from tests.support.realhub import CULLER_SCOPES, RealHub, installed, q

HERE = os.path.dirname(os.path.abspath(__file__))
HUB_CONFIG = os.path.join(HERE, "hub_config.py")
SERVICE = "culler"
TIMEOUT_S = 3600
IDLE_S = 2 * TIMEOUT_S  # back-dated last_activity of the idle servers
# The same flags for both cullers (ours also gets --once); cull-users stays off (both
# default), so a pass lists state=ready and stops servers.
CULLER_FLAGS = ("--timeout=%d" % TIMEOUT_S, "--cull-every=86400",
                "--concurrency=%d" % CONCURRENCY)
CLK_TCK = os.sysconf("SC_CLK_TCK")
HUB_DEFAULT_PAGE = 50   # JupyterHub.api_page_default_limit
HUB_MAX_PAGE = 200      # JupyterHub.api_page_max_limit

# Targets (bench/README.md, "Real hub").
LIST_MAX_CPU_SHARE = 0.65
SLOW_MAX_BOUND_RATIO = 1.15
SLOW_MIN_SPEEDUP = 8.0


@dataclass(frozen=True)
class Scenario:
    name: str
    users: int
    idle: int
    stop_delay: float
    runs: int
    # "fresh": every pass gets a hub restored from the image; "shared": a listing-only pass
    # changes nothing, so every pass runs against the same hub (restored once).
    fresh: bool = True
    page_sizes: Tuple[int, ...] = (0,)

    def idle_names(self, names: List[str]) -> List[str]:
        """``idle`` users spread evenly over the listing (every other one at 1000:500)."""
        n = len(names)
        return [names[i] for i in range(n) if (i * self.idle) // n != ((i + 1) * self.idle) // n]


@dataclass(frozen=True)
class Culler:
    """One culler as run: ``ours`` or ``reference``, maybe with extra arguments; its label is
    how --cullers named it (``ours[--concurrency=2]``)."""

    label: str
    kind: str
    extra: Tuple[str, ...] = ()


def parse_cullers(text: str) -> List[Culler]:
    """``ours,reference,ours[--concurrency=2 --api-page-size=200]`` (commas inside [] kept)."""
    entries, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            entries.append(current)
            current = ""
        else:
            current += char
    entries.append(current)
    cullers = []
    for entry in filter(None, (e.strip() for e in entries)):
        kind, _, rest = entry.partition("[")
        if kind not in ("ours", "reference") or (rest and not rest.endswith("]")):
            raise ValueError("not a culler: %r (ours or reference, optionally [arguments])"
                             % entry)
        cullers.append(Culler(entry, kind, tuple(shlex.split(rest[:-1])) if rest else ()))
    return cullers


def user_names(count: int) -> List[str]:
    return ["user-%05d" % i for i in range(count)]


# ---- /proc -----------------------------------------------------------------------------------
def cpu_seconds(pid: Optional[int]) -> float:
    """utime + stime of a whole process (every thread, dead ones included), in seconds."""
    if pid is None:
        return 0.0
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proxy_pid(hub: RealHub) -> Optional[int]:
    try:
        with open(os.path.join(hub.state_dir, "jupyterhub-proxy.pid")) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def hub_cpu(hub: RealHub, proxy: Optional[int]) -> Tuple[float, float]:
    return cpu_seconds(hub.proc.pid if hub.proc else None), cpu_seconds(proxy)


# ---- the hub's access log --------------------------------------------------------------------
ACCESS_LINE = re.compile(
    r"^\[[IWE] (\d\d):(\d\d):(\d\d)\.(\d{3}) JupyterHub log:\d+\] (\d{3}) ([A-Z]+) (\S+) "
    r"\(([^@)]*)@[^)]*\) ([\d.]+)ms$")


@dataclass
class Request:
    answered: float  # epoch seconds, when the hub logged it (the answer was written)
    method: str
    path: str
    query: Dict[str, str]
    status: int
    hub_ms: float

    @property
    def received(self) -> float:
        return self.answered - self.hub_ms / 1000.0

    @property
    def kind(self) -> str:
        path = self.path[len("/hub/api"):] if self.path.startswith("/hub/api") else self.path
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        if self.method == "GET" and not parts:
            return "GET / (version)"
        if self.method == "GET" and parts == ["user"]:
            return "GET /user (whoami)"
        if self.method == "GET" and parts == ["users"]:
            return "GET /users state=%s" % self.query.get("state", "-")
        if self.method == "DELETE" and len(parts) == 3 and parts[0] == "users" \
                and parts[2] == "server":
            return "DELETE server"
        if self.method == "DELETE" and len(parts) == 4 and parts[2] == "servers":
            return "DELETE named server"
        if self.method == "DELETE" and len(parts) == 2 and parts[0] == "users":
            return "DELETE user"
        return "%s %s" % (self.method, "/".join(parts[:1]) or "/")


def _epoch_of_day(h: int, m: int, s: int, ms: int, now: float) -> float:
    """The hub logs local wall-clock time of day: the nearest such instant to ``now``."""
    local = time.localtime(now)
    base = time.mktime((local.tm_year, local.tm_mon, local.tm_mday, h, m, s, 0, 0, -1))
    stamp = base + ms / 1000.0
    if stamp - now > 43200:
        stamp -= 86400
    elif now - stamp > 43200:
        stamp += 86400
    return stamp


class AccessLog:
    """Reads the hub's log from an offset and keeps the requests made with one service's token."""

    def __init__(self, path: str, who: str) -> None:
        self.path = path
        self.who = who
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0
        self._rest = b""
        self.requests: List[Request] = []

    def read(self) -> int:
        """Read what the hub wrote since the last call; return the number of our requests."""
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        data = self._rest + chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()  # an unfinished line waits for the next read
        now = time.time()
        for raw in lines:
            match = ACCESS_LINE.match(raw.decode("utf-8", "replace").rstrip("\r"))
            if not match or match.group(8) != self.who:
                continue
            h, m, s, ms, status, method, uri, _, took = match.groups()
            parts = urlsplit(uri)
            self.requests.append(Request(
                answered=_epoch_of_day(int(h), int(m), int(s), int(ms), now), method=method,
                path=parts.path, query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                status=int(status), hub_ms=float(took)))
        return len(self.requests)


def requests_by_kind(reqs: List[Request]) -> Dict[str, Dict[str, Any]]:
    kinds: Dict[str, Dict[str, Any]] = {}
    for r in reqs:
        entry = kinds.setdefault(r.kind, {"count": 0, "hub_ms": 0.0, "statuses": {},
                                          "params": set(), "limits": set()})
        entry["count"] += 1
        entry["hub_ms"] += r.hub_ms
        entry["statuses"][r.status] = entry["statuses"].get(r.status, 0) + 1
        entry["params"].add(",".join(sorted(r.query)))
        if "limit" in r.query:
            entry["limits"].add(r.query["limit"])
    for entry in kinds.values():
        entry["params"] = sorted(entry["params"])
        entry["limits"] = sorted(entry["limits"], key=lambda v: (len(v), v))
    return kinds


SHORT_KIND = {"GET / (version)": "version", "GET /user (whoami)": "whoami",
              "GET /users state=ready": "list-ready", "GET /users state=inactive":
              "list-inactive", "GET /users state=-": "list-all", "DELETE server": "stop",
              "DELETE named server": "stop-named", "DELETE user": "delete-user"}


def kinds_text(kinds: Dict[str, Dict[str, Any]]) -> str:
    return ", ".join("%s %d" % (SHORT_KIND.get(k, k), v["count"])
                     for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["count"]))


# ---- building the hubs -----------------------------------------------------------------------
def start_servers(hub: RealHub, names: List[str], workers: int = 8,
                  timeout: float = 900.0) -> None:
    """Start a default server for each user, ``workers`` requests at a time (429: retry)."""
    local = threading.local()
    deadline = time.monotonic() + timeout

    def start(name: str) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
            session.headers["Authorization"] = "token " + hub.admin_token
        while True:
            r = session.post("%s/users/%s/server" % (hub.api_url, q(name)), json={}, timeout=60)
            if r.status_code == 429 and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            if r.status_code not in (201, 202):
                raise RuntimeError("start %s: %d %s" % (name, r.status_code, r.text[:200]))
            return

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(start, names))
    while len(hub.list_users(state="ready")) < len(names):
        if time.monotonic() > deadline:
            raise RuntimeError("servers did not all become ready")
        time.sleep(0.5)


def write_hub_settings(state_dir: str, args: argparse.Namespace) -> None:
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, "bench-hub.json"), "w") as handle:
        json.dump({"api_page_max_limit": args.hub_page_max or None,
                   "trust_user_provided_tokens": bool(args.trust_tokens)}, handle)


def build_image(scn: Scenario, hub: RealHub, image: str,
                parent: Optional[Tuple[Scenario, str]] = None) -> Dict[str, float]:
    """Create the scenario's users and servers once, then keep the hub's database as the image
    every pass starts from (the hub leaves its servers running: cleanup_servers=False).

    With ``parent`` (a scenario with fewer users and its image), start from its database: its
    idle servers become active again (last_activity now), and only the other users are made.
    Starting servers is most of the set-up time (about 35 ms of the hub's CPU each here).
    """
    names = user_names(scn.users)
    have: List[str] = []
    timings = {}
    began = time.monotonic()
    if parent is not None:
        shutil.copyfile(parent[1], os.path.join(hub.state_dir, "jupyterhub.sqlite"))
        have = user_names(parent[0].users)
    hub.start()
    for name in (parent[0].idle_names(have) if parent is not None else []):
        hub.backdate(name, "", last_activity=0)  # 0 s ago: active again
    new = names[len(have):]
    for i in range(0, len(new), 500):
        hub.create_users(new[i:i + 500])
    timings["create_users_s"] = time.monotonic() - began
    mark = time.monotonic()
    start_servers(hub, new)
    timings["start_servers_s"] = time.monotonic() - mark
    mark = time.monotonic()
    for name in scn.idle_names(names):
        hub.backdate(name, "", last_activity=IDLE_S, started=IDLE_S + 100)
    timings["backdate_s"] = time.monotonic() - mark
    hub.stop()
    shutil.copyfile(os.path.join(hub.state_dir, "jupyterhub.sqlite"), image)
    timings["image_s"] = time.monotonic() - began
    with open(image + ".json", "w") as handle:
        json.dump({"built_at": time.time(), "ports": hub.ports, "key": image_key(scn),
                   "settings": hub_settings(hub), "timings": timings}, handle)
    return timings


def image_key(scn: Scenario) -> List[Any]:
    """What an image holds (for --reuse-images), besides how the hub hashed the tokens."""
    return [scn.users, scn.idle]


def reusable_image(scn: Scenario, image: str, hub: RealHub) -> Optional[Dict[str, Any]]:
    try:
        with open(image + ".json") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    if meta.get("key") != image_key(scn) or not os.path.exists(image):
        return None
    # the page maximum is read at start-up; how the service token is hashed is in the database
    key = "trust_user_provided_tokens"
    if (meta.get("settings") or {}).get(key) != hub_settings(hub).get(key):
        return None
    return meta


def hub_settings(hub: RealHub) -> Dict[str, Any]:
    with open(os.path.join(hub.state_dir, "bench-hub.json")) as handle:
        return json.load(handle)


def shift_times(database: str, seconds: float) -> None:
    """Move every user's and server's timestamps ``seconds`` later, so that a pass on an image
    built minutes (or, with --reuse-images, hours) ago sees the same idle times as the first."""
    delta = timedelta(seconds=seconds)

    def moved(value: Optional[str]) -> Optional[str]:
        if not value:
            return value
        return (datetime.fromisoformat(value) + delta).isoformat(sep=" ", timespec="microseconds")

    con = sqlite3.connect(database)
    try:
        with con:
            for table, columns in (("spawners", ("started", "last_activity")),
                                   ("users", ("created", "last_activity"))):
                rows = con.execute("SELECT id, %s, %s FROM %s" % (columns + (table,))).fetchall()
                con.executemany("UPDATE %s SET %s = ?, %s = ? WHERE id = ?" % ((table,) + columns),
                                [(moved(a), moved(b), row_id) for row_id, a, b in rows])
    finally:
        con.close()


def fresh_start(hub: RealHub, image: str, scn: Scenario) -> float:
    """Stop the hub, put the image's database back (its clock moved to now), start it; make the
    idle servers slow to stop."""
    began = time.monotonic()
    hub.stop()
    database = os.path.join(hub.state_dir, "jupyterhub.sqlite")
    shutil.copyfile(image, database)
    with open(image + ".json") as handle:
        shift_times(database, time.time() - json.load(handle)["built_at"])
    hub.start()
    if scn.stop_delay:
        for name in scn.idle_names(user_names(scn.users)):
            hub.set_behaviour(name, "", stop_delay=scn.stop_delay)
    return time.monotonic() - began


def settle(hub: RealHub, proxy: Optional[int], quiet_cpu_s: float = 0.02,
           window_s: float = 0.5, limit_s: float = 30.0) -> float:
    """Wait until the hub and the proxy are idle; return their CPU s/s over the last window."""
    deadline = time.monotonic() + limit_s
    while True:
        before = sum(hub_cpu(hub, proxy))
        time.sleep(window_s)
        used = sum(hub_cpu(hub, proxy)) - before
        if used <= quiet_cpu_s or time.monotonic() > deadline:
            return used / window_s


# ---- one pass --------------------------------------------------------------------------------
@dataclass
class Pass:
    scenario: str
    round: int
    culler: str
    page_size: int
    expected_requests: int
    result: Dict[str, Any] = field(default_factory=dict)


def expected_requests(scn: Scenario, page_size: int, hub_max: int) -> Tuple[int, int]:
    """(list pages, requests of one reference pass): GET /, the pages, one DELETE a stop."""
    limit = min(page_size or HUB_DEFAULT_PAGE, hub_max)
    pages = max(1, math.ceil(scn.users / limit))
    return pages, 1 + pages + scn.idle


def run_pass(hub: RealHub, scn: Scenario, culler: Culler, page_size: int, round_no: int,
             args: argparse.Namespace, logdir: str) -> Dict[str, Any]:
    hub_max = args.hub_page_max or HUB_MAX_PAGE
    pages, ref_requests = expected_requests(scn, page_size, hub_max)
    flags = ["--url=" + hub.api_url] + list(CULLER_FLAGS)
    if page_size:
        flags.append("--api-page-size=%d" % page_size)
    if culler.kind == "ours":
        command = [OURS_BIN, "--once"] + flags + shlex.split(args.ours_args) + list(culler.extra)
    else:
        command = [REF_BIN] + flags + shlex.split(args.ref_args) + list(culler.extra)
    proxy = proxy_pid(hub)
    background = settle(hub, proxy)
    access = AccessLog(str(hub.log_path), SERVICE)
    log_path = os.path.join(logdir, "%s-r%d-%s-p%d.log" % (
        scn.name, round_no, re.sub(r"[^A-Za-z0-9=.-]+", "_", culler.label), page_size))
    quiet_s = max(3.0, 2 * scn.stop_delay + 1)
    ended_by = "exit"
    spy = None
    if args.profile_hub:
        # py-spy samples the hub (all threads, 100 Hz) during the pass; it slows the hub, so
        # the figures of a profiled pass are not the benchmark's
        spy = subprocess.Popen([PY_SPY, "record", "--pid", str(hub.proc.pid), "--nolineno",
                                "--rate", "100", "--format", "raw", "--output",
                                log_path[:-len(".log")] + ".hub.pyspy.txt"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches
    with open(log_path, "wb") as log_file:
        hub0, proxy0 = hub_cpu(hub, proxy)
        spawned = time.time()
        child = subprocess.Popen(command, env=service_env(hub.api_url, hub.token(SERVICE)),
                                 stdout=log_file, stderr=subprocess.STDOUT, cwd=logdir)
        deadline = time.monotonic() + args.max_seconds
        peak_kib = 0
        try:
            if culler.kind == "ours":
                while True:
                    peak_kib = max(peak_kib, peak_rss_kib(child.pid))
                    pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                    if pid:
                        end = time.time()
                        hub1, proxy1 = hub_cpu(hub, proxy)
                        break
                    if time.monotonic() > deadline:
                        child.kill()
                        pid, status, usage = os.wait4(child.pid, 0)
                        end = time.time()
                        hub1, proxy1 = hub_cpu(hub, proxy)
                        ended_by = "TIMED OUT"
                        break
                    time.sleep(0.01)
            else:
                # The reference never ends by itself. Its pass is over once the hub has answered
                # every request a pass makes and its CPU then stays still: after its last page
                # it still judges the users it listed. Fallback: no request for quiet_s.
                last_count, last_request_at = 0, time.monotonic()
                ref_cpu, cpu_changed_at = cpu_seconds(child.pid), time.monotonic()
                end, (hub1, proxy1) = time.time(), hub_cpu(hub, proxy)
                while True:
                    peak_kib = max(peak_kib, peak_rss_kib(child.pid))
                    count = access.read()
                    now = time.monotonic()
                    if count != last_count:
                        last_count, last_request_at = count, now
                    cpu = cpu_seconds(child.pid)
                    if cpu != ref_cpu:
                        ref_cpu, cpu_changed_at = cpu, now
                        end, (hub1, proxy1) = time.time(), hub_cpu(hub, proxy)
                    done = count >= ref_requests
                    if count and now - cpu_changed_at >= 0.5 and (
                            done or now - last_request_at >= quiet_s):
                        ended_by = "all requests answered" if done else "quiet"
                        break
                    if now > deadline:
                        ended_by = "TIMED OUT"
                        break
                    time.sleep(0.01 if done else 0.05)
                if access.requests:
                    end = max(end, max(r.answered for r in access.requests))
                child.send_signal(signal.SIGTERM)
                pid, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if child.returncode is None:
                child.kill()
                child.wait()
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its samples and ends
                try:
                    spy.wait(30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait()
    time.sleep(0.2)  # let the hub flush its last access-log lines
    access.read()
    reqs = access.requests
    first = min((r.received for r in reqs), default=None)
    last = max((r.answered for r in reqs), default=None)
    # correctness: the hub's own view after the pass
    active = {u["name"] for u in hub.list_users(state="active")}
    names = user_names(scn.users)
    idle = set(scn.idle_names(names))
    missing = sorted(idle & active)
    wrong = sorted((set(names) - idle) - active)
    stops = scn.idle
    bound = math.ceil(stops / CONCURRENCY) * scn.stop_delay if scn.stop_delay else None
    kinds = requests_by_kind(reqs)
    return {
        "scenario": scn.name, "round": round_no, "culler": culler.label, "page_size": page_size,
        "users": scn.users, "idle": scn.idle, "stop_delay": scn.stop_delay,
        "pass_s": (end - first) if first is not None else None,
        "hub_window_s": (last - first) if first is not None else None,
        "startup_s": (first - spawned) if first is not None else None,
        "process_s": end - spawned,
        "bound_s": bound,
        "hub_cpu_s": hub1 - hub0, "proxy_cpu_s": proxy1 - proxy0,
        "hub_proxy_cpu_s": (hub1 - hub0) + (proxy1 - proxy0),
        "hub_background_cpu_per_s": background,
        "culler_cpu_s": usage.ru_utime + usage.ru_stime,
        "culler_rss_mib": peak_kib / MIB,  # VmHWM (see bench.run.peak_rss_kib)
        "requests": len(reqs), "kinds": kinds,
        "hub_ms_in_requests": sum(r.hub_ms for r in reqs),
        "non_2xx": sum(1 for r in reqs if r.status >= 300),
        "expected_pages": pages,
        "missing": missing, "wrong": wrong,
        "ok": not missing and not wrong and ended_by != "TIMED OUT",
        "ended_by": ended_by, "exit": child.returncode, "log": log_path,
        "command": [os.path.basename(command[0])] + command[1:],
    }


# ---- the scenarios ---------------------------------------------------------------------------
def variants(scn: Scenario, cullers: List[Culler]) -> List[Tuple[Culler, int]]:
    return [(c, p) for p in scn.page_sizes for c in cullers]


def make_hub(state_dir: str, args: argparse.Namespace) -> RealHub:
    write_hub_settings(state_dir, args)
    return RealHub(state_dir, services=[{"name": SERVICE, "scopes": CULLER_SCOPES}],
                   cleanup_servers=False, extra_config=HUB_CONFIG, start_timeout=120)


def run_scenario(scn: Scenario, hub: RealHub, cullers: List[Culler], args: argparse.Namespace,
                 workdir: str, logdir: str, parent: Optional[Tuple[Scenario, str]] = None
                 ) -> Tuple[List[Dict[str, Any]], Dict[str, float]]:
    """Build the scenario's image, then run its rounds; ``parent``: grow from that image (on
    the same RealHub: its servers' addresses and the tokens in the database stay valid)."""
    image = os.path.join(workdir, scn.name + ".image.sqlite")
    results: List[Dict[str, Any]] = []
    try:
        meta = reusable_image(scn, image, hub) if args.reuse_images else None
        if meta is not None:
            hub.ports = dict(meta["ports"])  # the servers in the image live on these ports
            timings = dict(meta["timings"], reused=1.0)
            log("%s: reusing %s (built %.0f min ago)" % (
                scn.name, image, (time.time() - meta["built_at"]) / 60))
        else:
            log("%s: building the hub: %d users, %d idle%s ..." % (
                scn.name, scn.users, scn.idle, (" (from the %s hub)" % parent[0].name) if parent
                else ""))
            timings = build_image(scn, hub, image, parent)
            log("%s: built in %.0f s (%s)" % (scn.name, timings["image_s"], ", ".join(
                "%s %.1f" % (k, v) for k, v in timings.items() if k != "image_s")))
        if not scn.fresh:
            timings["restart_s"] = fresh_start(hub, image, scn)
            warm = hub.list_users(state="ready")  # the hub's first listing warms its caches
            log("%s: hub up in %.1f s, %d ready users" % (scn.name, timings["restart_s"],
                                                          len(warm)))
        order = variants(scn, cullers)
        for round_no in range(scn.runs):
            # rotate the order each round, so neither culler always runs first
            shift = round_no % len(order)
            for culler, page_size in order[shift:] + order[:shift]:
                if scn.fresh:
                    took = fresh_start(hub, image, scn)
                    log("%s round %d: fresh hub in %.1f s" % (scn.name, round_no + 1, took))
                result = run_pass(hub, scn, culler, page_size, round_no + 1, args, logdir)
                log("%s round %d %s page %s: pass %s s, hub+proxy CPU %s s, culler CPU %s s, "
                    "%d requests, %s" % (scn.name, round_no + 1, culler.label,
                                         page_size or "default",
                                         fmt(result["pass_s"]), fmt(result["hub_proxy_cpu_s"]),
                                         fmt(result["culler_cpu_s"]), result["requests"],
                                         "ok" if result["ok"] else "NOT OK: missing %d wrong %d "
                                         "(%s)" % (len(result["missing"]), len(result["wrong"]),
                                                   result["ended_by"])))
                results.append(result)
                if not scn.fresh and (result["missing"] or result["wrong"]):
                    raise RuntimeError("a listing-only pass changed the hub")
    finally:
        hub.stop()
        left = hub.leftover_pids()
        if left:
            log("WARNING: processes left by the hub: %s" % left)
    return results, timings


# ---- tables ----------------------------------------------------------------------------------
def page_label(page_size: int) -> str:
    return str(page_size) if page_size else "default"


def runs_table(results: List[Dict[str, Any]]) -> str:
    head = ("| scenario | round | culler | page | pass s | bound s | pass / bound | hub CPU s "
            "| proxy CPU s | hub + proxy CPU s | culler CPU s | culler peak RSS MiB "
            "| requests by kind | correct |")
    lines = [head, "|" + "---|" * 14]
    for r in results:
        bound = r["bound_s"]
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["scenario"], r["round"], r["culler"], page_label(r["page_size"]), fmt(r["pass_s"]),
            fmt(bound, 1) if bound else "-",
            fmt(r["pass_s"] / bound) if bound and r["pass_s"] else "-", fmt(r["hub_cpu_s"]),
            fmt(r["proxy_cpu_s"]), fmt(r["hub_proxy_cpu_s"]), fmt(r["culler_cpu_s"]),
            fmt(r["culler_rss_mib"], 1), kinds_text(r["kinds"]),
            "yes" if r["ok"] else "NO (missing %d, wrong %d, %s)" % (
                len(r["missing"]), len(r["wrong"]), r["ended_by"])))
    return "\n".join(lines)


def _spread(values: List[float], digits: int = 2) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return fmt(values[0], digits)
    return "%s [%s-%s]" % (fmt(statistics.median(values), digits), fmt(min(values), digits),
                           fmt(max(values), digits))


def _groups(results: List[Dict[str, Any]]) -> Dict[Tuple[str, int, str], List[Dict[str, Any]]]:
    groups: Dict[Tuple[str, int, str], List[Dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["page_size"], r["culler"]), []).append(r)
    return groups


def pair_ratios(results: List[Dict[str, Any]], key: str, ours_page: int, ref_page: int,
                scenario: str, ours: str = "ours", ref: str = "reference") -> List[float]:
    """``ours`` / ``ref`` (labels) for each round: the passes of a round ran back to back."""
    ours = {r["round"]: r for r in results if r["scenario"] == scenario
            and r["culler"] == ours and r["page_size"] == ours_page}
    ref = {r["round"]: r for r in results if r["scenario"] == scenario
           and r["culler"] == ref and r["page_size"] == ref_page}
    return [ours[n][key] / ref[n][key] for n in sorted(set(ours) & set(ref))
            if ours[n][key] and ref[n][key]]


def summary_table(results: List[Dict[str, Any]]) -> str:
    head = ("| scenario | culler | page | passes | pass s | hub + proxy CPU s | hub CPU s "
            "| culler CPU s | culler peak RSS MiB | requests | all correct |")
    lines = [head, "|" + "---|" * 11]
    for (scenario, page, culler), rs in _groups(results).items():
        lines.append("| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            scenario, culler, page_label(page), len(rs), _spread([r["pass_s"] for r in rs]),
            _spread([r["hub_proxy_cpu_s"] for r in rs]), _spread([r["hub_cpu_s"] for r in rs]),
            _spread([r["culler_cpu_s"] for r in rs]),
            _spread([r["culler_rss_mib"] for r in rs], 1),
            _spread([float(r["requests"]) for r in rs], 0),
            "yes" if all(r["ok"] for r in rs) else "NO"))
    return "\n".join(lines)


def ratio_table(results: List[Dict[str, Any]]) -> str:
    head = ("| scenario | culler | page | reference page | rounds | pass: culler / reference "
            "| hub + proxy CPU: culler / reference | culler CPU: culler / reference |")
    lines = [head, "|" + "---|" * 8]
    order = [r["scenario"] for r in results]
    labels = [r["culler"] for r in results]
    for scenario in sorted(set(order), key=order.index):
        pages = sorted({r["page_size"] for r in results if r["scenario"] == scenario})
        for label in sorted(set(labels) - {"reference"}, key=labels.index):
            for ours_page in pages:
                for ref_page in pages:
                    ratios = {key: pair_ratios(results, key, ours_page, ref_page, scenario, label)
                              for key in ("pass_s", "hub_proxy_cpu_s", "culler_cpu_s")}
                    if not ratios["pass_s"]:
                        continue
                    lines.append("| %s | %s | %s | %s | %d | %s | %s | %s |" % (
                        scenario, label, page_label(ours_page), page_label(ref_page),
                        len(ratios["pass_s"]), _spread(ratios["pass_s"]),
                        _spread(ratios["hub_proxy_cpu_s"]), _spread(ratios["culler_cpu_s"])))
    return "\n".join(lines)


def requests_table(results: List[Dict[str, Any]]) -> str:
    """Each kind of request once per (scenario, culler, page size): count, parameters, limits."""
    head = ("| scenario | culler | page | request | count | query parameters | limit= "
            "| hub ms (sum) |")
    lines = [head, "|" + "---|" * 8]
    for (scenario, page, culler), rs in _groups(results).items():
        r = rs[0]
        for kind, entry in sorted(r["kinds"].items()):
            lines.append("| %s | %s | %s | %s | %d | %s | %s | %.0f |" % (
                scenario, culler, page_label(page), kind, entry["count"],
                "; ".join(p or "(none)" for p in entry["params"]),
                ",".join(entry["limits"]) or "-", entry["hub_ms"]))
    return "\n".join(lines)


def verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT MET")


def targets(results: List[Dict[str, Any]]) -> str:
    lines = []
    lst = pair_ratios(results, "hub_proxy_cpu_s", 0, 0, "list")
    if lst:
        med = statistics.median(lst)
        lines.append("- listing-only pass: hub + proxy CPU <= %.2f x the reference's (median of "
                     ">= 4 rounds, both at their default page size): %s (%.2f over %d rounds)"
                     % (LIST_MAX_CPU_SHARE, verdict(med <= LIST_MAX_CPU_SHARE and len(lst) >= 4),
                        med, len(lst)))
    big = pair_ratios(results, "hub_proxy_cpu_s", HUB_MAX_PAGE, 0, "list")
    if big:
        lines.append("  (with --api-page-size=%d for ours only: %.2f)" % (
            HUB_MAX_PAGE, statistics.median(big)))
    wall = pair_ratios(results, "pass_s", 0, 0, "fast")
    cpu = pair_ratios(results, "hub_proxy_cpu_s", 0, 0, "fast")
    if wall and cpu:
        mw, mc = statistics.median(wall), statistics.median(cpu)
        lines.append("- fast-stop pass: wall time and hub + proxy CPU <= the reference's (median "
                     "ratios): %s (wall %.2f, CPU %.2f)" % (verdict(mw <= 1 and mc <= 1), mw, mc))
    slow_ours = [r for r in results if r["scenario"] == "slow" and r["culler"] == "ours"]
    if slow_ours and slow_ours[0]["bound_s"]:
        ratio = statistics.median(r["pass_s"] / r["bound_s"] for r in slow_ours)
        lines.append("- slow-stop pass <= %.2f x its bound: %s (%.2f)" % (
            SLOW_MAX_BOUND_RATIO, verdict(ratio <= SLOW_MAX_BOUND_RATIO), ratio))
        speed = pair_ratios(results, "pass_s", 0, 0, "slow")
        if speed:
            s = 1 / statistics.median(speed)
            lines.append("- slow-stop pass >= %.0f x faster than the reference: %s (%.1f x)" % (
                SLOW_MIN_SPEEDUP, verdict(s >= SLOW_MIN_SPEEDUP), s))
    bad = [r for r in results if not r["ok"]]
    lines.append("- every pass stopped exactly the idle servers: %s%s" % (
        verdict(not bad), "" if not bad else " (%d passes not)" % len(bad)))
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------
def parse_pairs(text: str, kind=int) -> Dict[str, Any]:
    pairs = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        pairs[key.strip()] = kind(value)
    return pairs


def scenarios_from(args: argparse.Namespace) -> Dict[str, Scenario]:
    runs = {"fast": 4, "slow": 1, "list": 4}
    runs.update(parse_pairs(args.runs))
    page_sizes = tuple(int(p) for p in args.list_page_sizes.split(",") if p != "")
    return {
        "fast": Scenario("fast", args.fast_users, args.fast_idle, 0.0, runs["fast"],
                         page_sizes=(args.page_size,)),
        "slow": Scenario("slow", args.slow_users, args.slow_idle, args.stop_delay, runs["slow"],
                         page_sizes=(args.page_size,)),
        "list": Scenario("list", args.list_users, 0, 0.0, runs["list"], fresh=False,
                         page_sizes=page_sizes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="fast,list,slow",
                        help="which of fast, slow, list (default: %(default)s)")
    parser.add_argument("--cullers", default="ours,reference",
                        help="comma-separated: ours, reference, each optionally with extra "
                        "arguments, e.g. 'ours,ours[--concurrency=2],reference' (default: "
                        "%(default)s)")
    parser.add_argument("--runs", default="",
                        help="rounds per scenario, e.g. fast=4,slow=1,list=4 (the defaults); "
                        "a round runs every culler once, in an order that rotates")
    parser.add_argument("--fast-users", type=int, default=1000)
    parser.add_argument("--fast-idle", type=int, default=500)
    parser.add_argument("--slow-users", type=int, default=200)
    parser.add_argument("--slow-idle", type=int, default=100)
    parser.add_argument("--stop-delay", type=float, default=2.0,
                        help="seconds each stop takes in the slow scenario (default 2)")
    parser.add_argument("--list-users", type=int, default=3000)
    parser.add_argument("--list-page-sizes", default="0,%d" % HUB_MAX_PAGE,
                        help="--api-page-size values of the listing-only scenario, for both "
                        "cullers; 0 = the hub's default (default: %(default)s)")
    parser.add_argument("--page-size", type=int, default=0,
                        help="--api-page-size of both cullers in the fast and slow scenarios "
                        "(default 0: the hub's default)")
    parser.add_argument("--ours-args", default="", help="extra arguments for this culler")
    parser.add_argument("--ref-args", default="", help="extra arguments for the reference")
    parser.add_argument("--hub-page-max", type=int, default=0,
                        help="the hub's JupyterHub.api_page_max_limit (default: its own, 200)")
    parser.add_argument("--trust-tokens", action="store_true",
                        help="JupyterHub.trust_user_provided_tokens = True (no 16384-round "
                        "hash of the service token on every request)")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="give up on one pass after this long (default %(default)s)")
    parser.add_argument("--workdir", help="hub state, images and logs (default: a temp dir, "
                        "removed at the end except the logs)")
    parser.add_argument("--reuse-images", action="store_true",
                        help="with --workdir: start from the hubs a previous run built there "
                        "(same sizes and hub settings) instead of building them again")
    parser.add_argument("--profile-hub", action="store_true",
                        help="sample the hub with py-spy during each pass: "
                        "<logdir>/<pass>.hub.pyspy.txt (see bench/profile.py)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    ok, why = installed()
    if not ok:
        parser.error("no real hub: %s" % why)
    try:
        cullers = parse_cullers(args.cullers)
    except ValueError as exc:
        parser.error(str(exc))
    if not cullers or len({c.label for c in cullers}) != len(cullers):
        parser.error("--cullers: name each culler once")
    known = scenarios_from(args)
    names = [s for s in args.scenarios.split(",") if s]
    if set(names) - set(known):
        parser.error("--scenarios takes fast, slow and/or list")
    if args.profile_hub and not os.path.exists(PY_SPY):
        parser.error("--profile-hub needs py-spy: .venv/bin/python -m pip install py-spy")
    if any(c.kind == "reference" for c in cullers):
        ensure_reference()
    if args.reuse_images and not args.workdir:
        parser.error("--reuse-images needs --workdir")
    workdir = args.workdir or tempfile.mkdtemp(prefix="culler-realhub-")
    logdir = os.path.join(workdir, "logs")
    os.makedirs(logdir, exist_ok=True)
    results: List[Dict[str, Any]] = []
    setup: Dict[str, Dict[str, float]] = {}
    began = time.monotonic()
    images: Dict[str, Tuple[Scenario, str]] = {}
    hubs: Dict[str, RealHub] = {}
    for name in names:
        scn = known[name]
        # the listing-only hub grows from the fast one when that was built (same user names)
        parent = images.get("fast") if name == "list" else None
        if parent is not None and parent[0].users <= scn.users:
            hub = hubs["fast"]
        else:
            parent = None
            hub = make_hub(os.path.join(workdir, name), args)
        hubs[name] = hub
        scn_results, setup[name] = run_scenario(scn, hub, cullers, args, workdir, logdir,
                                                parent)
        images[name] = (scn, os.path.join(workdir, name + ".image.sqlite"))
        results.extend(scn_results)
    total = time.monotonic() - began
    print("machine: %s" % machine())
    print("hub: JupyterHub %s + configurable-http-proxy, sqlite; page max %d; service token %s"
          % (hub_version(), args.hub_page_max or HUB_MAX_PAGE,
             "trusted (1 hash round)" if args.trust_tokens else "from the config (16384 rounds)"))
    print("flags (both): %s%s (ours also --once)" % (
        " ".join(CULLER_FLAGS), (" ours: " + args.ours_args) if args.ours_args else ""))
    for name in names:
        scn = known[name]
        print("%s: %d users, %d idle, stop %g s, %d rounds; hub built in %.0f s" % (
            name, scn.users, scn.idle, scn.stop_delay, scn.runs, setup[name]["image_s"]))
    print()
    print(runs_table(results))
    print()
    print(summary_table(results))
    print()
    print(ratio_table(results))
    print()
    print(requests_table(results))
    print()
    print("targets:")
    print(targets(results))
    print()
    print("logs: %s; whole run %.0f s" % (logdir, total))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"results": results, "setup": setup, "argv": sys.argv[1:]}, handle,
                      indent=1)
    if not args.workdir:
        for hub in hubs.values():
            shutil.rmtree(hub.state_dir, ignore_errors=True)
        for name in names:
            for suffix in (".image.sqlite", ".image.sqlite.json"):
                try:
                    os.remove(os.path.join(workdir, name + suffix))
                except OSError:
                    pass
    return 0


def hub_version() -> str:
    try:
        out = subprocess.run([str(hubversions.get().hub_bin), "--version"], capture_output=True,
                             text=True, timeout=30)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
