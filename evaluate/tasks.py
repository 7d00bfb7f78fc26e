"""Task records: the one reader of the file format that synthesis writes and training reads.

    from ember.evaluate.tasks import read_tasks, task_item
    tasks, rejects = read_tasks("tasks.jsonl")        # schema-checked, rejects with reasons
    item = task_item(tasks[0])                        # asked exactly as `ember eval` asks

A task record (schemas/task.schema.json) is ``{id, prompt, answer}`` plus optional
``scorer`` (math by default, qa, code or a dotted path), ``template`` (how to ask it:
``{prompt}`` is replaced by the prompt; default: the wording of the built-in benchmarks
of its scorer), ``extract`` (how its scorer reads the answer), ``tests`` (code tasks) and
any other fields (categories, pass-rate columns). ``ember synth questions`` writes them;
``ember synth solutions``, ``ember eval pass-rate`` and ``ember train --tasks`` read them,
all through ``read_tasks`` and ``task_item``, so a file one accepts the others accept and
every stage words a task identically.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from ember.adp.io import iter_units
from ember.adp.rejects import reject
from ember.evaluate.item import Item
from ember.evaluate.scoring import get_scorer
from ember.evaluate.templates import PROMPTS, render
from ember.schemas import load_schema


def task_item(task: dict) -> Item:
    """A task record as an Item, worded like the built-in benchmark of its scorer (or by
    its own ``template``), so that pass-rate, solutions and RFT ask what `ember eval` asks."""
    scorer = task.get("scorer", "math")
    template = task.get("template")
    if template is not None:
        text = render(template, {**task, "question": task["prompt"]})
    else:
        wording = PROMPTS.get(scorer)
        text = render(wording, {"question": task["prompt"]}) if wording else task["prompt"]
    meta = {"scorer": scorer}
    if task.get("extract") is not None:
        meta["extract"] = task["extract"]
    gold = task["tests"] if scorer == "code" and isinstance(task.get("tests"), dict) else \
        str(task["answer"])
    return Item(id=str(task["id"]), messages=[{"role": "user", "content": text}], gold=gold,
                prompt=task["prompt"], meta=meta)


def read_tasks(path: str | Path) -> tuple[list[dict], list[dict]]:
    """Task records from any file ``iter_units`` reads: (tasks, rejects). A record is
    rejected (ember.adp.rejects shape) when it is not valid JSON, breaks the schema,
    repeats an id (pass rates and selections are keyed by id), names a scorer that does
    not load, or has a template with an unknown placeholder."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema("task"))
    tasks, rejects, seen = [], [], set()
    for line, payload in iter_units(path):
        def bad(reason: str, detail: str) -> None:
            rejects.append(reject(reason, detail, source=path, line=line))
        try:
            task = orjson.loads(payload) if isinstance(payload, bytes) else payload
        except orjson.JSONDecodeError as e:
            bad("invalid-json", str(e))
            continue
        error = next(iter(validator.iter_errors(task)), None)
        if error is not None:
            where = f" at {error.json_path}" if error.json_path != "$" else ""
            bad("not-a-task", f"{error.message}{where}")
            continue
        if task["id"] in seen:
            bad("duplicate-id", f"id {task['id']!r} appeared before")
            continue
        try:
            get_scorer(task.get("scorer", "math"))
            task_item(task)
        except ValueError as e:
            bad("unknown-scorer", str(e))
            continue
        except KeyError as e:
            bad("bad-template", f"template placeholder {e.args[0]}")
            continue
        seen.add(task["id"])
        tasks.append(task)
    return tasks, rejects
