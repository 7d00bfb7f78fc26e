"""DART-Math-style solution synthesis: difficulty-aware rejection sampling into SFT data.

    ember synth solutions --tasks tasks.jsonl --strategy prop2diff --samples 8 -o sft.jsonl

Reading top to bottom (Tong et al. 2024, "DART-Math"):

1. Read task records (schemas/task.schema.json, through ember.evaluate.tasks: the reader
   `ember train --tasks` uses). Bad lines go to the rejects file with their reason.
2. Probe: sample --probe-samples solutions per task, score them with the task's eval scorer, and
   take the fail rate as the task's difficulty.
3. Allot the rest of the budget (--samples attempts per task on average, probes included):
   `uniform` gives every task samples - probe_samples more; `prop2diff` spreads the same total
   in proportion to the fail rate, at least one per task, so hard tasks get most.
4. Sample, score, and keep each distinct verified-correct solution (probe samples too) as
   an sft-chat record: the question worded as `ember eval` asks it (`task_item`), the
   solution as the assistant's reply.

The summary reports per-difficulty coverage: in each fail-rate bin, how many tasks ended
with at least one correct solution (what prop2diff is meant to raise for hard tasks).
Every call goes through the LLM cache, so a rerun resumes and gives the same output.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ember.adp.config import opt, section
from ember.adp.io import output_lock, write_json, write_jsonl
from ember.adp.rejects import default_rejects_path, reject, write_rejects
from ember.evaluate.scoring import get_scorer
from ember.evaluate.tasks import read_tasks, task_item
from ember.adp.summary import Summary
from ember.llm.backends import SamplingParams
from ember.llm.client import (LLMConfig, make_llm, max_new_tokens_opt, samples_opt, seed_opt,
                              temperature_opt)

STRATEGIES = ("uniform", "prop2diff")
# Difficulty bins of the probe fail rate: (upper bound, exclusive except the last, name).
BINS = ((1 / 3, "easy"), (2 / 3, "medium"), (1.0, "hard"), (math.inf, "unsolved-in-probe"))


@dataclass
class SolutionsConfig:
    """`ember synth solutions`: difficulty-aware rejection sampling (DART-Math)."""

    tasks: str = opt(None, "Task records, JSONL (schemas/task.schema.json).")
    out: str = opt(None, "Output JSONL file: sft-chat records of verified solutions; "
                         "OUT.rejects.jsonl, OUT.summary.json and OUT.cache.sqlite beside it.",
                   short="-o")
    strategy: str = opt("prop2diff", "uniform (the same attempts per task) or prop2diff (in "
                                     "proportion to the probe fail rate, at least one).")
    samples: int = samples_opt(8, "On average per task, probe samples included.")
    probe_samples: int = opt(4, "First-pass samples per task that measure its difficulty.",
                             min=1)
    temperature: float = temperature_opt(0.7)
    max_new_tokens: int = max_new_tokens_opt(512)
    max_per_task: int | None = opt(None, "Keep at most this many correct solutions per task "
                                         "[default: all distinct].", min=1)
    seed: int = seed_opt(0)
    rejects: str | None = opt(None, "Rejects JSONL file [default: OUT.rejects.jsonl].")
    min_yield: int = opt(1, "Exit 3 (partial result) when fewer than this many records are "
                            "produced; 0 accepts an empty output.", min=0)
    llm: LLMConfig = section(LLMConfig, help="LLM")


def allocate(fail_rates: list[float], budget: int, strategy: str) -> list[int]:
    """Extra attempts per task, summing to ``budget`` (prop2diff: more when the minimum of
    one per task exceeds it). uniform splits evenly; prop2diff gives one each, then the
    rest in proportion to the fail rate (largest remainders; evenly if all rates are 0)."""
    n = len(fail_rates)
    if n == 0:
        return []
    if strategy == "uniform":
        base, rest = divmod(max(budget, 0), n)
        return [base + (i < rest) for i in range(n)]
    if strategy != "prop2diff":
        raise ValueError(f"unknown strategy {strategy!r}: use {' or '.join(STRATEGIES)}")
    left = budget - n
    if left <= 0:
        return [1] * n
    weights = list(fail_rates) if sum(fail_rates) > 0 else [1.0] * n
    total = sum(weights)
    shares = [left * w / total for w in weights]
    counts = [int(s) for s in shares]
    # hand out what flooring left over: largest fraction first, harder task on ties
    order = sorted(range(n), key=lambda i: (counts[i] - shares[i], -weights[i], i))
    for i in order[:left - sum(counts)]:
        counts[i] += 1
    return [1 + c for c in counts]


def difficulty(fail_rate: float) -> str:
    return next(name for bound, name in BINS if fail_rate < bound or bound == math.inf)


def _sample(llm, items, counts: list[int], params: SamplingParams, on_progress=None):
    """Texts per item: counts[i] samples each (one batched call per distinct count)."""
    import dataclasses

    texts: list[list[str]] = [[] for _ in items]
    errors: list[str | None] = [None] * len(items)
    for n in sorted(set(counts) - {0}):
        idx = [i for i, c in enumerate(counts) if c == n]
        results = llm.generate([items[i].messages for i in idx],
                               dataclasses.replace(params, n=n), on_progress)
        for i, r in zip(idx, results):
            texts[i] = [c.text for c in r.completions]
            errors[i] = r.error
    return texts, errors


def synth_solutions(cfg: SolutionsConfig, llm, log=lambda msg: None, on_progress=None) -> Summary:
    """Probe, allot, sample, verify; write OUT, the rejects and OUT.summary.json."""
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {cfg.strategy!r}: use {' or '.join(STRATEGIES)}")
    if cfg.probe_samples < 1 or cfg.samples < cfg.probe_samples:
        raise ValueError(f"--probe-samples ({cfg.probe_samples}) must not exceed --samples "
                         f"({cfg.samples}): --samples counts the probes")
    start = time.monotonic()
    tasks, rejects = read_tasks(cfg.tasks)
    for r in rejects:
        r["stage"] = "input"
    items = [task_item(t) for t in tasks]
    scorers = [get_scorer(t.get("scorer", "math")) for t in tasks]
    broken: set[str] = set()

    def correct(i: int, text: str) -> bool:
        try:
            return scorers[i](text, items[i])["score"] >= 1.0
        except Exception as e:  # a scorer that cannot read this gold: say so once, keep going
            if tasks[i]["id"] not in broken:
                broken.add(tasks[i]["id"])
                rejects.append(reject("scorer-error", f"{type(e).__name__}: {e}"[:300],
                                      stage="score", id=tasks[i]["id"]))
            return False

    params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                            seed=cfg.seed)
    log(f"probe: {cfg.probe_samples} samples x {len(tasks)} tasks")
    probe_texts, probe_err = _sample(llm, items, [cfg.probe_samples] * len(tasks), params, on_progress)
    probe_ok = [[correct(i, t) for t in texts] for i, texts in enumerate(probe_texts)]
    fail = [1 - sum(ok) / len(ok) if ok else 1.0 for ok in probe_ok]
    extra = allocate(fail, (cfg.samples - cfg.probe_samples) * len(tasks), cfg.strategy)
    log(f"{cfg.strategy}: {sum(extra)} more attempts")
    # Another seed than the probe's (the openai backend may sample seeds seed..seed+n-1).
    more_texts, more_err = _sample(llm, items, extra, SamplingParams(
        temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
        seed=cfg.seed + cfg.probe_samples), on_progress)

    rows, bins = [], {name: Counter() for _, name in BINS}
    for i, task in enumerate(tasks):
        kept: list[str] = []
        for text, ok in zip(probe_texts[i] + more_texts[i],
                            probe_ok[i] + [correct(i, t) for t in more_texts[i]]):
            if ok and text.strip() and text not in kept:
                kept.append(text)
        kept = kept[:cfg.max_per_task] if cfg.max_per_task else kept
        level = difficulty(fail[i])
        bins[level]["tasks"] += 1
        bins[level]["covered"] += bool(kept)
        if not kept:
            err = probe_err[i] or more_err[i]
            rejects.append(reject("llm-error" if err and not probe_texts[i] else "unsolved",
                                  err or f"0 correct of {cfg.probe_samples + extra[i]} attempts",
                                  stage="sample", id=task["id"]))
        for j, text in enumerate(kept):
            rows.append({"id": f"{task['id']}-s{j}", "task_id": task["id"],
                         "messages": items[i].messages + [{"role": "assistant", "content": text}],
                         "fail_rate": round(fail[i], 4), "difficulty": level})

    rejects_path = cfg.rejects or default_rejects_path(cfg.out)
    write_jsonl(cfg.out, rows)
    write_rejects(rejects_path, rejects)
    reasons = Counter(f"{r['stage']}: {r['reason']}" for r in rejects)
    summary = Summary(
        "synth solutions", read=len(tasks) + sum(r["stage"] == "input" for r in rejects),
        produced=len(rows), rejected=sum(reasons.values()),
        rejected_by_reason=dict(sorted(reasons.items())), output=cfg.out, rejects=rejects_path,
        seconds=time.monotonic() - start, details={
            "strategy": cfg.strategy, "tasks": len(tasks),
            "tasks_covered": sum(b["covered"] for b in bins.values()),
            "attempts": {"probe": cfg.probe_samples * len(tasks), "extra": sum(extra),
                         "extra_min": min(extra, default=0), "extra_max": max(extra, default=0)},
            "coverage": {name: {"tasks": b["tasks"], "covered": b["covered"],
                                "coverage": round(b["covered"] / b["tasks"], 4)
                                if b["tasks"] else None} for name, b in bins.items()},
            "llm": dict(llm.usage), "summary": cfg.out + ".summary.json"})
    summary.require(cfg.min_yield, "verified solutions")
    write_json(summary.details["summary"], summary.to_dict())
    return summary


def run(cfg: SolutionsConfig, progress=None, log=lambda msg: None) -> Summary:
    """`ember synth solutions`: check the options, open the LLM (cached beside OUT), run."""
    if not cfg.out or not cfg.tasks:
        raise ValueError("missing --tasks or --out")
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"unknown --strategy {cfg.strategy!r}: use {' or '.join(STRATEGIES)}")
    if cfg.probe_samples > cfg.samples:
        raise ValueError(f"--probe-samples ({cfg.probe_samples}) must not exceed --samples "
                         f"({cfg.samples}): --samples counts the probes")
    if not Path(cfg.tasks).exists():
        raise ValueError(f"--tasks {cfg.tasks}: no such file")
    with output_lock(cfg.out), make_llm(cfg.llm, out=cfg.out) as llm:
        return synth_solutions(cfg, llm, log, on_progress=(
            lambda done, total: progress(done, total, "solutions")) if progress else None)
