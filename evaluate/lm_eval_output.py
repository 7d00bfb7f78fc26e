"""`ember eval`'s results in lm-eval's layout, beside ember's own results.json.

    OUT/lm-eval/<model, sanitised as lm-eval does>/results_<date>.json
    OUT/lm-eval/<model>/samples_<task>_<date>.jsonl      (one per benchmark)

so that ``lm_eval.utils.make_table(json.load(open(results_file)))`` and the rest of
lm-eval's post-processing (which finds files by these names, as under lm-eval's
``--output_path`` with ``--log_samples``) read an ember run as they read an lm-eval run.

The results file has lm-eval's keys: ``results`` ({task: {"metric,filter": value,
"metric_stderr,filter": stderr or "N/A", alias, ...}}), ``versions``, ``n-shot``,
``configs``, ``higher_is_better``, ``n-samples``, ``group_subtasks`` and ``config`` (the
model and generation settings). A task reproduced from lm-eval (ember.evaluate.lm_eval_tasks)
reports lm-eval's metrics and filters (``exact_match,strict-match``); any other benchmark
reports ember's metrics with filter ``none`` (``score,none``), version ``ember <version>``.
Each samples row is what lm-eval logs per (document, filter): ``doc_id``, ``doc``,
``target``, ``arguments`` (the prompt and generation settings), ``resps``,
``filtered_resps``, ``filter``, ``metrics`` (the names), the three sha256 hashes, and
each metric's value. With ``--samples`` > 1, ``resps`` holds every sample,
``filtered_resps`` the first sample's (lm-eval's ``take_first``) and the metric values are
the mean over the samples, as in ember's own results.

The files are derived from samples.jsonl each time results.json is written (a run, a
resumed run, ``ember eval rescore``); the previous ones in that directory are removed
so that "the latest file" is always the current one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from pathlib import Path

import orjson

from ember.adp.io import atomic_writer
from ember.evaluate.lm_eval_tasks import FEWSHOT_SEED, LM_EVAL_VERSION

LM_EVAL_DIR = "lm-eval"


def sanitize_model_name(name: str) -> str:
    """lm-eval's directory name for a model: runs of ``"<>:/|\\?*[]`` become ``__``."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def _file_task_name(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _task_of(bench):
    return getattr(bench, "lm_eval", None)


def _keys(bench, rows_by_item: dict) -> list[tuple[str, str, str]]:
    """(ember metric name, lm-eval metric, lm-eval filter) for one benchmark."""
    task = _task_of(bench)
    if task is not None:
        return [(f"{m},{f}", m, f) for m, f in task.keys()]
    names = sorted({m for rows in rows_by_item.values() for r in rows
                    for m, v in r["metrics"].items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return [(m, m, "none") for m in names]


def lm_eval_results(results: dict, benches: list, done: dict, asked: dict | None,
                    date_id: str) -> tuple[dict, dict[str, list[dict]]]:
    """(the results file's dict, {task: samples rows}) from ember's results and samples."""
    out = {"results": {}, "group_subtasks": {}, "configs": {}, "versions": {}, "n-shot": {},
           "higher_is_better": {}, "n-samples": {}}
    samples: dict[str, list[dict]] = {}
    gen = results["generation"]
    for bench in benches:
        rows_by_item = {i: rows for (b, i), rows in done.items() if b == bench.name
                        and (asked is None or i in asked.get(bench.name, ()))}
        entry = results["benchmarks"].get(bench.name)
        if entry is None:
            continue
        task = _task_of(bench)
        items = {it.id: it for it in bench.load()}
        keys = _keys(bench, rows_by_item)
        res = {"name": bench.name, "alias": bench.name, "sample_len": entry["items"]}
        for ember_name, metric, filt in keys:
            m = entry["metrics"].get(ember_name)
            if m is None:
                continue
            res[f"{metric},{filt}"] = m["value"]
            res[f"{metric}_stderr,{filt}"] = "N/A" if m["stderr"] is None else m["stderr"]
        if task is None:  # pass@k comes from the aggregation, not from a per-sample value
            for name, m in entry["metrics"].items():
                if name.startswith("pass@"):
                    res[f"{name},none"] = m["value"]
                    res[f"{name}_stderr,none"] = "N/A" if m["stderr"] is None else m["stderr"]
        out["results"][bench.name] = res
        metric_names = list(dict.fromkeys(
            [k[1] for k in keys] + [n for n in entry["metrics"] if n.startswith("pass@")]))
        out["higher_is_better"][bench.name] = {m: True for m in metric_names}
        out["n-samples"][bench.name] = {"original": len(items), "effective": entry["items"]}
        stop = list(bench.stop)
        gen_kwargs = {"until": stop, "do_sample": gen["temperature"] > 0,
                      "temperature": gen["temperature"],
                      "max_gen_toks": gen.get("max_new_tokens") or bench.max_new_tokens}
        if task is not None:
            out["versions"][bench.name] = task.version
            out["n-shot"][bench.name] = task.num_fewshot
            out["configs"][bench.name] = {**task.config,
                                          "generation_kwargs": {**task.config["generation_kwargs"],
                                                                **gen_kwargs}}
        else:
            out["versions"][bench.name] = f"ember {results['ember_version']}"
            out["n-shot"][bench.name] = getattr(bench, "num_fewshot", 0)
            out["configs"][bench.name] = {"task": bench.name, "description": bench.description,
                                          "scorer": bench.scorer, "output_type": "generate_until",
                                          "chat": bench.chat, "generation_kwargs": gen_kwargs,
                                          "metadata": {"ember_benchmark": bench.name}}
        samples[bench.name] = _sample_rows(bench, items, rows_by_item, keys, gen_kwargs)
    model = results["model"]
    out["config"] = {
        "model": f"ember-{results['backend']}",
        "model_args": {"pretrained": results.get("model_path") or model,
                       **({"base_url": results["base_url"]} if results.get("base_url") else {})},
        "batch_size": None, "limit": gen.get("limit"), "gen_kwargs": {
            "temperature": gen["temperature"], "top_p": gen.get("top_p"), "n": gen["n"],
            "max_gen_toks": gen.get("max_new_tokens")},
        "random_seed": gen["seed"], "fewshot_seed": FEWSHOT_SEED,
    }
    out.update({
        "date": datetime.datetime.fromisoformat(results["created"]).timestamp(),
        "model_source": f"ember-{results['backend']}", "model_name": model,
        "model_name_sanitized": sanitize_model_name(model),
        "ember_version": results["ember_version"], "git_hash": results.get("git_revision"),
        "reproduces_lm_eval_version": LM_EVAL_VERSION, "date_id": date_id,
        "total_evaluation_time_seconds": str((results.get("timings") or {}).get("total_s", "")),
    })
    return out, samples


def _sample_rows(bench, items: dict, rows_by_item: dict, keys: list,
                 gen_kwargs: dict) -> list[dict]:
    filters = list(dict.fromkeys(f for _, _, f in keys)) or ["none"]
    order = sorted(rows_by_item, key=lambda i: (items[i].meta.get("doc_id", 0) if i in items
                                                 else 0, i))
    out = []
    for filt in filters:
        for doc_index, item_id in enumerate(order):
            rows = sorted(rows_by_item[item_id], key=lambda r: r.get("sample", 0))
            item = items.get(item_id)
            doc = (item.meta.get("doc") if item else None) or {
                "id": item_id, "gold": rows[0].get("gold")}
            doc_id = item.meta.get("doc_id", doc_index) if item else doc_index
            prompt = rows[0].get("prompt")
            prompt_text = prompt if isinstance(prompt, str) else json.dumps(prompt,
                                                                            ensure_ascii=False)
            target = rows[0].get("gold")
            first = rows[0]["metrics"]
            if filt == "none" and _task_of(bench) is None:
                filtered = rows[0].get("extracted")
            else:
                filtered = (first.get("filtered") or {}).get(filt, rows[0].get("extracted"))
            row = {"doc_id": doc_id, "doc": doc, "target": target,
                   "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": gen_kwargs}},
                   "resps": [[r["response"] for r in rows]], "filtered_resps": [filtered],
                   "filter": filt, "metrics": [], "doc_hash": _sha256(json.dumps(
                       doc, indent=2, ensure_ascii=False, default=str)),
                   "prompt_hash": _sha256(prompt_text), "target_hash": _sha256(str(target))}
            for ember_name, metric, f in keys:
                if f != filt:
                    continue
                values = [r["metrics"].get(ember_name, 0.0) for r in rows]
                row[metric] = sum(values) / len(values)
                row["metrics"].append(metric)
            out.append(row)
    return out


def write_lm_eval(out: Path, results: dict, benches: list, done: dict,
                  asked: dict | None = None) -> Path:
    """Write OUT/lm-eval/<model>/results_<date>.json and its samples files (replacing the
    ones written before); returns the results file's path."""
    folder = Path(out) / LM_EVAL_DIR / sanitize_model_name(results["model"])
    folder.mkdir(parents=True, exist_ok=True)
    date_id = datetime.datetime.now().isoformat().replace(":", "-")
    data, samples = lm_eval_results(results, benches, done, asked, date_id)
    old = list(folder.glob("results_*.json")) + list(folder.glob("samples_*.jsonl"))
    for name, rows in samples.items():
        with atomic_writer(folder / f"samples_{_file_task_name(name)}_{date_id}.jsonl") as f:
            f.write(b"".join(orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS) + b"\n"
                             for r in rows))
    path = folder / f"results_{date_id}.json"
    with atomic_writer(path) as f:
        f.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")
    for p in old:  # after the new ones exist: a kill in between leaves both, never neither
        if p.name not in {path.name} and date_id not in p.name:
            p.unlink(missing_ok=True)
    return path
