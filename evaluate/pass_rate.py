"""Per-task pass rates for training: K samples per task, the share that scores correct.

    ember eval pass-rate --model smollm2 --tasks tasks.jsonl --n 8 --column p_base -o rated.jsonl

Reads task records (schemas/task.schema.json), asks each one ``n`` times with the same
wording as `ember eval` (``tasks.task_item``), scores every sample with the task's
scorer, and writes each task back with ``column`` = correct / n: the reference pass rates
that the `bots` and `offline-easy2hard` selectors read. Records that are not valid tasks
go to ``OUT.rejects.jsonl`` with the reason. Output grows in ``.OUT.partial`` after every
chunk and is renamed into place at the end; a killed run started again skips the tasks
already written there.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from pathlib import Path

import orjson

from ember.adp.io import publish
from ember.adp.rejects import default_rejects_path, write_rejects
from ember.evaluate.scoring import get_scorer
from ember.evaluate.tasks import read_tasks, task_item
from ember.llm.backends import SamplingParams, make_backend
from ember.llm.models import resolve_model


def pass_rates(tasks: str | Path, out: str | Path, *, model: str, column: str, n: int = 8,
               backend: str = "hf", base_url: str | None = None, temperature: float = 1.0,
               top_p: float = 1.0, max_new_tokens: int = 512, seed: int = 0,
               batch_size: int = 16, concurrency: int = 8, progress=None) -> dict:
    """Write ``tasks`` with a pass-rate ``column`` to ``out``; returns a summary dict."""
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    rejects_path = default_rejects_path(out)
    done = _ids_in(partial)
    tasks_read, rejects = read_tasks(tasks)
    good = [t for t in tasks_read if str(t["id"]) not in done]
    path = model if backend == "openai" else resolve_model(model)
    engine = make_backend(backend, path, base_url=base_url, batch_size=batch_size,
                          concurrency=concurrency)
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p,
                            max_new_tokens=max_new_tokens, seed=seed)
    step = batch_size if backend == "hf" else 4 * concurrency
    with open(partial, "ab") as f, cf.ThreadPoolExecutor(4) as pool:
        for lo in range(0, len(good), step):
            chunk = good[lo:lo + step]
            items = [task_item(t) for t in chunk]
            outputs = engine.generate([it.messages for it in items], params)
            for task, item, comps in zip(chunk, items, outputs):
                scorer = get_scorer(item.meta["scorer"])
                scores = list(pool.map(lambda c: scorer(c.text, item)["score"], comps))
                task[column] = sum(s >= 1 for s in scores) / len(scores)
                f.write(orjson.dumps(task) + b"\n")
            f.flush()
            if progress:
                progress(min(lo + step, len(good)), len(good))
    rated = [orjson.loads(line) for line in open(partial, "rb")]
    publish(partial, out)
    write_rejects(rejects_path, rejects)
    rates = [t[column] for t in rated]
    return {"tasks": len(rated), "rejected": len(rejects), "resumed": len(done),
            "column": column, "n": n, "mean": sum(rates) / len(rates) if rates else None,
            "all_correct": sum(r == 1 for r in rates), "all_wrong": sum(r == 0 for r in rates),
            "output": str(out), "rejects": str(rejects_path)}


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
