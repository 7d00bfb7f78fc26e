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

A task file can be written in either of two forms, and ``read_tasks`` reads both:

- the plain form: the record as it is (what files written before have);
- the file form, ``task_record(task)``: ``{id, prompt, answer, scorer, extra}``, all
  strings, ``extra`` the JSON text of every other field. Files of different sources
  (benchmarks, ``synth questions`` with sub-questions and judge scores, code tasks with
  tests, pass-rate columns) then have the same columns and types, so
  ``datasets.load_dataset("json", data_files=[...])`` loads any set of them together
  (Arrow takes one schema from the first file), and the result is a prompt-only dataset
  that TRL's GRPOTrainer takes as it is: ``prompt`` is the question text (TRL's standard
  format), ``answer`` and the other columns reach reward functions as keyword arguments.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from ember.adp.io import iter_units
from ember.adp.rejects import reject
from ember.evaluate.item import Item
from ember.evaluate.scoring import get_scorer
from ember.evaluate.templates import PROMPTS, render
from ember.schemas import load_schema


# The columns of the file form, in order; everything else goes into EXTRA as JSON text.
FILE_COLUMNS = ("id", "prompt", "answer", "scorer")
EXTRA = "extra"


def task_record(task: dict) -> dict:
    """A task in the file form (see the module docstring): the line to write to a task
    file so that it loads together with task files of any other source. ``read_tasks``
    gives the task back (``scorer`` filled in as ``math`` where it was absent, an answer
    that was not a string as its JSON text; keys starting with ``_`` are not written)."""
    answer = task.get("answer")
    rest = {k: v for k, v in task.items()
            if k not in FILE_COLUMNS and k != EXTRA and not k.startswith("_")}
    return {"id": str(task["id"]), "prompt": task["prompt"],
            "answer": answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False),
            "scorer": task.get("scorer") or "math",
            EXTRA: json.dumps(rest, ensure_ascii=False)}


def from_file_form(record):
    """A record of either form as the task it holds: the file form's ``extra`` decoded
    into fields (the columns win over ``extra`` keys of the same name). ValueError when
    ``extra`` is text but not of a JSON object."""
    if not isinstance(record, dict) or not isinstance(record.get(EXTRA), str):
        return record
    try:
        extra = orjson.loads(record[EXTRA])
    except orjson.JSONDecodeError as e:
        raise ValueError(f"`{EXTRA}` is not JSON text: {e}") from None
    if not isinstance(extra, dict):
        raise ValueError(f"`{EXTRA}` is not JSON text of an object")
    return {**extra, **{k: v for k, v in record.items() if k != EXTRA}}


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
    """Task records from any file ``iter_units`` reads, in either form: (tasks, rejects).
    A record is rejected (ember.adp.rejects shape) when it is not valid JSON (or its
    ``extra`` is not JSON text of an object), breaks the schema, repeats an id (pass rates
    and selections are keyed by id), names a scorer that does not load, or has a template
    with an unknown placeholder."""
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
        try:
            task = from_file_form(task)
        except ValueError as e:
            bad("not-a-task", str(e))
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
