"""The benchmark's fake hub, in a process of its own (so its CPU is not mixed with a culler's).

It serves ``tests.support.fakehub.FakeHub`` (threaded, in memory, JupyterHub 6.1.1's pagination and
stop answers) loaded with the seeded dataset of ``bench/dataset.py``, with per-request latency
for list pages and stops, and the stops of ``*-slow`` users answering 202. With ``--kernels``
it also plays the proxy and the single-user servers behind it for ``--check-kernels``
(``dataset.add_kernels``: some idle servers have a busy kernel, some idle kernels, some recent
activity of their own), each answer after ``--server-latency``.

Protocol with the driver (``bench/run.py``), one JSON object per line:
  * on start-up it prints ``{"port", "token", "expected": {...}}`` to stdout;
  * then it reads commands on stdin: ``status`` (requests so far, in flight, seconds since the
    last answer, whether every expected DELETE was answered), ``report`` (the full record of
    the run: timings, requests, connections, missing and wrong culls, its own CPU) and
    ``quit``. stdin closing also ends it.

Times are ``time.monotonic()`` values: CLOCK_MONOTONIC is system-wide on Linux, so the driver
can compare them with its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from bench import dataset
from tests.support.fakehub import (
    ROUTE_DELETE_USER,
    ROUTE_LIST_USERS,
    ROUTE_REVOKE_TOKEN,
    ROUTE_STOP_SERVER,
    FakeHub,
    RequestRecord,
)


class BenchHub(FakeHub):
    """FakeHub that also remembers when the last answer left (for quiet detection)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.last_answer = 0.0

    def _finish(self, record: RequestRecord) -> None:
        super()._finish(record)
        self.last_answer = time.monotonic()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: List[float], fraction: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Judge:
    """Compares the DELETEs the hub received with what a correct pass sends."""

    def __init__(self, expect: dataset.Expectation) -> None:
        self.expect = expect

    def answered(self, hub: FakeHub) -> bool:
        """True once every expected DELETE was answered (whatever the status)."""
        stops, deletes = set(), set()
        for record in hub.records("DELETE"):
            if record.ended is None:
                continue
            if record.route == ROUTE_STOP_SERVER:
                stops.add((record.user, record.server or ""))
            elif record.route == ROUTE_DELETE_USER:
                deletes.add(record.user)
        return self.expect.stops <= stops and self.expect.deletes <= deletes

    def judge(self, records: List[RequestRecord]) -> Dict[str, Any]:
        done_stops: Counter = Counter()
        done_deletes: Counter = Counter()
        wrong: List[str] = []
        for record in records:
            if record.method != "DELETE" or record.route == ROUTE_REVOKE_TOKEN:
                continue  # a kernel check's token revoked is no cull
            # http.server reads the request line as latin-1: show non-ASCII bytes as UTF-8.
            path = record.path.encode("latin-1", "replace").decode("utf-8", "replace")
            target = "%s %s" % (record.method, path)
            if record.route == ROUTE_STOP_SERVER:
                key = (record.user, record.server or "")
                if key in self.expect.stops:
                    if record.status in (200, 202, 204):
                        done_stops[key] += 1
                    continue
                wrong.append("%s -> %s" % (target, record.status))
            elif record.route == ROUTE_DELETE_USER:
                if record.user in self.expect.deletes:
                    if record.status in (200, 204):
                        done_deletes[record.user] += 1
                    continue
                wrong.append("%s -> %s" % (target, record.status))
            else:
                wrong.append("%s -> %s" % (target, record.status))
        missing = sorted("stop %s/%s" % key for key in self.expect.stops - set(done_stops))
        missing += sorted("delete %s" % user for user in self.expect.deletes - set(done_deletes))
        duplicates = sum(n - 1 for n in done_stops.values()) \
            + sum(n - 1 for n in done_deletes.values())
        return {"missing": missing, "wrong": wrong, "duplicates": duplicates}


def report(hub: BenchHub, judge: Judge, latency: Dict[str, float], cpu_at_start: float
           ) -> Dict[str, Any]:
    records = hub.records()
    ended = [r.ended for r in records if r.ended is not None]
    lists = [r for r in records if r.route == ROUTE_LIST_USERS]
    stops = [r for r in records if r.route == ROUTE_STOP_SERVER]
    deletes = [r for r in records if r.route == ROUTE_DELETE_USER]

    def overhead(rows: List[RequestRecord], wanted: float) -> Dict[str, Optional[float]]:
        extra = [r.duration - wanted for r in rows if r.duration is not None]
        return {"p50_ms": _ms(percentile(extra, 0.5)), "p99_ms": _ms(percentile(extra, 0.99)),
                "max_ms": _ms(max(extra) if extra else None)}

    result = {
        "requests": len(records),
        "by_route": dict(Counter(r.route for r in records)),
        "statuses": dict(Counter("%s %s" % (r.route, r.status) for r in records)),
        "connections": hub.connection_count,
        "max_in_flight": hub.max_in_flight("*"),
        "max_in_flight_delete": hub.max_in_flight("DELETE"),
        "max_in_flight_get": hub.max_in_flight("GET"),
        "first_request": min((r.started for r in records), default=None),
        "last_answer": max(ended, default=None),
        "list_first": min((r.started for r in lists), default=None),
        "list_last": max((r.ended for r in lists if r.ended), default=None),
        "first_delete": min((r.started for r in stops + deletes), default=None),
        "list_overhead": overhead(lists, latency["list"]),
        "stop_overhead": overhead(stops, latency["stop"]),
        "hub_cpu_s": cpu_seconds() - cpu_at_start,
        "hub_errors": len(hub.errors),
    }
    result.update(judge.judge(records))
    return result


def _ms(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value * 1000, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--list-latency", type=float, default=0.020)
    parser.add_argument("--stop-latency", type=float, default=0.050)
    parser.add_argument("--delete-latency", type=float, default=0.0)
    parser.add_argument("--no-slow-stops", action="store_true",
                        help="answer 204 to the *-slow users' stops too")
    parser.add_argument("--kernels", action="store_true",
                        help="give idle servers kernels, for a culler with --check-kernels")
    parser.add_argument("--server-latency", type=float, default=0.005,
                        help="seconds per api/status or api/kernels answer of a server")
    args = parser.parse_args()

    now = datetime.now(timezone.utc)
    users, expect = dataset.build(args.users, args.seed, now)
    checks = dataset.add_kernels(users, expect, args.seed, now) if args.kernels else {}
    if args.no_slow_stops:
        # Without 202 the slow users are plain idle users: their user records go as well.
        expect.deletes |= {u.name for u in users if u.name.endswith(dataset.SLOW_SUFFIX)}
    # next.url from the Host header (a hub without a proxy): the reference follows it.
    hub = BenchHub(next_url_origin=None, refuse_delete_with_servers=True)
    hub.latency.list_users = args.list_latency
    hub.latency.stop_server = args.stop_latency
    hub.latency.delete_user = args.delete_latency
    hub.latency.server_api = args.server_latency
    hub.add(*users)
    del users
    if not args.no_slow_stops:
        hub.set_stop_outcome("*" + dataset.SLOW_SUFFIX, "*", 202)
    hub.start()
    judge = Judge(expect)
    latency = {"list": args.list_latency, "stop": args.stop_latency}
    cpu_at_start = cpu_seconds()
    hello = {
        "port": hub.port,
        "token": hub.token,
        "expected": {
            "stops": len(expect.stops),
            "deletes": len(expect.deletes),
            "ready_selection": expect.ready_selection,
            "inactive_selection": expect.inactive_selection,
            # the reference reads pages of the hub's default size (50); this culler asks for the
            # largest the hub gives (page_max, 200)
            "listings": expect.listings(),
            "pages": expect.pages(),
            "listings_max": expect.listings(hub.page_max),
            "pages_max": expect.pages(hub.page_max),
            "categories": expect.categories,
            "checks": checks,
        },
    }
    print(json.dumps(hello), flush=True)
    lock = threading.Lock()
    try:
        for line in sys.stdin:
            command = line.strip()
            with lock:
                if command == "status":
                    idle = (time.monotonic() - hub.last_answer) if hub.last_answer else None
                    records = hub.records()
                    answer = {
                        "requests": len(records),
                        "in_flight": hub.in_flight("*"),
                        "idle_s": idle,
                        "list_pages_answered": sum(
                            1 for r in records if r.route == ROUTE_LIST_USERS and r.ended),
                        # Scanning every DELETE costs hub CPU: only once the hub is quiet.
                        "expected_answered": bool(idle and idle >= 1.0)
                        and judge.answered(hub),
                    }
                elif command == "report":
                    answer = report(hub, judge, latency, cpu_at_start)
                elif command.startswith("dump "):
                    # Every request, one JSON object a line, for timeline analysis.
                    with open(command[5:], "w") as handle:
                        for r in hub.records():
                            handle.write(json.dumps({
                                "method": r.method, "route": r.route, "user": r.user,
                                "server": r.server, "started": r.started, "ended": r.ended,
                                "status": r.status, "connection": r.connection_id}) + "\n")
                    answer = {"dumped": command[5:]}
                elif command == "quit":
                    break
                else:
                    answer = {"error": "unknown command %r" % command}
            print(json.dumps(answer), flush=True)
    finally:
        hub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
