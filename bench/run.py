"""Benchmark one pass of this culler against the reference (jupyterhub-idle-culler 2.0.0).

For each size, each culler runs against a fresh fake hub (``bench/serve_hub.py``, its own
process) holding the same seeded dataset, and the run prints one table: wall time of the pass,
its lower bound and the ratio, CPU seconds, peak RSS, requests, TCP connections, and missing and
wrong culls, then checks the targets of bench/README.md. See bench/README.md for the method.

    .venv/bin/python -m bench.run                      # 1k, 10k, 50k users, both cullers
    .venv/bin/python -m bench.run --sizes 1000,10000   # quicker
    .venv/bin/python -m bench.run --cullers ours       # without the reference

At the sizes of ``--kernel-sizes`` (10k users by default) one more row runs ours with
``--check-kernels``, against a hub that also plays the proxy and the single-user servers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from bench import dataset

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

REFERENCE = "jupyterhub-idle-culler==2.0.0"
REF_VENV = os.path.join(ROOT, ".venv-ref")
REF_MARKER = os.path.join(REF_VENV, ".bench-installed-2.0.0")
OURS_BIN = os.path.join(ROOT, ".venv", "bin", "jupyterhub-idle-culler")  # make venv
REF_BIN = os.path.join(REF_VENV, "bin", "jupyterhub-idle-culler")
PY_SPY = os.path.join(ROOT, ".venv", "bin", "py-spy")  # --profile: pip install py-spy
CONCURRENCY = 10
MIB = 1024.0  # ru_maxrss and VmHWM are in KiB on Linux
KERNELS = "ours --check-kernels"  # the row of ours asking idle servers about their kernels

# Targets (bench/README.md).
MAX_BOUND_RATIO = 1.15
MIN_SPEEDUP_10K = 8.0
MAX_RSS_GROWTH_MIB = 15.0
MAX_CPU_SHARE = 0.5


def log(message: str) -> None:
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


def peak_rss_kib(pid: int) -> int:
    """The peak RSS of a running process since its exec (VmHWM), in KiB; 0 once it is gone.

    Not ``ru_maxrss`` from wait4: a child's ru_maxrss starts from its parent's RSS at fork
    (about 25 MiB for this driver), so it can only show the culler's own peak above that.
    """
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def ensure_reference() -> None:
    """Install the reference into its own venv (.venv-ref) once."""
    if os.path.exists(REF_MARKER) and os.path.exists(REF_BIN):
        return
    base = getattr(sys, "_base_executable", None) or sys.executable
    log("installing %s into %s" % (REFERENCE, REF_VENV))
    subprocess.run([base, "-m", "venv", REF_VENV], check=True)
    subprocess.run([os.path.join(REF_VENV, "bin", "python"), "-m", "pip", "install", "-q",
                    REFERENCE], check=True)
    open(REF_MARKER, "w").close()


class HubProcess:
    """``bench/serve_hub.py`` as a child process, driven line by line over pipes."""

    def __init__(self, size: int, args: argparse.Namespace, kernels: bool = False) -> None:
        command = [sys.executable, "-m", "bench.serve_hub", "--users", str(size),
                   "--seed", str(args.seed), "--list-latency", str(args.list_latency),
                   "--stop-latency", str(args.stop_latency),
                   "--delete-latency", str(args.delete_latency)]
        if args.no_slow_stops:
            command.append("--no-slow-stops")
        if kernels:  # the hub also plays the proxy and the servers behind it
            command += ["--kernels", "--server-latency", str(args.server_latency)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE,
                                        text=True, bufsize=1)
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the fake hub did not start")
        self.hello = json.loads(line)
        self.api_url = "http://127.0.0.1:%d/hub/api" % self.hello["port"]

    def ask(self, command: str) -> Dict[str, Any]:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def service_env(api_url: str, token: str) -> Dict[str, str]:
    """A small environment, like a systemd service's, plus the hub's URL and token.

    Not the caller's shell environment: requests scans every variable on every request (proxy
    settings), so the CPU figures would depend on how many variables the shell exports.
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/"),
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_API_URL": api_url,
    }


def culler_env(hub: HubProcess) -> Dict[str, str]:
    return service_env(hub.api_url, hub.hello["token"])


def run_one(culler: str, size: int, args: argparse.Namespace, logdir: str) -> Dict[str, Any]:
    """One pass of one culler against a fresh hub; the figures of the run."""
    hub = HubProcess(size, args, kernels=culler == KERNELS)
    expected = hub.hello["expected"]
    flags = ["--url=" + hub.api_url] + list(dataset.CULLER_FLAGS)
    if culler == "ours":
        command = [OURS_BIN, "--once"] + flags
        if args.profile:
            # py-spy samples every thread holding the GIL (the workers too, which cProfile
            # would miss); the figures of a profiled run are not the benchmark's.
            command = [PY_SPY, "record", "--gil", "--nolineno", "--rate", "500", "--format",
                       "raw", "--output", os.path.join(logdir, "ours-%d.pyspy.txt" % size),
                       "--"] + command
    elif culler == KERNELS:
        command = [OURS_BIN, "--once", "--check-kernels",
                   "--server-url-base=http://127.0.0.1:%d" % hub.hello["port"]] + flags
    else:
        command = [REF_BIN] + flags
    log_path = os.path.join(logdir, "%s-%d.log" % (culler.replace(" --", "-"), size))
    status = None
    killed = timed_out = False
    child: Optional[subprocess.Popen] = None
    try:
        with open(log_path, "wb") as log_file:
            started = time.monotonic()
            child = subprocess.Popen(command, env=culler_env(hub), stdout=log_file,
                                     stderr=subprocess.STDOUT, cwd=logdir)
            deadline = started + args.max_seconds
            peak_kib = 0
            while True:
                peak_kib = max(peak_kib, peak_rss_kib(child.pid))
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    ended = time.monotonic()
                    break
                now = time.monotonic()
                if culler == "reference" or now > deadline:
                    state = hub.ask("status")
                    idle = state["idle_s"]
                    # Its pass is over when it read every page, then went quiet: it sends
                    # its DELETEs one after another without pause, so a quiet hub means no
                    # more work (every expected DELETE answered ends the wait sooner).
                    listed = state["list_pages_answered"] >= expected["pages"]
                    quiet = (state["requests"] and not state["in_flight"] and idle is not None
                             and (listed and idle >= args.quiet_s
                                  or state["expected_answered"] and idle >= 1.0
                                  or idle >= args.long_quiet_s))
                    if quiet or now > deadline:
                        # The reference has no run-once mode: its pass ended at the hub.
                        child.send_signal(signal.SIGTERM)
                        killed = True
                        timed_out = not quiet
                        pid, status, usage = os.wait4(child.pid, 0)
                        ended = time.monotonic()
                        break
                    time.sleep(0.25)
                else:
                    time.sleep(0.005)
            child.returncode = 0  # reaped by wait4 above; keep Popen from waiting again
        result = hub.ask("report")
        if args.dump_records:
            hub.ask("dump " + os.path.join(logdir, "%s-%d.records.jsonl" % (culler, size)))
    finally:
        if child is not None and child.returncode is None:
            child.kill()
            child.wait()
        hub.close()
    exit_code = os.waitstatus_to_exitcode(status) if status is not None else None
    # this culler asks for the largest page the hub gives; the reference takes its default
    largest = culler != "reference"
    pages = expected["pages_max" if largest else "pages"]
    listings = expected["listings_max" if largest else "listings"]
    stops = expected["stops"]
    stop_part = math.ceil(stops / CONCURRENCY) * args.stop_latency
    checks = expected.get("checks") or {}
    server_gets = checks.get("status_gets", 0) + checks.get("kernels_gets", 0)
    stop_part += math.ceil(server_gets / CONCURRENCY) * args.server_latency
    bound = pages * args.list_latency + stop_part
    concurrent_pages = sum(1 + math.ceil((n - 1) / CONCURRENCY) for n in listings)
    bound_concurrent = concurrent_pages * args.list_latency + stop_part
    first, last = result["first_request"], result["last_answer"]
    pass_s = (last - first) if first is not None and last is not None else None
    return {
        "culler": culler,
        "users": size,
        "pass_s": pass_s,
        "process_s": (ended - started) if culler != "reference" else None,
        "startup_s": (first - started) if first is not None else None,
        "bound_s": bound,
        "pages": pages,
        "bound_concurrent_s": bound_concurrent,
        "listing_s": (result["list_last"] - result["list_first"])
        if result["list_first"] is not None else None,
        "listing_serial_bound_s": pages * args.list_latency,
        "listing_concurrent_bound_s": concurrent_pages * args.list_latency,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "cpu_user_s": usage.ru_utime,
        "cpu_sys_s": usage.ru_stime,
        # VmHWM, read every 5 ms (ours) or 0.25 s (the reference, which is idle at the end)
        "peak_rss_mib": peak_kib / MIB,
        "ru_maxrss_mib": usage.ru_maxrss / MIB,
        "exit": exit_code,
        "killed_after_pass": killed and not timed_out,
        "timed_out": timed_out,
        "expected": expected,
        "hub": result,
        "log": log_path,
    }


def fmt(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else "%.*f" % (digits, value)


def table(results: List[Dict[str, Any]]) -> str:
    by_key = {(r["culler"], r["users"]): r for r in results}
    head = ("| users | culler | pass s | bound s | pass / bound | ref / ours | CPU s "
            "| CPU s per 10k users | peak RSS MiB | requests | TCP conns | missing | wrong |")
    lines = [head, "|" + "---|" * 13]
    for r in results:
        ref = by_key.get(("reference", r["users"]))
        speedup = (ref["pass_s"] / r["pass_s"]) if (ref and r["culler"] == "ours"
                                                     and r["pass_s"]) else None
        lines.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %d | %d |" % (
            r["users"], r["culler"], fmt(r["pass_s"], 1), fmt(r["bound_s"], 1),
            fmt(r["pass_s"] / r["bound_s"] if r["pass_s"] else None),
            fmt(speedup, 1), fmt(r["cpu_s"], 1), fmt(r["cpu_s"] * 10000 / r["users"], 2),
            fmt(r["peak_rss_mib"], 1), r["hub"]["requests"], r["hub"]["connections"],
            len(r["hub"]["missing"]), len(r["hub"]["wrong"])))
    return "\n".join(lines)


def details(results: List[Dict[str, Any]]) -> str:
    head = ("| users | culler | pages | stops | user deletes | listing s (serial bound) "
            "| first DELETE after last page | process s | start-up s | hub CPU s "
            "| hub list/stop p99 extra ms | max in flight | duplicates | exit |")
    lines = [head, "|" + "---|" * 14]
    for r in results:
        hub, expected = r["hub"], r["expected"]
        ordered = "-"
        if hub["first_delete"] is not None and hub["list_last"] is not None:
            ordered = "yes" if hub["first_delete"] >= hub["list_last"] else "NO"
        lines.append("| %d | %s | %d | %d | %d | %s (%s) | %s | %s | %s | %s | %s / %s | %d "
                     "| %d | %s |" % (
                         r["users"], r["culler"], r["pages"], expected["stops"],
                         expected["deletes"], fmt(r["listing_s"]),
                         fmt(r["listing_serial_bound_s"]), ordered, fmt(r["process_s"]),
                         fmt(r["startup_s"]), fmt(hub["hub_cpu_s"], 1),
                         fmt(hub["list_overhead"]["p99_ms"], 1),
                         fmt(hub["stop_overhead"]["p99_ms"], 1), hub["max_in_flight"],
                         hub["duplicates"],
                         ("%s (killed after its pass)" % r["exit"]) if r["killed_after_pass"]
                         else ("%s (TIMED OUT)" % r["exit"]) if r["timed_out"]
                         else r["exit"]))
    return "\n".join(lines)


def verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT MET")


def targets(results: List[Dict[str, Any]]) -> str:
    ours = {r["users"]: r for r in results if r["culler"] == "ours"}
    ref = {r["users"]: r for r in results if r["culler"] == "reference"}
    lines = []
    if ours:
        bad = [s for s, r in ours.items() if r["hub"]["missing"] or r["hub"]["wrong"]]
        lines.append("- 0 missing and 0 wrong at every size: %s%s" % (
            verdict(not bad), (" (sizes %s)" % bad) if bad else ""))
        ratios = {s: r["pass_s"] / r["bound_s"] for s, r in ours.items() if r["pass_s"]}
        worst = max(ratios.values()) if ratios else None
        lines.append("- wall time <= %.2f x the lower bound: %s (worst %s: %s)" % (
            MAX_BOUND_RATIO, verdict(worst is not None and worst <= MAX_BOUND_RATIO),
            fmt(worst), ", ".join("%dk %.2f" % (s // 1000, v) for s, v in sorted(ratios.items()))))
    if 10000 in ours and 10000 in ref:
        speedup = ref[10000]["pass_s"] / ours[10000]["pass_s"]
        lines.append("- >= %.0f x faster than the reference at 10k users: %s (%.1f x)" % (
            MIN_SPEEDUP_10K, verdict(speedup >= MIN_SPEEDUP_10K), speedup))
    else:
        lines.append("- >= 8 x faster than the reference at 10k users: n/a (not run)")
    sizes = sorted(ours)
    if len(sizes) >= 2:
        growth = ours[sizes[-1]]["peak_rss_mib"] - ours[sizes[0]]["peak_rss_mib"]
        lines.append("- peak RSS growth %dk -> %dk <= %.0f MiB: %s (%+.1f MiB)" % (
            sizes[0] // 1000, sizes[-1] // 1000, MAX_RSS_GROWTH_MIB,
            verdict(growth <= MAX_RSS_GROWTH_MIB), growth))
    shares = {s: ours[s]["cpu_s"] / ref[s]["cpu_s"] for s in ours if s in ref and ref[s]["cpu_s"]}
    if shares:
        # judged from 10k users up: at 1k, start-up (imports, the first connections) is most
        # of either culler's CPU
        judged = [v for s, v in shares.items() if s >= 10000]
        lines.append("- CPU <= %.1f x the reference's at 10k users and more: %s (%s)" % (
            MAX_CPU_SHARE, verdict(bool(judged) and all(v <= MAX_CPU_SHARE for v in judged))
            if judged else "n/a",
            ", ".join("%dk %.2f" % (s // 1000, v) for s, v in sorted(shares.items()))))
    if ours:
        conns = {s: r["hub"]["connections"] for s, r in ours.items()}
        lines.append("- one TCP connection per worker, reused (<= %d + 1 for the main thread): "
                     "%s (%s)" % (CONCURRENCY, verdict(all(c <= CONCURRENCY + 1
                                                           for c in conns.values())),
                                  ", ".join("%dk %d" % (s // 1000, c)
                                            for s, c in sorted(conns.items()))))
        big = ours[sizes[-1]]
        saved_bound = big["bound_s"] - big["bound_concurrent_s"]
        saved = (big["listing_serial_bound_s"] - big["listing_s"]) if big["listing_s"] else None
        lines.append("- concurrent page fetching at %dk users: listing took %s s for %d pages "
                     "(serial %s s, %.0f%% of the bound); it saves %s s = %.0f%% of the bound "
                     "(the bound with concurrent pages is %s s)" % (
                         sizes[-1] // 1000, fmt(big["listing_s"]), big["pages"],
                         fmt(big["listing_serial_bound_s"]),
                         100 * big["listing_serial_bound_s"] / big["bound_s"], fmt(saved),
                         100 * (saved or 0) / big["bound_s"], fmt(big["bound_concurrent_s"])))
        lines.append("  (by the formula alone, pages in parallel save %s s of the %s s bound)"
                     % (fmt(saved_bound), fmt(big["bound_s"])))
    return "\n".join(lines)


def kernel_checks(results: List[Dict[str, Any]]) -> str:
    """The extra requests of the ``--check-kernels`` rows, next to ours at the same size.

    Each server asked costs two hub requests (a token minted for its owner, then revoked) and
    one or two GETs to the server itself (``api/status``, maybe ``api/kernels``).
    """
    ours = {r["users"]: r for r in results if r["culler"] == "ours"}
    lines = []
    for r in results:
        if r["culler"] != KERNELS:
            continue
        checks, routes = r["expected"]["checks"], r["hub"]["by_route"]
        status, kernels = routes.get("server_status", 0), routes.get("server_kernels", 0)
        minted, revoked = routes.get("create_token", 0), routes.get("revoke_token", 0)
        base = ours.get(r["users"])
        lines.append(
            "- %dk users: %d servers judged idle by the hub, each asked once: %d api/status + "
            "%d api/kernels GETs to the servers and %d token mints + %d revocations at the hub "
            "= %d extra requests (a correct pass: %d + %d + 2 x %d); %d requests in all%s; "
            "kept on their own word: %d with a busy kernel, %d recently active; pass %s s%s, "
            "CPU %s s%s; TCP connections %d (hub API and proxy)" % (
                r["users"] // 1000, checks["status_gets"], status, kernels, minted, revoked,
                status + kernels + minted + revoked, checks["status_gets"],
                checks["kernels_gets"], checks["status_gets"], r["hub"]["requests"],
                (" (ours without: %d)" % base["hub"]["requests"]) if base else "",
                checks["kept_busy"], checks["kept_active"], fmt(r["pass_s"], 1),
                (" (ours without: %s s)" % fmt(base["pass_s"], 1)) if base else "",
                fmt(r["cpu_s"], 1), (" (ours without: %s s)" % fmt(base["cpu_s"], 1))
                if base else "", r["hub"]["connections"]))
    return "\n".join(lines)


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lscpu
                  if line.startswith("Model name")), platform.processor())
    return "%s, %d cores (%s), Python %s, %s" % (
        platform.platform(terse=True), os.cpu_count() or 0, model,
        platform.python_version(), platform.machine())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000",
                        help="comma-separated user counts (default: %(default)s)")
    parser.add_argument("--cullers", default="ours,reference",
                        help="ours, reference or both (default: %(default)s)")
    parser.add_argument("--kernel-sizes", default="10000",
                        help="user counts at which ours also runs with --check-kernels "
                        "(comma-separated, empty for none; default: %(default)s)")
    parser.add_argument("--server-latency", type=float, default=0.005,
                        help="seconds per api/status or api/kernels answer (--check-kernels)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--list-latency", type=float, default=0.020, help="seconds per page")
    parser.add_argument("--stop-latency", type=float, default=0.050, help="seconds per stop")
    parser.add_argument("--delete-latency", type=float, default=0.0,
                        help="seconds per user deletion (default 0: not in the bound)")
    parser.add_argument("--no-slow-stops", action="store_true",
                        help="no 202 answers (by default the *-slow users' stops answer 202)")
    parser.add_argument("--quiet-s", type=float, default=3.0,
                        help="reference: its pass is over once it read every list page and "
                        "the hub then saw nothing for this long")
    parser.add_argument("--long-quiet-s", type=float, default=20.0,
                        help="reference: ... or nothing at all for this long")
    parser.add_argument("--max-seconds", type=float, default=3600.0,
                        help="give up on one run after this long")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--dump-records", action="store_true",
                        help="write every request the hub saw to <logdir>/<culler>-<size>"
                        ".records.jsonl (for timeline analysis)")
    parser.add_argument("--logdir", help="keep the cullers' logs here (default: a temp dir)")
    parser.add_argument("--profile", action="store_true",
                        help="run ours under py-spy (.venv/bin/py-spy) and write its samples "
                        "to <logdir>/ours-<size>.pyspy.txt (see bench/profile.py)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size]
    cullers = [c for c in args.cullers.split(",") if c]
    if set(cullers) - {"ours", "reference"}:
        parser.error("--cullers takes ours and/or reference")
    if "reference" in cullers:
        ensure_reference()
    if args.profile and not os.path.exists(PY_SPY):
        parser.error("--profile needs py-spy: .venv/bin/python -m pip install py-spy")
    logdir = args.logdir or tempfile.mkdtemp(prefix="culler-bench-")
    os.makedirs(logdir, exist_ok=True)
    results = []
    began = time.monotonic()
    for size in sizes:
        for culler in cullers:
            log("%s, %d users ..." % (culler, size))
            result = run_one(culler, size, args, logdir)
            log("%s, %d users: pass %.1f s (bound %.1f s), missing %d, wrong %d" % (
                culler, size, result["pass_s"] or -1, result["bound_s"],
                len(result["hub"]["missing"]), len(result["hub"]["wrong"])))
            results.append(result)
        if str(size) in args.kernel_sizes.split(","):
            log("%s, %d users ..." % (KERNELS, size))
            result = run_one(KERNELS, size, args, logdir)
            log("%s, %d users: pass %.1f s, missing %d, wrong %d" % (
                KERNELS, size, result["pass_s"] or -1, len(result["hub"]["missing"]),
                len(result["hub"]["wrong"])))
            results.append(result)
    total = time.monotonic() - began
    print("machine: %s" % machine())
    print("latency: list page %g ms, stop %g ms, user deletion %g ms; concurrency %d; seed %d; "
          "202 slow stops %s" % (args.list_latency * 1000, args.stop_latency * 1000,
                                 args.delete_latency * 1000, CONCURRENCY, args.seed,
                                 "off" if args.no_slow_stops else "on"))
    print("flags (both): %s (ours also --once)" % " ".join(dataset.CULLER_FLAGS))
    print()
    print(table(results))
    print()
    print(details(results))
    print()
    print("targets:")
    print(targets(results))
    print()
    if any(r["culler"] == KERNELS for r in results):
        print("--check-kernels (server answers after %g ms; api/kernels only when api/status "
              "leaves the question open):" % (args.server_latency * 1000))
        print(kernel_checks(results))
        print()
    for r in results:
        for kind in ("missing", "wrong"):
            items = r["hub"][kind]
            if items:
                print("%s %dk %s (%d): %s" % (r["culler"], r["users"] // 1000, kind, len(items),
                                              "; ".join(items[:8])
                                              + (" ..." if len(items) > 8 else "")))
    print("logs: %s; whole run %.0f s" % (logdir, total))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
