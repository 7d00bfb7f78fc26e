"""The LLM client every stage uses: a backend behind a SQLite cache, plus strict JSON output.

    from ember.llm.client import LLMConfig, make_llm
    from ember.llm.backends import SamplingParams

    llm = make_llm(LLMConfig(model="smollm2"), out="tasks.jsonl")   # cache: tasks.jsonl.cache.sqlite
    results = llm.generate([[{"role": "user", "content": "2+3?"}]], SamplingParams(max_new_tokens=32))
    results[0].ok, results[0].text, results[0].error       # per item; a failure is not an exception
    results = llm.generate(prompts, params, seeds=[0, 1, 2])  # one call, a seed per prompt
    pairs = llm.generate_json(prompts, schema, SamplingParams(temperature=0.7))
    obj, reason = pairs[0]                                  # (dict, None) or (None, "why not")
    llm.usage   # {"calls", "cached", "failed", "completion_tokens", "seconds"}
    llm.warnings  # one line each, for the run's Summary (e.g. JSON not constrained)

Every prompt is looked up in the cache first; only misses go to the backend, and each
finished call is stored the moment the backend hands it over (openai: as each request
finishes; hf: after each batch). A run killed with SIGKILL and started again therefore
sends only the calls that were in flight or not yet started. Failed calls (after the
backend's retries) are not cached, so a rerun tries them again.

The cache key is the model's identity, the prompt and every sampling field: the same
prompt asked with another seed is another call; that is how `generate_json` retries
(attempt k uses seed + k, and each attempt is cached on its own). `seeds=` gives each
prompt its own seed within one call; each is keyed exactly as a call with that seed alone.
A JSON call's key also holds the schema and, for an in-process backend, whether it
constrains decoding (ember.llm.structured), so answers from a run without llguidance
are not replayed once it is installed. The identity of a local model directory
(and of the embedded `smollm2` on the hf and vllm backends) is a hash of its model files'
contents, so a model retrained in place gets fresh answers; a served model's name
(`--backend openai`, unless the name is a local directory) or a hub id stands for itself.
It is computed once per LLM, on the first call with a cache. With temperature 0 a deterministic backend answers a retry with the same text, so give
JSON calls some temperature.

Commands take the LLM options as a flat section of their config
(``llm: LLMConfig = section(LLMConfig)``, see ember.adp.config): ``ember.cli.options``
turns the fields below into --model/-m, --backend, --base-url, --api-key-env,
--concurrency, --batch-size, --max-retries, --timeout and --cache. The sampling options
every command shares (--samples/-n, --temperature, --top-p, --max-new-tokens, --seed) are
declared once here too (``samples_opt`` and friends).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ember.adp.config import opt
from ember.llm.backends import (Backend, BackendError, Completion, OpenAIBackend, SamplingParams,
                                make_backend)
from ember.llm.cache import Cache, cache_key, model_identity

Progress = Callable[[int, int], None]


@dataclass
class Result:
    completions: list[Completion]  # n of them when ok; [] when failed
    error: str | None = None  # one-line reason when the call failed for good
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        return self.completions[0].text if self.completions else ""


class LLM:
    """A backend + an optional cache. Every finished call is written to the cache the moment it
    finishes (so a SIGKILL loses only calls in flight); a cached call is never sent again."""

    def __init__(self, backend: Backend, *, model: str, cache: Cache | None = None):
        self.backend, self.model, self.cache = backend, model, cache
        self.usage = {"calls": 0, "cached": 0, "failed": 0, "completion_tokens": 0, "seconds": 0.0}
        self.warnings: list[str] = []  # one line each, said once; commands put them in Summary
        self._lock = threading.Lock()  # results may arrive on the backend's loop thread
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        """What the cache keys call the model (`ember.llm.cache.model_identity`), computed on
        first use and kept: hashing a model's files reads all of them. An embedded name is
        resolved only for an in-process backend; an endpoint's model name is its own."""
        if self._identity is None:
            self._identity = model_identity(
                self.model, embedded=not isinstance(self.backend, OpenAIBackend))
        return self._identity

    def structured(self) -> str | None:
        """How the backend constrains JSON output now ("grammar", "response_format",
        "structured-outputs"), or None when generate_json only parses and retries."""
        return getattr(self.backend, "structured", None)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def generate(self, prompts: list[list[dict] | str], params: SamplingParams,
                 on_progress: Progress | None = None, *, seeds: list[int] | None = None,
                 json_schema: dict | None = None, tools: list[dict] | None = None
                 ) -> list[Result]:
        """One Result per prompt, in input order; identical (prompt, seed) pairs are asked
        once. ``seeds`` (one per prompt) replaces ``params.seed`` prompt by prompt, in one
        backend call; ``json_schema`` asks the backend to constrain decoding to it;
        ``tools`` (OpenAI-style function specs) are offered to every chat prompt, as the
        chat template's ``tools`` or the request's."""
        seeds = list(seeds) if seeds is not None else [params.seed] * len(prompts)
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        # Without a cache the keys only merge identical prompts: the name will do.
        model = self.identity if self.cache is not None else self.model
        # What was asked for: an endpoint is always asked for response_format (whether it
        # honours it is its business, and may be found out halfway through a run); an
        # in-process backend constrains or not depending on what is installed.
        mode = None if json_schema is None else "response_format" if isinstance(
            self.backend, OpenAIBackend) else self.structured()
        per_seed = {s: dataclasses.replace(params, seed=s) for s in dict.fromkeys(seeds)}

        def key_of(prompt, seed):
            if json_schema is None and not tools:
                return cache_key(model, prompt, per_seed[seed])
            asked = {"prompt": prompt}
            if json_schema is not None:
                asked.update(json_schema=json_schema, constrained=mode)
            if tools:
                asked["tools"] = tools
            return cache_key(model, asked, per_seed[seed])

        keys = [key_of(p, s) for p, s in zip(prompts, seeds)]
        first: dict[str, int] = {}  # key -> index of its first prompt
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        copies = Counter(keys)
        results: dict[str, Result] = {}
        for key in first:
            stored = self.cache.get(key) if self.cache is not None else None
            if stored is not None:
                results[key] = Result([Completion(**c) for c in stored], cached=True)
        todo = [key for key in first if key not in results]
        done = len(prompts) - sum(copies[k] for k in todo)
        self.usage["cached"] += done
        if on_progress:
            on_progress(done, len(prompts))

        def finished(j: int, value) -> None:
            nonlocal done
            key = todo[j]
            if isinstance(value, BaseException):
                result = Result([], error=" ".join(str(value).split()) or type(value).__name__)
            else:
                if self.cache is not None:
                    self.cache.put(key, [dataclasses.asdict(c) for c in value])
                result = Result(list(value))
            with self._lock:
                results[key] = result
                done += copies[key]
                self.usage["calls"] += 1
                self.usage["failed"] += not result.ok
                self.usage["completion_tokens"] += sum(c.tokens for c in result.completions)
                count = done
            if on_progress:
                on_progress(count, len(prompts))

        if todo:
            t0 = time.perf_counter()
            todo_seeds = [seeds[first[k]] for k in todo]
            extra = {}  # only what is needed, so that minimal backends keep working
            if len(set(todo_seeds)) > 1:
                extra["seeds"] = todo_seeds
            if json_schema is not None:
                extra["json_schema"] = json_schema
            if tools:
                extra["tools"] = tools
            try:
                returned = self.backend.generate([prompts[first[k]] for k in todo],
                                                 per_seed[todo_seeds[0]], on_result=finished,
                                                 **extra)
            finally:
                self.usage["seconds"] += time.perf_counter() - t0
            for j, value in enumerate(returned):  # a backend that ignored on_result
                if todo[j] not in results:
                    finished(j, value)
        return [results[key] for key in keys]

    def generate_json(self, prompts: list[list[dict] | str], schema: dict, params: SamplingParams,
                      *, attempts: int = 3, on_progress: Progress | None = None,
                      seeds: list[int] | None = None
                      ) -> list[tuple[dict | None, str | None]]:
        """(object, None) when a completion parsed and validated, else (None, reason).

        Decoding is constrained to `schema` where the backend can (ember.llm.structured);
        the output is parsed strictly and validated all the same. Attempt k
        (k = 0..attempts-1) asks the still-failing prompts again with seed + k (per prompt
        with `seeds`); the first of a call's `n` completions that parses and validates
        wins. A call that failed in the backend is not retried here (the backend already
        retried it). `on_progress` is forwarded to each attempt's generate.

        A backend that cannot constrain is reported once in `warnings`; an endpoint that
        accepted `response_format` but answered with invalid JSON that was not cut at max
        tokens ignored it, and is marked so (later attempts parse and retry).
        """
        import jsonschema

        validator = jsonschema.validators.validator_for(schema)(schema)
        base = list(seeds) if seeds is not None else [params.seed] * len(prompts)
        out: list[tuple[dict | None, str | None]] = [(None, "not attempted")] * len(prompts)
        pending = list(range(len(prompts)))
        for attempt in range(attempts):
            if not pending:
                break
            mode = self.structured()
            results = self.generate([prompts[i] for i in pending], params, on_progress,
                                    seeds=[base[i] + attempt for i in pending],
                                    json_schema=schema)
            again, ignored = [], False
            for i, result in zip(pending, results):
                if not result.ok:
                    out[i] = (None, f"backend error: {result.error}")
                    continue
                out[i] = _first_valid(result.completions, validator)
                if out[i][0] is None:
                    again.append(i)
                    ignored |= any(c.finish_reason != "length" for c in result.completions)
            if mode == "response_format" and ignored and \
                    hasattr(self.backend, "response_format_unsupported"):
                self.backend.response_format_unsupported("it answered with invalid JSON")
            if self.structured() is None:
                self.warn(_UNCONSTRAINED["response_format" if isinstance(
                    self.backend, OpenAIBackend) else None])
            pending = again
        for i in pending:
            out[i] = (None, f"{out[i][1]} (after {attempts} attempts)")
        return out

    def summary(self) -> str:
        """One line for the console: calls, cache hits, failures, tokens, time."""
        u = self.usage
        return (f"LLM: {u['calls']} calls, {u['cached']} from cache, {u['failed']} failed, "
                f"{u['completion_tokens']} completion tokens, {u['seconds']:.1f}s")

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_UNCONSTRAINED = {
    None: "JSON output is not constrained on this backend (hf: pip install llguidance); "
          "invalid JSON is parsed strictly and retried with a new seed",
    "response_format": "the endpoint does not honour response_format json_schema (it refused "
                       "or ignored it); invalid JSON is parsed strictly and retried with a "
                       "new seed",
}


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json_object(text: str) -> tuple[dict | None, str | None]:
    """The first JSON object in `text` (inside a ```json fence if there is one), strictly."""
    body = text
    fence = text.find("```")
    if fence >= 0:  # the fence's content; an unclosed fence (cut at max tokens) runs to the end
        start = text.find("\n", fence)
        end = text.find("```", fence + 3)
        body = text[start + 1:end if end > start else None] if start >= 0 else text
    brace = body.find("{")
    if brace < 0:
        return None, "no JSON object in the output"
    try:
        obj, _ = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(body, brace)
    except json.JSONDecodeError as e:
        return None, f"invalid JSON: {e.msg} (char {e.pos - brace})"
    except ValueError as e:  # NaN / Infinity
        return None, f"invalid JSON: {e}"
    return obj, None


def _first_valid(completions: list[Completion], validator) -> tuple[dict | None, str | None]:
    import jsonschema

    reason = "no completions"
    for c in completions:
        obj, reason = parse_json_object(c.text)
        if obj is None:
            continue
        error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
        if error is None:
            return obj, None
        reason = " ".join(f"schema: {error.message} at {error.json_path}".split())[:300]
    return None, reason


# ---------------------------------------------------------------- config

MODEL_HELP = ("Model: smollm2 (the embedded default), a local model directory, a hub id, or "
              "the served model's name with --backend openai.")


@dataclass
class LLMConfig:
    """Which model answers and how: the LLM options of `ember eval` and `ember synth`."""

    model: str = opt("smollm2", MODEL_HELP, short="-m")
    backend: str = opt("hf", "Backend: hf (in-process transformers), openai (an "
                             "OpenAI-compatible endpoint), vllm (offline engine, GPU).")
    base_url: str | None = opt(None, "Endpoint URL for --backend openai "
                                     "(http://127.0.0.1:8000/v1); the key comes from "
                                     "--api-key-env.")
    api_key_env: str = opt("OPENAI_API_KEY", "Environment variable holding the API key "
                                             "(never logged, cached or written).")
    concurrency: int = opt(8, "Requests in flight with --backend openai.", min=1)
    batch_size: int = opt(16, "Prompts per forward batch with --backend hf.", min=1)
    max_retries: int = opt(5, "Retries per request on timeouts, 429 and 5xx (exponential "
                              "backoff with jitter), --backend openai.", min=0)
    timeout: float = opt(120.0, "Seconds per request with --backend openai.", min=0.001)
    max_prompt_tokens: int | None = opt(None, "Prompts longer than this many tokens are "
                                              "rejected (reason prompt-too-long) before any "
                                              "tensor is allocated, --backend hf [default: "
                                              "the model's context less --max-new-tokens].",
                                        min=1)
    truncate_prompts: bool = opt(False, "Keep the last --max-prompt-tokens tokens of a "
                                        "too-long prompt instead of rejecting it.")
    cache: str | None = opt(None, "SQLite cache of every LLM call, so a rerun resumes "
                                  "(default: OUT.cache.sqlite for synth, none for eval; "
                                  "'none' turns it off).")


# Sampling options, declared once so that every command spells and explains them alike;
# `note` adds what a flag means for one command.
def samples_opt(default: int, note: str = "") -> int:
    return opt(default, " ".join(["Samples per prompt.", note]).strip(), short="-n", min=1)


def temperature_opt(default: float, note: str = "") -> float:
    return opt(default, " ".join(["Sampling temperature (0 = greedy).", note]).strip(), min=0.0)


def top_p_opt(default: float = 1.0) -> float:
    return opt(default, "Nucleus sampling: sample from the smallest set of tokens whose "
                        "probability reaches this.", min=0.0, max=1.0)


def max_new_tokens_opt(default: int | None, note: str = "") -> int | None:
    return opt(default, " ".join(["Cap on generated tokens per call.", note]).strip(), min=1)


def seed_opt(default: int = 0, note: str = "") -> int:
    return opt(default, " ".join(["Seed of sampling and every random choice.", note]).strip())


def make_llm(cfg: LLMConfig, *, out: str | os.PathLike | None = None) -> LLM:
    """Build the backend (hf/vllm resolve the model) and open the cache.

    The cache is `cfg.cache`, else OUT + ".cache.sqlite" when `out` is given, else none;
    `cfg.cache == "none"` turns it off.
    """
    backend = make_backend(cfg.backend, cfg.model, base_url=cfg.base_url,
                           api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                           batch_size=cfg.batch_size, max_retries=cfg.max_retries,
                           timeout=cfg.timeout, max_prompt_tokens=cfg.max_prompt_tokens,
                           truncate_prompts=cfg.truncate_prompts)
    path = cfg.cache or (f"{os.fspath(out)}.cache.sqlite" if out and str(out) != "-" else None)
    cache = Cache(path) if path and path != "none" else None
    return LLM(backend, model=cfg.model, cache=cache)


__all__ = ["LLM", "LLMConfig", "Result", "make_llm", "parse_json_object", "BackendError"]
