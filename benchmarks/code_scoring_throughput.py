"""Code scoring throughput: HumanEval's 164 canonical solutions through the code scorer.

    python benchmarks/code_scoring_throughput.py [--workers 4] [--rounds 2]

Each round scores every canonical solution with ``score_code`` (the scorer `ember eval`
and `ember train --reward code` use) on a thread pool of --workers threads, as `ember
eval --score-workers` does, and times the round from first submit to last result.
Reports the best round in programs/s and how many solutions scored 1 (all 164 should).
Prints one summary line; writes JSON to benchmarks/results/code_scoring_throughput.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import time
from pathlib import Path

from ember.adp.io import atomic_writer
from ember.evaluate import sandbox
from ember.evaluate.code_scoring import humaneval_items, score_code

ROOT = Path(__file__).resolve().parent.parent


def one_round(items, workers: int) -> tuple[float, int, list[str]]:
    """(seconds, how many scored 1.0, ids of those that did not)."""
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda it: score_code(it.meta["canonical_solution"], it),
                                items))
    seconds = time.perf_counter() - start
    failed = [it.id for it, r in zip(items, results) if r["score"] != 1.0]
    return seconds, len(items) - len(failed), failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=4, help="scoring threads (eval default)")
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds; the best is kept")
    ap.add_argument("--label", default="", help="free text stored with the result")
    args = ap.parse_args()

    items = humaneval_items()
    mode = sandbox.isolation()   # probed once, outside the timed rounds
    rounds = [one_round(items, args.workers) for _ in range(args.rounds)]
    best = min(r[0] for r in rounds)
    passed = min(r[1] for r in rounds)
    failed = sorted({i for r in rounds for i in r[2]})
    result = {
        "benchmark": "code_scoring_throughput",
        "label": args.label,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "euid": os.geteuid()},
        "sandbox_mode": mode,
        "workers": args.workers,
        "programs": len(items),
        "round_seconds": [r[0] for r in rounds],
        "programs_per_second": len(items) / best,
        "canonical_passed": passed,
        "canonical_failed": failed,
    }
    out = ROOT / "benchmarks" / "results" / "code_scoring_throughput.json"
    with atomic_writer(out, "w") as f:
        f.write(json.dumps(result, indent=2) + "\n")
    print(f"code scoring ({mode}, {args.workers} workers, {os.cpu_count()} CPUs): "
          f"{len(items) / best:.1f} programs/s (best of {args.rounds}), "
          f"{passed}/{len(items)} canonical solutions pass")


if __name__ == "__main__":
    main()
