"""Selector overhead: select + update time per step at 10k, 100k and 1M tasks.

    python benchmarks/selector_overhead.py [--steps 50] [--batch-size 256] [--rollouts 8]

Times `bots` (both reference columns, so implicit evidence is on; Thompson draws) and
`uniform` in one process: a few warm-up steps, then --steps steps of select(batch) +
update(batch outcomes), outcomes drawn outside the timed region. The targets for
bots: <= 5 ms/step at 100k tasks and <= 50 ms/step at 1M. Prints one summary line; writes
JSON to benchmarks/results/selector_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from ember.train.selectors import load_selector

ROOT = Path(__file__).resolve().parent.parent
SIZES = (10_000, 100_000, 1_000_000)
TARGETS_MS = {100_000: 5.0, 1_000_000: 50.0}


def time_selector(name: str, n: int, steps: int, batch: int, rollouts: int) -> dict:
    rng = np.random.default_rng(0)
    weak = rng.uniform(0, 1, n)
    strong = np.clip(weak + rng.uniform(0, 0.3, n), 0, 1)
    columns = {"ref_weak": weak, "ref_strong": strong} if name == "bots" else {}
    sel = load_selector(name, n_tasks=n, seed=0, **columns)
    counts = np.full(batch, rollouts)
    times = []
    for step in range(steps + 5):
        start = time.perf_counter()
        ids = sel.select(step, batch)
        mid = time.perf_counter()
        successes = rng.binomial(rollouts, weak[ids])
        resume = time.perf_counter()
        sel.update(ids, successes, counts)
        end = time.perf_counter()
        if step >= 5:
            times.append((mid - start + end - resume) * 1e3)
    t = np.asarray(times)
    return {"selector": name, "tasks": n, "steps": steps, "mean_ms": float(t.mean()),
            "median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)),
            "target_ms": TARGETS_MS.get(n) if name == "bots" else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="timed steps per configuration")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rollouts", type=int, default=8)
    args = ap.parse_args()

    runs = [time_selector(name, n, args.steps, args.batch_size, args.rollouts)
            for n in SIZES for name in ("bots", "uniform")]
    bots = {r["tasks"]: r for r in runs if r["selector"] == "bots"}
    uniform = {r["tasks"]: r for r in runs if r["selector"] == "uniform"}
    passed = all(bots[n]["mean_ms"] <= t for n, t in TARGETS_MS.items())
    result = {
        "benchmark": "selector_overhead",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "batch_size": args.batch_size, "rollouts": args.rollouts,
        "runs": runs, "targets_met": passed,
    }
    out = ROOT / "benchmarks" / "results" / "selector_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    fmt = lambda d: " / ".join(f"{d[n]['mean_ms']:.2f}" for n in SIZES)
    print(f"selector overhead (select + update, batch {args.batch_size}, {args.rollouts} "
          f"rollouts), ms/step at 10k / 100k / 1M tasks: bots {fmt(bots)}, uniform "
          f"{fmt(uniform)}; targets bots <= 5 @100k, <= 50 @1M: "
          f"{'met' if passed else 'MISSED'}; {os.cpu_count()} CPUs -> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
