"""Summarise a py-spy profile of this culler (``python -m bench.run --profile``).

py-spy's raw format is one line per distinct stack: ``frame;frame;...;frame COUNT``, outermost
frame first, each frame ``function (file)`` (``--nolineno``). With ``--gil`` only the thread
holding the GIL is sampled, so a sample is a slice of the process's Python CPU time.

    .venv/bin/python -m bench.run --sizes 10000 --cullers ours --profile --logdir /tmp/p
    .venv/bin/python -m bench.profile /tmp/p/ours-10000.pyspy.txt

It prints the share of samples in each group of frames (a sample goes to the first group that
matches its stack, so the shares add up), then the functions with the most samples of their
own and with the most samples on the stack.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from typing import Dict, List, Tuple

# Where each sample goes: the first group, in this order, one of whose patterns matches a frame
# of its stack (frames are "Class.method (file)"). The groups split the samples: they add up
# to 100 %.
GROUPS: List[Tuple[str, str]] = [
    ("start-up: imports", r"^_find_and_load "),
    ("futures bookkeeping: Future.set_result waking the main thread's wait(), _drain",
     r"^(Future\.set_result|_drain|wait) \((concurrent/futures|.*(acting|context|listing)\.py)"),
    ("logging: Logger calls, formatting, writing",
     r"^(Logger\.\w+|Handler\.\w+|StreamHandler\.\w+) \(.*logging/__init__\.py\)"),
    ("requests: Session.prepare_request", r"^Session\.prepare_request \("),
    ("urllib3 + http.client: send, wait for and read the answer",
     r"^HTTPConnectionPool\.urlopen \("),
    ("requests: the rest of Session.send (adapter, Response, hooks, cookies)",
     r"^Session\.send \("),
    ("requests: the rest of Session.request", r"^Session\.request \("),
    ("listing: json.loads of the pages", r"^(JSONDecoder\.\w+|loads) \(.*json"),
    ("listing: parse_user (model.py)", r"^parse_user \("),
    ("listing: judge (policy.py, keep decisions)", r"^judge \("),
    ("listing: SeenNames.add (blake2b)", r"^SeenNames\.add \("),
    ("HubClient, the rest (_get_json Timer, status mapping)", r"^HubClient\.\w+ \("),
    ("acting, the rest (outcomes, log fields)", r"^Actor\.\w+ \("),
    ("main thread, the rest (run_pass, planning, submit, PassStats)",
     r"^(run_pass|plan_pass|list_users) \("),
    ("worker threads, the rest (ThreadPoolExecutor)", r"^_worker \("),
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
    grouped: Dict[str, int] = Counter()
    own: Dict[str, int] = Counter()
    anywhere: Dict[str, int] = Counter()
    for frames, n in stacks:
        for frame in set(frames[1:]):  # the first frame is the thread
            anywhere[frame] += n
        own[frames[-1]] += n
        label = next((label for label, pattern in compiled
                      if any(pattern.search(frame) for frame in frames)), "other")
        grouped[label] += n
    lines = ["samples: %d" % total]
    if groups:
        lines += ["", "| group (each sample counted once) | share of samples |", "|---|---|"]
        for label in [label for label, _ in GROUPS] + ["other"]:
            lines.append("| %s | %.1f %% |" % (label, 100.0 * grouped[label] / max(total, 1)))
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
