"""The eval loop: generate for every item, score, write samples.jsonl and results.json.

    from ember.evaluate.runner import EvalConfig, run_eval
    results = run_eval(EvalConfig(benchmarks=["gsm8k-boxed"], limit=20, out="ev"))

Reading top to bottom: resolve the model and backend; for each benchmark load its items,
skip those whose samples are already in ``OUT/samples.jsonl`` (a killed run resumes
without redoing finished items), generate the rest in chunks, score each response with
the benchmark's scorer on a thread pool (code runs in the sandbox), append the samples
after every chunk, then aggregate per-benchmark metrics with standard errors into
``OUT/results.json`` (validated against schemas/results.schema.json) and the same figures,
with per-task samples files, in lm-eval's layout under ``OUT/lm-eval/``
(ember.evaluate.lm_eval_output). Samples are appended
after every generation chunk (one hf batch), so a kill loses at most one chunk. ``rescore`` redoes
the scoring and the aggregation from saved samples without any model.

An agentic benchmark (``Benchmark.agent``: hotpotqa-search) runs the search agent of
ember.evaluate.agent per item instead of one generation: its answer is the response, the
sample keeps the agent's steps, and its finish_reason is the rollout's status (answered
or turn-limit).
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime
import math
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import orjson

from ember.adp.io import atomic_writer, output_lock, repair_tail, write_json
from ember.evaluate.agent import PROTOCOLS, protocol_opt, run_agent
from ember.evaluate.benchmarks import Benchmark, hotpotqa_paragraphs, load_benchmark
from ember.evaluate.code_scoring import pass_at_k
from ember.evaluate.item import Item
from ember.evaluate.scoring import get_scorer
from ember.evaluate.search import DOCS_FILE, index_docs, open_searcher
from ember.adp.config import from_dict, opt, section
from ember.adp.rejects import default_rejects_path, reject, write_rejects
from ember.adp.summary import Summary
from ember.llm.backends import BackendError, Completion, SamplingParams
from ember.llm.client import (LLM, LLMConfig, make_llm, max_new_tokens_opt, samples_opt, seed_opt,
                              temperature_opt, top_p_opt)
from ember.llm.models import resolve_model
from ember.schemas import load_schema

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"


@dataclass
class EvalConfig:
    """`ember eval`: which benchmarks, how to sample, where the results go; the model and
    backend are the LLM options (ember.llm.client.LLMConfig)."""

    benchmarks: list[str] = opt(["gsm8k"], "Benchmarks: lm-eval's tasks as lm-eval asks and "
                                           "scores them (gsm8k: 5-shot, gsm8k_cot, "
                                           "minerva_math500); ember's gsm8k-boxed, "
                                           "gsm8k-train, math500, mawps, asdiv, humaneval, "
                                           "hotpotqa, hotpotqa-context, hotpotqa-search "
                                           "(agentic: BM25 search then answer), "
                                           "custom:SPEC.yaml.", short="-b")
    out: str = opt("eval-out", "Output directory: results.json, samples.jsonl, run.json, "
                               "and the same results in lm-eval's layout under lm-eval/; "
                               "rerunning into it resumes.", short="-o")
    limit: int | None = opt(None, "First N items per benchmark.", min=1)
    samples: int = samples_opt(1, "pass@1 and pass@n are reported when > 1.")
    temperature: float = temperature_opt(0.0)
    top_p: float = top_p_opt()
    max_new_tokens: int | None = max_new_tokens_opt(None, "Default: the benchmark's own.")
    seed: int = seed_opt(0, "Sample k of an agentic item uses seed + k.")
    score_workers: int = opt(4, "Threads scoring responses (code runs in the sandbox).",
                             min=1)
    search_index: str | None = opt(None, "Search index for hotpotqa-search: an `ember synth "
                                         "index` directory or http://HOST:PORT of a /retrieve "
                                         "server [default: the 53 questions' 521 paragraphs, "
                                         "indexed into OUT/search-index].")
    protocol: str = protocol_opt()
    llm: LLMConfig = section(LLMConfig, help="LLM")

    def identity(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        return {"model": self.llm.model, "backend": self.llm.backend, "samples": self.samples,
                "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed,
                "protocol": self.protocol}


def run_eval(cfg: EvalConfig, llm: LLM | None = None,
             progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Run (or resume) an evaluation; returns the results dict also written to results.json.

    One run at a time per output directory (a second one fails at once, naming the
    first's pid); the settings are checked against run.json before any model loads."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out, directory=True):
        return _evaluate(cfg, out, llm, progress)


def _evaluate(cfg: EvalConfig, out: Path, llm, progress) -> dict:
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, not {cfg.protocol!r}")
    _check_resume(out, cfg)
    # A kill or a full disk can leave a torn last line; appending after it would fuse rows.
    repaired = repair_tail(out / SAMPLES_FILE)
    benches = [load_benchmark(name) for name in cfg.benchmarks]  # fail fast on a bad name
    done = _load_samples(out / SAMPLES_FILE)
    check_protocols(out, benches, done)  # before any model loads
    model_path = cfg.llm.model if cfg.llm.backend == "openai" else resolve_model(cfg.llm.model)
    if llm is None:
        llm = make_llm(cfg.llm)
    _drop_partial(out / SAMPLES_FILE, done, cfg.samples)
    timing: dict[str, dict] = {}
    rejected: list[dict] = []  # items that could not be asked (prompt-too-long)
    asked: dict[str, set[str]] = {}
    start = time.perf_counter()
    with open(out / SAMPLES_FILE, "ab") as samples_file, \
            cf.ThreadPoolExecutor(cfg.score_workers) as pool:
        for bench in benches:
            items = _limited(bench.load(), cfg.limit)
            asked[bench.name] = {item.id for item in items}
            finished = {i for (b, i) in done if b == bench.name}
            todo = [item for item in items if item.id not in finished]
            params = SamplingParams(n=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p,
                                    max_new_tokens=cfg.max_new_tokens or bench.max_new_tokens,
                                    seed=cfg.seed, stop=bench.stop)
            t = timing.setdefault(bench.name, {"generate_s": 0.0, "score_s": 0.0,
                                               "generated": 0, "completion_tokens": 0})
            # Samples are appended after every chunk, so a kill loses at most one chunk.
            step = cfg.llm.batch_size if cfg.llm.backend == "hf" else 4 * cfg.llm.concurrency
            for lo in range(0, len(todo), step):
                chunk = todo[lo:lo + step]
                t0 = time.perf_counter()
                if bench.agent:
                    rollouts = _run_agent(chunk, llm, params, cfg, out)
                    outputs = [[Completion(r.answer or "", r.tokens, r.status) for r in rs]
                               for rs in rollouts]
                else:
                    outputs = _generate(llm, [_prompt(bench, it) for it in chunk], params)
                    too_long = [(it, why) for it, why in zip(chunk, outputs) if isinstance(why, str)]
                    if too_long:  # rejected with the reason; the other items go on
                        rejected += [reject("prompt-too-long", why, benchmark=bench.name, id=it.id)
                                     for it, why in too_long]
                        kept = [k for k, o in enumerate(outputs) if not isinstance(o, str)]
                        chunk, outputs = [chunk[k] for k in kept], [outputs[k] for k in kept]
                t1 = time.perf_counter()
                rows = _score(bench, chunk, outputs, pool)
                if bench.agent:  # the response is the answer; keep how it was found
                    for row, r in zip(rows, (r for rs in rollouts for r in rs)):
                        row["steps"] = r.steps
                t["generate_s"] += t1 - t0
                t["score_s"] += time.perf_counter() - t1
                t["generated"] += sum(len(o) for o in outputs)
                t["completion_tokens"] += sum(c.tokens for o in outputs for c in o)
                samples_file.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
                samples_file.flush()
                for r in rows:
                    done.setdefault((bench.name, r["id"]), []).append(r)
                if progress:
                    progress(min(lo + step, len(todo)), len(todo), bench.name)
    results = aggregate(cfg, benches, done, timing, model_path, asked)
    results["timings"] = {"total_s": round(time.perf_counter() - start, 3)}
    if repaired:
        results["repaired_bytes"] = repaired
    if rejected:
        results["rejected_items"] = len(rejected)
        write_rejects(default_rejects_path(out, directory=True), rejected)
    _write_lm_eval(out, results, benches, done, asked)
    write_results(out, results)
    return results


def rescore(out: str | Path, score_workers: int = 4) -> dict:
    """Score saved samples again (new scorer, fixed extraction) without any model."""
    out = Path(out)
    cfg = from_dict(EvalConfig, orjson.loads((out / RUN_FILE).read_bytes())["config"])
    done = _load_samples(out / SAMPLES_FILE)
    names = list(dict.fromkeys(b for b, _ in done))
    benches = [load_benchmark(name) for name in names]
    check_protocols(out, benches, done)
    with cf.ThreadPoolExecutor(score_workers) as pool:
        for bench in benches:
            by_id = {item.id: item for item in bench.load()}
            scorer = _scorer(bench)
            rows = [r for (b, i), rs in done.items() if b == bench.name for r in rs]
            for row, metrics in zip(rows, pool.map(
                    lambda r: scorer(r["response"], by_id[r["id"]]), rows)):
                row["extracted"] = metrics.pop("extracted", None)
                row["metrics"] = metrics
    _rewrite_samples(out / SAMPLES_FILE, done)
    old = orjson.loads((out / RESULTS_FILE).read_bytes()) if (out / RESULTS_FILE).exists() else {}
    cfg.benchmarks = names
    results = aggregate(cfg, benches, done, {}, old.get("model_path"))
    results["rescored"] = True
    _write_lm_eval(out, results, benches, done, None)
    write_results(out, results)
    return results


# --- pieces ----------------------------------------------------------------------------


def _generate(llm: LLM, prompts: list, params: SamplingParams) -> list:
    """Completions per prompt, or the reason for a prompt too long to ask. Any other call
    that failed for good fails the run (one line), so that no sample is saved, and
    skipped on resume, for a call that never happened."""
    results = llm.generate(prompts, params)
    out = []
    for r in results:
        if r.ok:
            out.append(r.completions)
        elif r.error.startswith("prompt-too-long"):
            out.append(r.error.removeprefix("prompt-too-long: "))
        else:
            raise BackendError(r.error)
    return out


def _run_agent(items: list[Item], llm: LLM, params, cfg: EvalConfig, out: Path) -> list[list]:
    """n search-agent rollouts per item (sample k with seed + k), grouped per item. A
    backend failure fails the run, as it does for one generation, so that no sample is
    saved (and skipped on resume) for a call that never happened."""
    search = _searcher(cfg, out)
    jobs = [(it, k) for it in items for k in range(cfg.samples)]
    done = run_agent(llm, [it.meta["question"] for it, _ in jobs],
                     search, params, seeds=[cfg.seed + k for _, k in jobs],
                     protocol=cfg.protocol)
    failed = next((r for r in done if r.status == "error"), None)
    if failed is not None:
        raise BackendError(failed.error)
    return [done[i * cfg.samples:(i + 1) * cfg.samples] for i in range(len(items))]


def _searcher(cfg: EvalConfig, out: Path):
    """--search-index, else OUT/search-index built once from the shipped paragraphs."""
    if cfg.search_index:
        return open_searcher(cfg.search_index)
    path = out / "search-index"
    if not (path / DOCS_FILE).exists():
        index_docs(hotpotqa_paragraphs(), path)
    return open_searcher(path)


def _limited(items: list[Item], limit: int | None) -> list[Item]:
    return items[:limit] if limit else items


def _prompt(bench: Benchmark, item: Item):
    return item.messages if bench.chat else item.prompt


def _scorer(bench: Benchmark):
    return get_scorer(bench.scorer)


def _score(bench: Benchmark, items: list[Item], outputs, pool) -> list[dict]:
    scorer = _scorer(bench)
    jobs = [(item, k, c) for item, comps in zip(items, outputs) for k, c in enumerate(comps)]
    metrics = pool.map(lambda job: scorer(job[2].text, job[0]), jobs)
    rows = []
    for (item, k, comp), m in zip(jobs, metrics):
        extracted = m.pop("extracted", None)
        rows.append({"benchmark": bench.name, "id": item.id, "sample": k,
                     "prompt": _prompt(bench, item), "response": comp.text,
                     "extracted": extracted, "gold": item.gold, "metrics": m,
                     "tokens": comp.tokens, "finish_reason": comp.finish_reason,
                     **({"protocol": bench.protocol} if bench.protocol else {})})
    return rows


def check_protocols(out: Path, benches: list[Benchmark], done: dict) -> None:
    """ValueError when saved samples of a benchmark were asked under another protocol
    (e.g. ``gsm8k`` samples from before it meant lm-eval's 5-shot task): resuming or
    rescoring them would mix two protocols under one name."""
    for bench in benches:
        seen = {r.get("protocol") for (b, _), rows in done.items() if b == bench.name
                for r in rows}
        other = seen - {bench.protocol}
        if other:
            was = ", ".join(sorted(p or "none recorded" for p in other))
            hint = (" (ember's one-turn \\boxed{} gsm8k is now called gsm8k-boxed)"
                    if bench.name == "gsm8k" else "")
            raise ValueError(f"{out / SAMPLES_FILE} holds {bench.name} samples of another "
                             f"protocol ({was}; this run: {bench.protocol or 'ember'})"
                             f"{hint}; use another --out")


def _write_lm_eval(out: Path, results: dict, benches, done, asked) -> None:
    from ember.evaluate.lm_eval_output import write_lm_eval

    path = write_lm_eval(out, results, benches, done, asked)
    results["lm_eval_results"] = str(path.relative_to(out))


def _load_samples(path: Path) -> dict[tuple[str, str], list[dict]]:
    """(benchmark, id) -> sample rows; a torn last line from a kill is ignored."""
    done: dict[tuple[str, str], list[dict]] = {}
    if not path.exists():
        return done
    with open(path, "rb") as f:
        for line in f:
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            done.setdefault((row["benchmark"], row["id"]), []).append(row)
    return done


def _check_resume(out: Path, cfg: EvalConfig) -> None:
    """Refuse to mix samples of different settings in one directory; record this run's."""
    run_file = out / RUN_FILE
    if run_file.exists() and (out / SAMPLES_FILE).exists():
        old = from_dict(EvalConfig, orjson.loads(run_file.read_bytes())["config"]).identity()
        if old != cfg.identity():
            diff = {k: (old[k], v) for k, v in cfg.identity().items() if old[k] != v}
            raise ValueError(f"{out} holds samples of a run with other settings "
                             f"(old, new): {diff}; use another --out or delete it")
    write_json(run_file, {"config": asdict(cfg)})


def _drop_partial(path: Path, done: dict, n: int) -> None:
    """Items with fewer than n samples (a torn write) are redone: remove their rows."""
    partial = [key for key, rows in done.items() if len(rows) < n]
    if not partial:
        return
    for key in partial:
        del done[key]
    _rewrite_samples(path, done)


def _rewrite_samples(path: Path, done: dict) -> None:
    with atomic_writer(path) as f:
        for rows in done.values():
            f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def _mean_stderr(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    if n == 0:
        return 0.0, None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def aggregate(cfg: EvalConfig, benches: list[Benchmark], done: dict, timing: dict,
              model_path: str | None, asked: dict[str, set[str]] | None = None) -> dict:
    """Per-benchmark metrics: the mean over items of each item's mean over its samples,
    with the standard error over items; pass@k (k = 1 and n) when n > 1. ``asked``
    restricts each benchmark to this run's items (a directory may hold more)."""
    per_bench = {}
    for bench in benches:
        rows_by_item = {i: rows for (b, i), rows in done.items() if b == bench.name
                        and (asked is None or i in asked[bench.name])}
        metric_names = sorted({m for rows in rows_by_item.values() for r in rows
                               for m, v in r["metrics"].items() if isinstance(v, (int, float))})
        metrics = {}
        for name in metric_names:
            per_item = [sum(r["metrics"].get(name, 0.0) for r in rows) / len(rows)
                        for rows in rows_by_item.values()]
            value, stderr = _mean_stderr(per_item)
            metrics[name] = {"value": value, "stderr": stderr}
        if cfg.samples > 1:
            for k in sorted({1, cfg.samples}):
                per_item = [pass_at_k(len(rows), sum(r["metrics"].get("score", 0) >= 1
                                                     for r in rows), k)
                            for rows in rows_by_item.values() if len(rows) >= k]
                value, stderr = _mean_stderr(per_item)
                metrics[f"pass@{k}"] = {"value": value, "stderr": stderr}
        t = timing.get(bench.name)
        entry = {"scorer": bench.scorer, "items": len(rows_by_item),
                 "samples": sum(len(r) for r in rows_by_item.values()), "metrics": metrics}
        # the code scorer names the sandbox mode each sample ran in; keep which ones
        modes = sorted({r["metrics"]["sandbox"] for rows in rows_by_item.values() for r in rows
                        if isinstance(r["metrics"].get("sandbox"), str)})
        if modes:
            entry["sandbox"] = modes
        if t is not None:
            entry["timing"] = {"generated": t["generated"],
                               "generate_s": round(t["generate_s"], 3),
                               "score_s": round(t["score_s"], 3),
                               "samples_per_s": round(t["generated"] / t["generate_s"], 3)
                               if t["generate_s"] else None,
                               "completion_tokens": t["completion_tokens"]}
        per_bench[bench.name] = entry
    return {
        "ember_version": _version(), "git_revision": _git_revision(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": cfg.llm.model, "model_path": model_path, "backend": cfg.llm.backend,
        "base_url": cfg.llm.base_url,
        "generation": {"n": cfg.samples, "temperature": cfg.temperature, "top_p": cfg.top_p,
                       "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed,
                       "limit": cfg.limit},
        "benchmarks": per_bench,
    }


def write_results(out: Path, results: dict) -> None:
    import jsonschema

    jsonschema.validate(results, load_schema("results"))
    with atomic_writer(out / RESULTS_FILE) as f:
        f.write(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ember")
    except PackageNotFoundError:
        return "unknown"


def _git_revision() -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None


# --- the commands ----------------------------------------------------------------------


def run(cfg: EvalConfig, progress: Callable | None = None) -> Summary:
    """`ember eval`: run or resume, and summarise (the summary holds results.json)."""
    out = Path(cfg.out)
    results = run_eval(cfg, progress=progress)
    items = sum(b["items"] for b in results["benchmarks"].values())
    samples = sum(b["samples"] for b in results["benchmarks"].values())
    rejected = results.get("rejected_items", 0)
    summary = Summary("eval", read=items + rejected, produced=samples, rejected=rejected,
                      rejected_by_reason={"prompt-too-long": rejected} if rejected else {},
                      rejects=default_rejects_path(out, directory=True) if rejected else None,
                      output=str(out / RESULTS_FILE),
                      seconds=results["timings"]["total_s"],
                      details={"samples_file": str(out / SAMPLES_FILE), **results})
    if results.get("repaired_bytes"):
        summary.warnings.append(f"dropped a torn last line ({results['repaired_bytes']} bytes) "
                                f"from {out / SAMPLES_FILE} before resuming")
    return summary


@dataclass
class RescoreConfig:
    """`ember eval rescore`: score saved samples again, without the model."""

    run: str = opt(None, "A directory written by `ember eval`.", argument=True, metavar="RUN")
    score_workers: int = opt(4, "Threads scoring responses (code runs in the sandbox).",
                             min=1)


def run_rescore(cfg: RescoreConfig) -> Summary:
    out = Path(cfg.run or "")
    if not cfg.run or not (out / SAMPLES_FILE).exists():
        raise ValueError(f"{out}/{SAMPLES_FILE} not found: not an `ember eval` output "
                         "directory")
    start = time.perf_counter()
    with output_lock(out, directory=True):
        results = rescore(out, cfg.score_workers)
    samples = sum(b["samples"] for b in results["benchmarks"].values())
    return Summary("eval rescore", read=samples, produced=samples,
                   output=str(out / RESULTS_FILE), seconds=time.perf_counter() - start,
                   details=results)
