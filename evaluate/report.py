"""Reading eval results: the rich table, and `compare` of two runs.

    from ember.evaluate.report import compare
    diffs = compare("runs/base", "runs/sft", plot="sft_vs_base.png")

`compare` pairs the two runs' samples item by item (only items both runs scored), takes
each item's mean score, and puts a 95% confidence interval on the mean difference B - A
with a paired bootstrap over items (resampling items, keeping pairs together). A plot
shows each benchmark's difference with its interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ember.adp.config import opt
from ember.adp.io import atomic_writer
from ember.adp.summary import Summary
from ember.evaluate.runner import RESULTS_FILE, SAMPLES_FILE, _load_samples
from ember.llm.client import seed_opt

if TYPE_CHECKING:
    from rich.table import Table


def results_table(results: dict, title: str = "ember eval") -> Table:
    from rich.table import Table  # here: `ember --help` need not load it

    table = Table(title=f"{title}: {results['model']} ({results['backend']})", title_justify="left")
    for col in ("benchmark", "items", "samples", "metric", "value", "± stderr", "samples/s"):
        table.add_column(col, justify="left" if col in ("benchmark", "metric") else "right")
    for name, b in results["benchmarks"].items():
        speed = (b.get("timing") or {}).get("samples_per_s")
        for j, (metric, m) in enumerate(b["metrics"].items()):
            stderr = "" if m["stderr"] is None else f"{m['stderr']:.4f}"
            table.add_row(name if j == 0 else "", str(b["items"]) if j == 0 else "",
                          str(b["samples"]) if j == 0 else "", metric, f"{m['value']:.4f}",
                          stderr, f"{speed:.2f}" if speed and j == 0 else "")
    modes = {n: b["sandbox"] for n, b in results["benchmarks"].items() if b.get("sandbox")}
    if modes:  # what protected the run, so a reader can judge its code scores
        table.caption = "code ran in sandbox mode: " + "; ".join(
            f"{n} {', '.join(m)}" for n, m in modes.items())
    return table


def _item_scores(run_dir: Path, metric: str) -> tuple[dict[str, dict[str, float]], dict]:
    """Per benchmark, each item's mean score; and the protocols its samples were asked
    under (lm-eval's tasks record one; ember's own none)."""
    done = _load_samples(Path(run_dir) / SAMPLES_FILE)
    scores: dict[str, dict[str, float]] = {}
    protocols: dict[str, set] = {}
    for (bench, item), rows in done.items():
        values = [r["metrics"].get(metric, 0.0) for r in rows]
        scores.setdefault(bench, {})[item] = sum(values) / len(values)
        protocols.setdefault(bench, set()).update(r.get("protocol") for r in rows)
    return scores, protocols


def paired_bootstrap(a: list[float], b: list[float], resamples: int = 10_000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of b - a and its 95% percentile interval, resampling pairs with replacement."""
    import numpy as np

    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    rng = np.random.default_rng(seed)
    means = np.concatenate([  # in blocks, so memory stays small for big benchmarks
        diffs[rng.integers(0, len(diffs), size=(block, len(diffs)))].mean(axis=1)
        for block in [1000] * (resamples // 1000) + [resamples % 1000] if block])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(lo), float(hi)


def compare(dir_a: str | Path, dir_b: str | Path, metric: str = "score",
            resamples: int = 10_000, seed: int = 0, plot: str | Path | None = None) -> list[dict]:
    """Per-benchmark B - A on the items both runs scored, with a paired-bootstrap 95% CI."""
    a, proto_a = _item_scores(Path(dir_a), metric)
    b, proto_b = _item_scores(Path(dir_b), metric)
    rows = []
    for bench in sorted(set(a) & set(b)):
        if proto_a[bench] != proto_b[bench]:
            # e.g. `gsm8k` from before it meant lm-eval's 5-shot task against a newer run
            def said(p):
                return ", ".join(sorted(x or "ember's own" for x in p))
            raise ValueError(f"{bench} was asked under another protocol in each run "
                             f"({dir_a}: {said(proto_a[bench])}; {dir_b}: "
                             f"{said(proto_b[bench])}): their scores do not compare")
        common = sorted(set(a[bench]) & set(b[bench]))
        if not common:
            continue
        xa = [a[bench][i] for i in common]
        xb = [b[bench][i] for i in common]
        diff, lo, hi = paired_bootstrap(xa, xb, resamples, seed)
        rows.append({"benchmark": bench, "items": len(common), "a": sum(xa) / len(xa),
                     "b": sum(xb) / len(xb), "diff": diff, "ci_low": lo, "ci_high": hi,
                     "significant": lo > 0 or hi < 0})
    if not rows:
        raise ValueError(f"{dir_a} and {dir_b} share no scored items")
    if plot:
        _plot(rows, Path(plot), Path(dir_a).name, Path(dir_b).name, metric)
    return rows


def _plot(rows: list[dict], path: Path, name_a: str, name_b: str, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(rows), 3.6))
    xs = range(len(rows))
    diffs = [r["diff"] for r in rows]
    errs = [[r["diff"] - r["ci_low"] for r in rows], [r["ci_high"] - r["diff"] for r in rows]]
    colours = ["tab:green" if r["significant"] and r["diff"] > 0 else
               "tab:red" if r["significant"] else "tab:gray" for r in rows]
    ax.bar(xs, diffs, yerr=errs, color=colours, capsize=4)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(xs), [f"{r['benchmark']}\n(n={r['items']})" for r in rows])
    ax.set_ylabel(f"{metric}: {name_b} − {name_a}")
    ax.set_title("paired bootstrap, 95% CI")
    fig.tight_layout()
    with atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def load_results(run_dir: str | Path) -> dict:
    return orjson.loads((Path(run_dir) / RESULTS_FILE).read_bytes())


@dataclass
class CompareConfig:
    """`ember eval compare`: per-benchmark B - A with paired-bootstrap 95% intervals."""

    run_a: str = opt(None, "Baseline run directory (A).", argument=True, metavar="A")
    run_b: str = opt(None, "Candidate run directory (B).", argument=True, metavar="B")
    metric: str = opt("score", "Per-sample metric to compare (score, em, f1).")
    resamples: int = opt(10_000, "Bootstrap resamples.", min=100)
    seed: int = seed_opt(0)
    plot: str | None = opt("compare.png", "PNG of the differences ('none': no plot).")


def run_compare(cfg: CompareConfig) -> Summary:
    if not cfg.run_a or not cfg.run_b:
        raise ValueError("compare needs two run directories A and B")
    plot = None if cfg.plot in (None, "none") else cfg.plot
    rows = compare(cfg.run_a, cfg.run_b, metric=cfg.metric, resamples=cfg.resamples,
                   seed=cfg.seed, plot=plot)
    return Summary("eval compare", read=sum(r["items"] for r in rows), produced=len(rows),
                   output=plot, details={"a": cfg.run_a, "b": cfg.run_b, "metric": cfg.metric,
                                         "benchmarks": rows})
