#!/usr/bin/env python
"""`make bench`: every benchmark of docs/results.md's speed table, with the arguments shown there, one after
the other; then one summary line per target (PASS / FAIL) and the load average before and after each.

Each benchmark measures both sides of its ratios in the same run (interleaved, or each side in its own
child process), so the ratios are meant to hold on an idle and on a loaded machine alike; the summary shows
the load they were measured at. Exit status 1 when a target is missed or a benchmark fails.

    python benchmarks/run_all.py [--only SUBSTRING ...] [--log FILE]

Left out (long, print-only): ``bench_retrieval.py --part cd1m`` (copy detection at 1M references, minutes
and ~3 GB) -- run it on its own as docs/results.md shows.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from typing import List, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
#: benchmarks run from the repository root, so generated sets land in ./datasets as for every other command
ROOT = os.path.dirname(HERE)

# (script, arguments): the commands of docs/results.md's speed table, in its order
COMMANDS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("bench_box_similarity.py", ()),
    ("bench_box_ops.py", ("--repeat", "3", "--nms-boxes", "5000")),
    ("bench_simd_training.py", ()),
    ("bench_evaluation.py", ("--part", "aitod", "--repeat", "3")),
    ("bench_evaluation.py", ("--part", "lvis", "--lvis-images", "500", "--repeat", "3")),
    ("bench_retrieval.py", ("--part", "reid", "--repeat", "3", "--reid-noise", "2.8")),
    ("bench_retrieval.py", ("--part", "reid", "--repeat", "3", "--reid-noise", "6.0")),
    ("bench_retrieval.py", ("--part", "ml")),
    ("bench_iif.py", ("--repeats", "31")),
    ("bench_adasp.py", ()),
    ("bench_das.py", ()),
    ("bench_rdcd.py", ("--quick",)),
)

TARGET = re.compile(r"target (<=|>=) [0-9.]+: (PASS|FAIL)")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def target_lines(output: str) -> List[str]:
    """The printed lines that carry a verdict ("... (target <= 0.5: PASS)"), stripped."""
    return [line.strip() for line in output.splitlines() if TARGET.search(line)]


def run(commands: Sequence[Tuple[str, Tuple[str, ...]]], log) -> int:
    summary, failed = [], 0
    total_start = time.perf_counter()
    for script, arguments in commands:
        shown = " ".join(["benchmarks/" + script, *arguments])
        print(f"== {shown}   (load 1/5 min before: {load()})", flush=True)
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, script), *arguments], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = []
        for line in proc.stdout:  # live, and kept for the summary
            sys.stdout.write(line)
            sys.stdout.flush()
            output.append(line)
        code = proc.wait()
        seconds = time.perf_counter() - start
        text = "".join(output)
        if log is not None:
            log.write(f"== {shown}\n{text}\n")
        verdicts = target_lines(text)
        if code != 0:
            verdicts.append(f"exit status {code}: FAIL")
        failed += sum(1 for line in verdicts if "FAIL" in line)
        summary.append((shown, seconds, load(), verdicts))
        print(f"-- {seconds:.0f} s, load 1/5 min after: {load()}\n", flush=True)
    print(f"== summary ({time.perf_counter() - total_start:.0f} s in all)")
    for shown, seconds, after, verdicts in summary:
        print(f"{shown}   [{seconds:.0f} s, load after {after}]")
        for line in verdicts or ["(prints only)"]:
            print(f"    {line}")
    print(f"{failed} target(s) missed" if failed else "every target met")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=None,
                        help="run only the commands whose script name or arguments contain one of these")
    parser.add_argument("--log", default=None, help="also write every benchmark's output to this file")
    args = parser.parse_args(argv)
    commands = [c for c in COMMANDS
                if args.only is None or any(s in " ".join([c[0], *c[1]]) for s in args.only)]
    if not commands:
        print(f"no benchmark matches {args.only}", file=sys.stderr)
        return 2
    log = open(args.log, "w") if args.log else None
    try:
        return run(commands, log)
    finally:
        if log is not None:
            log.close()


if __name__ == "__main__":
    sys.exit(main())
