"""Summarise a py-spy profile of this culler (``python -m bench.run --profile``).

py-spy's raw format is one line per distinct stack: ``frame;frame;...;frame COUNT``, outermost
frame first, each frame ``function (file)`` (``--nolineno``). With ``--gil`` only the thread
holding the GIL is sampled, so a sample is a slice of the process's Python CPU time.

    .venv/bin/python -m bench.run --sizes 10000 --cullers ours --profile --logdir /tmp/p
    .venv/bin/python -m bench.profile /tmp/p/ours-10000.pyspy.txt

It prints the share of samples spent in each group of frames (inclusive: a sample counts for
every group one of its frames belongs to) and the functions with the most samples of their own.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from typing import Dict, List, Tuple

# (label, regular expression on a frame): inclusive groups, in the order they are printed.
GROUPS: List[Tuple[str, str]] = [
    ("start-up: imports", r"^<module> |_find_and_load"),
    ("start-up: configuration and preflight", r"^(load_config|parse_args|preflight) "),
    ("listing: HubClient.users_page (request, body, JSON)", r"^users_page \(.*hub\.py\)"),
    ("  of which json.loads", r"^(loads|decode|raw_decode) \(.*json"),
    ("  of which the read-timeout Timer thread", r"^(start|__init__) \(.*threading\.py\)"),
    ("listing: parse_user", r"^parse_user "),
    ("  of which parse_hub_time", r"^parse_hub_time "),
    ("listing: judge (judge_server, judge_user, keep logs)", r"^judge \(.*cull\.py\)"),
    ("listing: SeenNames.add", r"^add \(.*cull\.py\)"),
    ("actions: run_job (stops, deletions, their logs)", r"^run_job "),
    ("all requests: Session.request", r"^request \(.*requests/sessions\.py\)"),
    ("  prepare_request", r"^prepare_request \(.*requests/sessions\.py\)"),
    ("  HTTPAdapter.send", r"^send \(.*requests/adapters\.py\)"),
    ("  urllib3 urlopen", r"^urlopen \(.*urllib3/connectionpool\.py\)"),
    ("  http.client getresponse/begin", r"^(getresponse|begin) \(.*(http/client|urllib3)"),
    ("logging (every Logger call, formatting, writing)",
     r"^(info|debug|warning|error|_log|handle|emit|format) \(.*(logging/__init__|"
     r"idle_culler_daemon/log)\.py\)"),
    ("main thread waiting on workers: _drain / futures.wait", r"^(_drain|wait) \(.*(cull|"
     r"concurrent/futures/_base)\.py\)"),
    ("ThreadPoolExecutor worker loop (outside the job)", r"^_worker \("),
]


def read(path: str) -> Tuple[List[Tuple[List[str], int]], int]:
    stacks = []
    total = 0
    with open(path) as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line:
                continue
            frames, _, count = line.rpartition(" ")
            n = int(count)
            stacks.append((frames.split(";"), n))
            total += n
    return stacks, total


def summarise(stacks: List[Tuple[List[str], int]], total: int, top: int,
              groups: bool = True) -> str:
    compiled = [(label, re.compile(pattern)) for label, pattern in GROUPS]
    inclusive: Dict[str, int] = Counter()
    own: Dict[str, int] = Counter()
    anywhere: Dict[str, int] = Counter()
    for frames, n in stacks:
        for frame in set(frames[1:]):  # the first frame is the thread
            anywhere[frame] += n
        for label, pattern in compiled:
            if any(pattern.search(frame) for frame in frames):
                inclusive[label] += n
        own[frames[-1]] += n
    lines = ["samples: %d" % total]
    if groups:
        lines += ["", "| group | share of samples |", "|---|---|"]
        for label, _ in GROUPS:
            lines.append("| %s | %.1f %% |" % (label, 100.0 * inclusive[label] / max(total, 1)))
    lines += ["", "| function (own samples) | share |", "|---|---|"]
    for frame, n in own.most_common(top):
        lines.append("| %s | %.1f %% |" % (frame, 100.0 * n / max(total, 1)))
    lines += ["", "| function (inclusive: samples with it on the stack) | share |", "|---|---|"]
    for frame, n in anywhere.most_common(top):
        lines.append("| %s | %.1f %% |" % (frame, 100.0 * n / max(total, 1)))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", help="py-spy raw output (--format raw --nolineno)")
    parser.add_argument("--top", type=int, default=25, help="functions listed in each table")
    parser.add_argument("--no-groups", action="store_true",
                        help="only the function tables (e.g. for a profile of the hub)")
    args = parser.parse_args()
    stacks, total = read(args.profile)
    print(summarise(stacks, total, args.top, not args.no_groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
