"""The eval loop: generate for every item, score, write samples.jsonl and results.json.

    from ember.evaluate.runner import EvalConfig, run_eval
    results = run_eval(EvalConfig(model="smollm2", benchmarks=["gsm8k"], limit=20, out="ev"))

Reading top to bottom: resolve the model and backend; for each benchmark load its items,
skip those whose samples are already in ``OUT/samples.jsonl`` (a killed run resumes
without redoing finished items), generate the rest in chunks, score each response with
the benchmark's scorer on a thread pool (code runs in the sandbox), append the samples
after every chunk, then aggregate per-benchmark metrics with standard errors into
``OUT/results.json`` (validated against schemas/results.schema.json). Samples are appended
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import orjson

from ember.adp.io import atomic_writer
from ember.evaluate.agent import run_agent
from ember.evaluate.benchmarks import Benchmark, hotpotqa_paragraphs, load_benchmark
from ember.evaluate.code_scoring import pass_at_k
from ember.evaluate.item import Item
from ember.evaluate.scoring import get_scorer
from ember.evaluate.search import DOCS_FILE, index_docs, open_searcher
from ember.llm.backends import BackendError, Completion, SamplingParams, make_backend
from ember.llm.client import LLM
from ember.llm.models import resolve_model
from ember.schemas import load_schema

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
RESULTS_FILE = "results.json"


@dataclass
class EvalConfig:
    """What `ember eval` runs; every field is a CLI flag of the same name."""

    model: str = field(metadata={"help": "smollm2 (embedded), a local model dir, a hub id, or "
                                         "the served model name with --backend openai"})
    benchmarks: list[str] = field(default_factory=lambda: ["gsm8k"], metadata={
        "help": "built-in names or custom:SPEC.yaml"})
    backend: str = field(default="hf", metadata={"help": "hf | openai | vllm"})
    base_url: str | None = field(default=None, metadata={"help": "endpoint for --backend openai"})
    limit: int | None = field(default=None, metadata={"help": "first N items per benchmark"})
    n: int = field(default=1, metadata={"help": "samples per item (pass@k uses them)"})
    temperature: float = field(default=0.0, metadata={"help": "0 = greedy"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling"})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "cap on generated tokens [default: the benchmark's]"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    out: str = field(default="eval-out", metadata={"help": "output directory"})
    batch_size: int = field(default=16, metadata={"help": "hf backend batch size"})
    concurrency: int = field(default=8, metadata={"help": "openai backend requests in flight"})
    score_workers: int = field(default=4, metadata={"help": "threads scoring responses"})
    search_index: str | None = field(default=None, metadata={
        "help": "agentic benchmarks: index dir or /retrieve URL [default: built in OUT]"})

    def identity(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        return {k: getattr(self, k) for k in
                ("model", "backend", "n", "temperature", "top_p", "max_new_tokens", "seed")}


def run_eval(cfg: EvalConfig, backend=None,
             progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run (or resume) an evaluation; returns the results dict also written to results.json."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_resume(out, cfg)
    benches = [load_benchmark(name) for name in cfg.benchmarks]  # fail fast on a bad name
    model_path = cfg.model if cfg.backend == "openai" else resolve_model(cfg.model)
    if backend is None:
        backend = make_backend(cfg.backend, model_path, base_url=cfg.base_url,
                               concurrency=cfg.concurrency, batch_size=cfg.batch_size)
    done = _load_samples(out / SAMPLES_FILE)
    _drop_partial(out / SAMPLES_FILE, done, cfg.n)
    timing: dict[str, dict] = {}
    asked: dict[str, set[str]] = {}
    start = time.perf_counter()
    with open(out / SAMPLES_FILE, "ab") as samples_file, \
            cf.ThreadPoolExecutor(cfg.score_workers) as pool:
        for bench in benches:
            items = _limited(bench.load(), cfg.limit)
            asked[bench.name] = {item.id for item in items}
            finished = {i for (b, i) in done if b == bench.name}
            todo = [item for item in items if item.id not in finished]
            params = SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                    max_new_tokens=cfg.max_new_tokens or bench.max_new_tokens,
                                    seed=cfg.seed, stop=bench.stop)
            t = timing.setdefault(bench.name, {"generate_s": 0.0, "score_s": 0.0,
                                               "generated": 0, "completion_tokens": 0})
            # Samples are appended after every chunk, so a kill loses at most one chunk.
            step = cfg.batch_size if cfg.backend == "hf" else 4 * cfg.concurrency
            for lo in range(0, len(todo), step):
                chunk = todo[lo:lo + step]
                t0 = time.perf_counter()
                if bench.agent:
                    rollouts = _run_agent(chunk, backend, params, cfg, out)
                    outputs = [[Completion(r.answer or "", r.tokens, r.status) for r in rs]
                               for rs in rollouts]
                else:
                    outputs = backend.generate([_prompt(bench, it) for it in chunk], params)
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
                    progress(bench.name, min(lo + step, len(todo)), len(todo))
    results = aggregate(cfg, benches, done, timing, model_path, asked)
    results["timings"] = {"total_s": round(time.perf_counter() - start, 3)}
    write_results(out, results)
    return results


def rescore(out: str | Path, score_workers: int = 4) -> dict:
    """Score saved samples again (new scorer, fixed extraction) without any model."""
    out = Path(out)
    cfg = EvalConfig(**orjson.loads((out / RUN_FILE).read_bytes())["config"])
    done = _load_samples(out / SAMPLES_FILE)
    names = list(dict.fromkeys(b for b, _ in done))
    benches = [load_benchmark(name) for name in names]
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
    write_results(out, results)
    return results


# --- pieces ----------------------------------------------------------------------------


def _run_agent(items: list[Item], backend, params, cfg: EvalConfig, out: Path) -> list[list]:
    """n search-agent rollouts per item (sample k with seed + k), grouped per item. A
    backend failure fails the run, as it does for one generation, so that no sample is
    saved (and skipped on resume) for a call that never happened."""
    search = _searcher(cfg, out)
    jobs = [(it, k) for it in items for k in range(cfg.n)]
    done = run_agent(LLM(backend, model=cfg.model), [it.meta["question"] for it, _ in jobs],
                     search, params, seeds=[cfg.seed + k for _, k in jobs])
    failed = next((r for r in done if r.status == "error"), None)
    if failed is not None:
        raise BackendError(failed.error)
    return [done[i * cfg.n:(i + 1) * cfg.n] for i in range(len(items))]


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
                     "tokens": comp.tokens, "finish_reason": comp.finish_reason})
    return rows


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
        old = EvalConfig(**orjson.loads(run_file.read_bytes())["config"]).identity()
        if old != cfg.identity():
            diff = {k: (old[k], v) for k, v in cfg.identity().items() if old[k] != v}
            raise ValueError(f"{out} holds samples of a run with other settings "
                             f"(old, new): {diff}; use another --out or delete it")
    run_file.write_bytes(orjson.dumps({"config": asdict(cfg)}, option=orjson.OPT_INDENT_2))


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
        if cfg.n > 1:
            for k in sorted({1, cfg.n}):
                per_item = [pass_at_k(len(rows), sum(r["metrics"].get("score", 0) >= 1
                                                     for r in rows), k)
                            for rows in rows_by_item.values() if len(rows) >= k]
                value, stderr = _mean_stderr(per_item)
                metrics[f"pass@{k}"] = {"value": value, "stderr": stderr}
        t = timing.get(bench.name)
        entry = {"scorer": bench.scorer, "items": len(rows_by_item),
                 "samples": sum(len(r) for r in rows_by_item.values()), "metrics": metrics}
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
        "model": cfg.model, "model_path": model_path, "backend": cfg.backend,
        "base_url": cfg.base_url,
        "generation": {"n": cfg.n, "temperature": cfg.temperature, "top_p": cfg.top_p,
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
