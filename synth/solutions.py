"""DART-Math-style solution synthesis: difficulty-aware rejection sampling into SFT data.

    ember synth solutions --tasks tasks.jsonl --strategy prop2diff --k 8 -o sft.jsonl

Reading top to bottom (Tong et al. 2024, "DART-Math"):

1. Read task records (any JSONL with `prompt` or `question`, and `answer`; `id` and
   `scorer` optional, scorer `math` by default). Bad lines go to the rejects file.
2. Probe: sample --probe solutions per task, score them with the task's eval scorer, and
   take the fail rate as the task's difficulty.
3. Allot the rest of the budget (K attempts per task on average, probes included):
   `uniform` gives every task K - probe more attempts; `prop2diff` spreads the same total
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
from dataclasses import dataclass, field

from ember.adp.io import write_json, write_jsonl
from ember.adp.rejects import default_rejects_path, reject, write_rejects
from ember.evaluate.scoring import get_scorer
from ember.evaluate.tasks import read_tasks, task_item
from ember.llm.backends import SamplingParams

STRATEGIES = ("uniform", "prop2diff")
# Difficulty bins of the probe fail rate: (upper bound, exclusive except the last, name).
BINS = ((1 / 3, "easy"), (2 / 3, "medium"), (1.0, "hard"), (math.inf, "unsolved-in-probe"))


@dataclass
class SolutionsConfig:
    tasks: str = field(metadata={"help": "Task records, JSONL (prompt/question + answer)."})
    out: str = field(metadata={"help": "Output sft-chat JSONL of correct solutions."})
    strategy: str = field(default="prop2diff", metadata={"help": "uniform | prop2diff."})
    k: int = field(default=8, metadata={"help": "Attempts per task on average, probes included."})
    probe: int = field(default=4, metadata={"help": "First-pass samples per task (difficulty)."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature."})
    max_new_tokens: int = field(default=512, metadata={"help": "Token cap per solution."})
    max_per_task: int | None = field(default=None, metadata={
        "help": "Keep at most this many correct solutions per task."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})
    rejects: str | None = field(default=None, metadata={
        "help": "Rejects JSONL [default: OUT with .rejects.jsonl]."})


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


def synth_solutions(cfg: SolutionsConfig, llm, log=lambda msg: None, on_progress=None) -> dict:
    """Probe, allot, sample, verify; write OUT, the rejects and OUT.summary.json."""
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {cfg.strategy!r}: use {' or '.join(STRATEGIES)}")
    if cfg.probe < 1 or cfg.k < cfg.probe:
        raise ValueError(f"need 1 <= --probe <= --k (got probe {cfg.probe}, k {cfg.k})")
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
    log(f"probe: {cfg.probe} samples x {len(tasks)} tasks")
    probe_texts, probe_err = _sample(llm, items, [cfg.probe] * len(tasks), params, on_progress)
    probe_ok = [[correct(i, t) for t in texts] for i, texts in enumerate(probe_texts)]
    fail = [1 - sum(ok) / len(ok) if ok else 1.0 for ok in probe_ok]
    extra = allocate(fail, (cfg.k - cfg.probe) * len(tasks), cfg.strategy)
    log(f"{cfg.strategy}: {sum(extra)} more attempts")
    # Another seed than the probe's (the openai backend may sample seeds seed..seed+n-1).
    more_texts, more_err = _sample(llm, items, extra, SamplingParams(
        temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
        seed=cfg.seed + cfg.probe), on_progress)

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
                                  err or f"0 correct of {cfg.probe + extra[i]} attempts",
                                  stage="sample", id=task["id"]))
        for j, text in enumerate(kept):
            rows.append({"id": f"{task['id']}-s{j}", "task_id": task["id"],
                         "messages": items[i].messages + [{"role": "assistant", "content": text}],
                         "fail_rate": round(fail[i], 4), "difficulty": level})

    rejects_path = cfg.rejects or default_rejects_path(cfg.out)
    write_jsonl(cfg.out, rows)
    write_rejects(rejects_path, rejects)
    reasons = Counter(f"{r['stage']}: {r['reason']}" for r in rejects)
    summary = {
        "command": "synth solutions", "strategy": cfg.strategy, "requested": len(tasks),
        "produced": len(rows), "tasks_covered": sum(b["covered"] for b in bins.values()),
        "rejected": sum(reasons.values()), "rejected_by_reason": dict(sorted(reasons.items())),
        "attempts": {"probe": cfg.probe * len(tasks), "extra": sum(extra),
                     "extra_min": min(extra, default=0), "extra_max": max(extra, default=0)},
        "coverage": {name: {"tasks": b["tasks"], "covered": b["covered"],
                            "coverage": round(b["covered"] / b["tasks"], 4) if b["tasks"] else None}
                     for name, b in bins.items()},
        "llm": dict(llm.usage), "seconds": round(time.monotonic() - start, 2),
        "output": cfg.out, "rejects": rejects_path, "summary": cfg.out + ".summary.json",
    }
    write_json(summary["summary"], summary)
    return summary
