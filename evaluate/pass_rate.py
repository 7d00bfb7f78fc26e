"""Per-task pass rates for training: K samples per task, the share that scores correct.

    ember eval pass-rate --model smollm2 --tasks tasks.jsonl --samples 8 --column p_base -o rated.jsonl

Reads task records (schemas/task.schema.json), asks each one ``samples`` times with the same
wording as `ember eval` (``tasks.task_item``), scores every sample with the task's
scorer, and writes each task back with ``column`` = correct / samples: the reference pass rates
that the `bots` and `offline-easy2hard` selectors read. Records that are not valid tasks
go to ``OUT.rejects.jsonl`` with the reason. Output grows in ``.OUT.partial`` after every
chunk and is renamed into place at the end; a killed run started again skips the tasks
already written there.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from ember.adp.config import opt, section
from ember.adp.io import output_lock, publish
from ember.adp.rejects import count_reasons, default_rejects_path, reject, write_rejects
from ember.adp.summary import Summary
from ember.evaluate.scoring import get_scorer
from ember.evaluate.tasks import from_file_form, read_tasks, task_item, task_record
from ember.llm.backends import SamplingParams
from ember.llm.client import (LLMConfig, make_llm, max_new_tokens_opt, samples_opt, seed_opt,
                              temperature_opt, top_p_opt)


@dataclass
class PassRateConfig:
    """`ember eval pass-rate`: each task's pass rate over N samples, as a new column."""

    tasks: str = opt(None, "Task records, JSONL (schemas/task.schema.json).")
    column: str = opt(None, "Name of the pass-rate column to add (e.g. p_base).")
    out: str = opt(None, "Output JSONL file: the tasks with the column; a killed run, "
                         "started again, skips the tasks already rated.", short="-o")
    samples: int = samples_opt(8, "The pass rate is correct / samples.")
    temperature: float = temperature_opt(1.0)
    top_p: float = top_p_opt()
    max_new_tokens: int = max_new_tokens_opt(512)
    seed: int = seed_opt(0)
    min_yield: int = opt(1, "Exit 3 (partial result) when fewer than this many records are "
                            "produced; 0 accepts an empty output.", min=0)
    llm: LLMConfig = section(LLMConfig, help="LLM")


def pass_rates(cfg: PassRateConfig, progress=None, llm=None) -> Summary:
    """Write ``cfg.tasks`` with a pass-rate ``cfg.column`` to ``cfg.out`` (one run at a
    time per output)."""
    for name in ("tasks", "column", "out"):
        if not getattr(cfg, name):
            raise ValueError(f"missing --{name}")
    with output_lock(cfg.out):
        return _pass_rates(cfg, progress, llm)


def _pass_rates(cfg: PassRateConfig, progress, llm) -> Summary:
    start = time.perf_counter()
    out, column = Path(cfg.out), cfg.column
    partial = out.with_name(f".{out.name}.partial")
    rejects_path = default_rejects_path(out)
    tasks_read, rejects = read_tasks(cfg.tasks)
    if not tasks_read:
        raise ValueError(f"{cfg.tasks}: no usable task ({len(rejects)} rejected; reasons in "
                         f"{rejects_path})" if rejects else f"{cfg.tasks}: no task records")
    done = _ids_in(partial)
    good = [t for t in tasks_read if str(t["id"]) not in done]
    llm = llm or make_llm(cfg.llm)
    params = SamplingParams(n=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    step = cfg.llm.batch_size if cfg.llm.backend == "hf" else 4 * cfg.llm.concurrency
    with open(partial, "ab") as f, cf.ThreadPoolExecutor(4) as pool:
        for lo in range(0, len(good), step):
            chunk = good[lo:lo + step]
            items = [task_item(t) for t in chunk]
            results = llm.generate([it.messages for it in items], params)
            for task, item, result in zip(chunk, items, results):
                if not result.ok:
                    kind, _, why = (result.error or "").partition(": ")
                    rejects.append(reject(kind, why, id=task["id"]) if kind == "prompt-too-long"
                                   else reject("llm-error", result.error or "", id=task["id"]))
                    continue
                scorer = get_scorer(item.meta["scorer"])
                scores = list(pool.map(lambda c: scorer(c.text, item)["score"],
                                       result.completions))
                task[column] = sum(s >= 1 for s in scores) / len(scores)
                f.write(orjson.dumps(task_record(task)) + b"\n")
            f.flush()
            if progress:
                progress(min(lo + step, len(good)), len(good), "tasks")
    rated = [from_file_form(orjson.loads(line)) for line in open(partial, "rb")]
    publish(partial, out)
    write_rejects(rejects_path, rejects)
    rates = [t[column] for t in rated]
    summary = Summary(
        "eval pass-rate", read=len(tasks_read) + len([r for r in rejects if r["line"]]),
        produced=len(rated), rejected=len(rejects), rejected_by_reason=count_reasons(rejects),
        output=str(out), rejects=rejects_path, seconds=time.perf_counter() - start,
        details={"resumed": len(done), "column": column, "samples": cfg.samples,
                 "mean": sum(rates) / len(rates) if rates else None,
                 "all_correct": sum(r == 1 for r in rates),
                 "all_wrong": sum(r == 0 for r in rates)})
    summary.require(cfg.min_yield, "rated tasks")
    return summary


def _ids_in(path: Path) -> set[str]:
    ids = set()
    if path.exists():
        with open(path, "rb") as f:
            good_bytes = 0
            for line in f:
                try:
                    ids.add(str(orjson.loads(line)["id"]))
                    good_bytes += len(line)
                except (orjson.JSONDecodeError, KeyError):
                    break
        os.truncate(path, good_bytes)  # drop a torn last line from a kill
    return ids
