"""LLM backends: one `generate` call for in-process transformers, an OpenAI-compatible
endpoint, or the vLLM offline engine.

    from ember.llm.backends import SamplingParams, make_backend
    llm = make_backend("hf", "smollm2")                    # or "openai" with base_url=..., or "vllm"
    outs = llm.generate([[{"role": "user", "content": "2+3?"}], "The capital of France is"],
                        SamplingParams(n=2, temperature=0.7, max_new_tokens=64, stop=["\\n\\n"]))
    outs[0][1].text   # second sample for the first prompt

A prompt is a chat (list of {role, content}, rendered with the model's chat template and
a generation prompt) or a plain string (raw completion). The result holds one list of
`n` Completions per prompt, in input order. Every backend cuts the text at the first stop
string (the stop string itself is not kept), as the OpenAI API does.

`on_result(index, completions_or_error)` hands over each prompt's result as soon as it is
known (openai: as each prompt finishes; hf: after each batch; vllm: at the end), so a
caller can store it before the rest are done (ember.llm.client caches it). With
`on_result`, a prompt that fails for good (BackendError after retries) is passed to it as
that exception and left in its slot of the returned list, and the other prompts go on;
without it, the first failure raises, as before.

`seeds` (one per prompt) overrides `params.seed` prompt by prompt, so one call can carry
rollouts that must differ; `json_schema` asks for JSON valid under that schema through
the backend's constrained decoding where it has one (ember.llm.structured; the caller
still validates).

- `hf`: batched `model.generate`, left padding, prompts sorted longest first; greedy when
  temperature == 0, else sampling seeded by `seed` (same seed, same prompts, same text).
  transformers' generate takes no per-row generator, so with several `seeds` the prompts
  are batched per distinct seed (each group exactly as a call with that seed alone:
  results do not depend on which other seeds share the call). With `json_schema` a
  llguidance grammar processor constrains every row (without llguidance: unconstrained,
  one warning).
- `openai`: asyncio + AsyncOpenAI with bounded concurrency, each request with its prompt's
  seed; `json_schema` goes as a strict `response_format` json_schema, and a server that
  answers it with a 400/422 naming response_format is asked again without it, once and
  from then on (`response_format_supported` becomes False); retries timeouts, connection
  errors, 429, 5xx and malformed responses with exponential backoff and jitter (at least
  the Retry-After a server asks for), then raises BackendError. The API key is read from
  the environment variable `api_key_env` only, and is never logged, nor left in error
  messages or completion texts (an echoing server).
- `vllm`: `vllm.LLM` (GPU; `pip install ember[gpu]`); one SamplingParams per prompt (its
  seed, and structured outputs for `json_schema`). Untested here: no vLLM on CPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ember.llm.models import resolve_model
from ember.llm.structured import (GrammarCompiler, grammar_available, names_response_format,
                                  response_format)

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
OnResult = Callable[[int, "list[Completion] | BackendError"], None]


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    seed: int = 0
    stop: list[str] = field(default_factory=list)


@dataclass
class Completion:
    text: str
    tokens: int  # completion tokens
    finish_reason: str  # "stop" (end of turn or stop string) or "length"
    # Calls an endpoint parsed out of the answer (OpenAI `tool_calls`), as
    # [{"name", "arguments"}] with arguments as JSON text; None where the backend returns
    # raw text (hf, vllm), whose calls are still in `text` for the caller to parse.
    tool_calls: list[dict] | None = None


class BackendError(RuntimeError):
    """A backend call failed for good (after retries where retrying makes sense)."""


class Backend(Protocol):
    def generate(self, prompts: list[list[dict] | str], params: SamplingParams,
                 on_progress: Progress | None = None, on_result: OnResult | None = None, *,
                 seeds: list[int] | None = None, json_schema: dict | None = None,
                 tools: list[dict] | None = None
                 ) -> list[list[Completion] | BackendError]: ...


def prompt_seeds(prompts, params: SamplingParams, seeds: list[int] | None) -> list[int]:
    """The seed of each prompt: `seeds` when given (one per prompt), else `params.seed`."""
    if seeds is None:
        return [params.seed] * len(prompts)
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
    return list(seeds)


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[:min(cuts)], True) if cuts else (text, False)


# ---------------------------------------------------------------- hf (in-process)

class HFBackend:
    """In-process transformers. A prompt longer than ``max_prompt_tokens`` (default: the
    model's context less the tokens to generate) is rejected (``prompt-too-long``) before
    any tensor is allocated, or left-truncated to its last tokens with ``truncate_prompts``."""

    def __init__(self, model: str, *, batch_size: int = 16, dtype: str = "auto",
                 device: str | None = None, max_prompt_tokens: int | None = None,
                 truncate_prompts: bool = False):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise BackendError(f"the hf backend needs {e.name or 'torch'}: pip install "
                               "'ember[models]' (or use --backend openai)") from e

        path = resolve_model(model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype == "auto":  # bf16 on GPU; CPU bf16 matmuls are slow and inexact
            torch_dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        self._use(model.to(self.device).eval(), AutoTokenizer.from_pretrained(path), batch_size,
                  max_prompt_tokens, truncate_prompts)

    @classmethod
    def for_model(cls, model, tokenizer, *, batch_size: int = 16) -> "HFBackend":
        """A backend around a model already in memory (a policy being trained: `ember bench
        rft` asks it the held-out tasks). The caller sets eval/train mode; the tokenizer is
        set to pad on the left."""
        backend = cls.__new__(cls)
        backend.device = model.device
        backend._use(model, tokenizer, batch_size, None, False)
        return backend

    def _use(self, model, tokenizer, batch_size: int, max_prompt_tokens: int | None,
             truncate_prompts: bool) -> None:
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"  # decoder-only: new tokens follow the prompt
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model
        self.batch_size = batch_size
        self.max_prompt_tokens, self.truncate_prompts = max_prompt_tokens, truncate_prompts
        self.context = getattr(self.model.config, "max_position_embeddings", None)
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        self.end_ids = set(eos) | {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        self._eos = [t for t in eos if t is not None] or [self.tokenizer.eos_token_id]
        self._grammar = None  # the llguidance compiler, built on the first JSON call
        self._chars_per_token: int | None = None  # _chars_bound, from the vocabulary
        self.structured = "grammar" if grammar_available() else None

    def _json_processor(self, schema: dict):
        """A fresh grammar processor for one generate call, or None without llguidance."""
        if self.structured is None:
            if not HFBackend._warned:
                HFBackend._warned = True
                log.warning("JSON output on --backend hf is not constrained (llguidance is not "
                            "installed: pip install llguidance); parsing and retrying instead")
            return None
        if self._grammar is None:
            self._grammar = GrammarCompiler(self.tokenizer,
                                            getattr(self.model.config, "vocab_size", None),
                                            self._eos)
        return self._grammar.processor(schema)

    _warned = False

    def encode(self, prompt: list[dict] | str, tools: list[dict] | None = None) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer(prompt)["input_ids"]
        # The template writes its own special tokens; don't let the tokenizer add more.
        text = self.tokenizer.apply_chat_template(prompt, tools=tools, tokenize=False,
                                                  add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, prompts, params: SamplingParams, on_progress: Progress | None = None,
                 on_result: OnResult | None = None, *, seeds: list[int] | None = None,
                 json_schema: dict | None = None, tools: list[dict] | None = None):
        import torch

        row_seeds = prompt_seeds(prompts, params, seeds)
        results: list[list[Completion] | BackendError | None] = [None] * len(prompts)
        limit = self._prompt_limit(params.max_new_tokens)
        # A prompt with more characters than `limit` tokens can hold is refused before
        # it is tokenized (a 10 MB prompt took 26 s to tokenize on 2 cores, to be refused)
        most = None if limit is None or self.truncate_prompts else limit * self._chars_bound()
        why = "(--max-prompt-tokens, or the model's context less --max-new-tokens)"

        def refuse(i: int, error: str) -> None:
            results[i] = BackendError(f"prompt-too-long: {error} {why}")
            if on_result is None:
                raise results[i]
            on_result(i, results[i])

        ids: list[list[int]] = []
        for i, p in enumerate(prompts):
            chars = len(p) if isinstance(p, str) else sum(
                len(m["content"]) for m in p if isinstance(m.get("content"), str))
            if most is not None and chars > most:
                refuse(i, f"{chars} characters, more than {limit} tokens can hold")
                ids.append([])
                continue
            row = self.encode(p, tools)
            if limit is not None and len(row) > limit:
                if self.truncate_prompts:
                    row = row[-limit:]
                else:
                    refuse(i, f"{len(row)} tokens, more than {limit}")
            ids.append(row)
        # Longest first: similar lengths share a batch (little padding) and an
        # out-of-memory error shows up on the first batch, not after an hour. One group per
        # distinct seed (in first-seen order), each batched as if it had been called alone.
        live = [i for i in range(len(ids)) if results[i] is None]
        groups = [sorted((i for i in live if row_seeds[i] == seed), key=lambda i: -len(ids[i]))
                  for seed in dict.fromkeys(row_seeds[i] for i in live)]
        sample = params.temperature > 0
        kwargs = dict(max_new_tokens=params.max_new_tokens, do_sample=sample,
                      pad_token_id=self.tokenizer.pad_token_id)
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p,
                          num_return_sequences=params.n)
        else:  # greedy samples are all the same: generate one, copy it n times
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)

        devices = [self.device] if self.device.type == "cuda" else []
        finished = 0
        # transformers' generate takes no torch.Generator, so seed the global RNG inside
        # fork_rng: the run is reproducible and the caller's RNG state is left untouched.
        for order in groups:
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(row_seeds[order[0]])
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start:start + self.batch_size]
                    batch = self.tokenizer.pad({"input_ids": [ids[i] for i in chunk]},
                                               return_tensors="pt").to(self.device)
                    extra = {}
                    if json_schema is not None:
                        processor = self._json_processor(json_schema)
                        if processor is not None:
                            from transformers import LogitsProcessorList

                            extra["logits_processor"] = LogitsProcessorList([processor])
                    out = self.model.generate(**batch, **kwargs, **extra)
                    new = out[:, batch["input_ids"].shape[1]:].tolist()
                    per = params.n if sample else 1
                    for j, i in enumerate(chunk):
                        done = [self._completion(row, params.stop)
                                for row in new[j * per:(j + 1) * per]]
                        results[i] = done if sample else done * params.n
                        if on_result:
                            on_result(i, results[i])
                    finished += len(chunk)
                    if on_progress:
                        on_progress(finished, len(live))
        return results

    def _chars_bound(self) -> int:
        """Characters one token can stand for, at most, with room to spare: 4x the longest
        vocabulary entry (a byte-level entry's characters are bytes, at least one per
        character of text; the 4 covers normalizers that merge characters)."""
        if self._chars_per_token is None:
            vocab = self.tokenizer.get_vocab()
            self._chars_per_token = 4 * max((len(t) for t in vocab), default=1)
        return self._chars_per_token

    def _prompt_limit(self, max_new_tokens: int) -> int | None:
        limits = [x for x in (self.max_prompt_tokens,
                              self.context - max_new_tokens if self.context else None)
                  if x is not None]
        return max(1, min(limits)) if limits else None

    def _completion(self, row: list[int], stop: list[str]) -> Completion:
        # Finished rows are padded to the batch's longest; keep up to the first end token.
        end = next((k for k, t in enumerate(row) if t in self.end_ids), None)
        tokens = row if end is None else row[:end + 1]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, stop)
        return Completion(text, len(tokens), "stop" if end is not None or stopped else "length")


# ---------------------------------------------------------------- openai (HTTP)

RETRY_STATUS = {408, 409, 429}  # plus every 5xx


class OpenAIBackend:
    def __init__(self, model: str, *, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 max_retries: int = 5, timeout: float = 120, backoff: float = 0.5):
        try:
            import openai  # noqa: F401
        except ImportError as e:
            raise BackendError("the openai backend needs the `openai` package: "
                               "pip install openai") from e
        self.model, self.base_url, self.api_key_env = model, base_url, api_key_env
        self.concurrency, self.max_retries, self.timeout = concurrency, max_retries, timeout
        self.backoff = backoff  # first retry waits up to this many seconds, then doubles
        self.n_supported = True  # set False once the server answers n > 1 with fewer choices
        # None: not asked yet; False once the server refused (400/422) or ignored it
        self.response_format_supported: bool | None = None

    @property
    def structured(self) -> str | None:
        """"response_format" while JSON calls ask the server for it, else None."""
        return None if self.response_format_supported is False else "response_format"

    def response_format_unsupported(self, why: str) -> None:
        """Stop sending response_format (the server refused or ignored it); logs once."""
        if self.response_format_supported is not False:
            self.response_format_supported = False
            log.warning("%s does not honour response_format json_schema (%s); parsing and "
                        "retrying JSON instead", self.base_url or "the endpoint", why)

    def generate(self, prompts, params: SamplingParams, on_progress: Progress | None = None,
                 on_result: OnResult | None = None, *, seeds: list[int] | None = None,
                 json_schema: dict | None = None, tools: list[dict] | None = None):
        import asyncio  # here, so that importing ember (and `ember --help`) stays light
        import concurrent.futures

        coro = self._generate(prompts, params, on_progress, on_result,
                              prompt_seeds(prompts, params, seeds), json_schema, tools)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # plain synchronous caller (or a worker thread): own loop
            return asyncio.run(coro)
        # Called from inside a running loop (a notebook, async code): a loop can't be
        # nested, so run ours in a helper thread and wait for it.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    async def _generate(self, prompts, params, on_progress, on_result, seeds, schema, tools):
        import asyncio

        from openai import AsyncOpenAI

        # Local servers accept any key; hosted ones reject the dummy with a clear 401.
        # No local variable holds the key, so tracebacks with locals don't show it.
        client = AsyncOpenAI(api_key=os.environ.get(self.api_key_env) or "EMPTY",
                             base_url=self.base_url, timeout=self.timeout,
                             max_retries=0)  # we retry ourselves, with our own policy
        gate = asyncio.Semaphore(self.concurrency)  # per HTTP request, so n fallbacks count too
        done = 0

        async def call(prompt, **args):
            async with gate:
                if isinstance(prompt, str):
                    return await client.completions.create(prompt=prompt, **args)
                if tools:
                    args = {**args, "tools": tools}
                return await client.chat.completions.create(messages=prompt, **args)

        async def one(i, prompt):
            nonlocal done
            try:
                result = await self._prompt(call, prompt, dataclasses.replace(
                    params, seed=seeds[i]), schema)
            except BackendError as e:
                if on_result is None:
                    raise
                result = e  # this prompt failed for good; the others go on
            done += 1
            if on_result:
                on_result(i, result)
            if on_progress:
                on_progress(done, len(prompts))
            return result

        async with client:
            return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))

    async def _prompt(self, call, prompt, params: SamplingParams, schema=None) -> list[Completion]:
        import asyncio

        n = params.n if self.n_supported else 1
        got = await self._request(call, prompt, params, n, params.seed, schema)
        if len(got) < params.n and n > 1:
            self.n_supported = False
            log.info("server ignored n=%d; sending one request per sample", params.n)
        # Missing samples come from separate requests, each with its own seed so that
        # sampled answers differ (greedy ones are identical anyway).
        extra = await asyncio.gather(*(self._request(call, prompt, params, 1, params.seed + k,
                                                     schema)
                                       for k in range(len(got), params.n)))
        return (got + [c for cs in extra for c in cs])[:params.n]

    async def _request(self, call, prompt, params, n, seed, schema=None) -> list[Completion]:
        import asyncio

        args = dict(model=self.model, max_tokens=params.max_new_tokens, seed=seed,
                    temperature=params.temperature, top_p=params.top_p)
        if n > 1:
            args["n"] = n
        if params.stop:
            args["stop"] = list(params.stop)
        chat = not isinstance(prompt, str)
        if schema is not None and chat and self.structured:
            args["response_format"] = response_format(schema)
        attempt = 0
        while True:
            resp, (status, retry, wait_hint, detail) = await self._attempt(call, prompt, args, chat)
            if resp is not None:
                break
            if "response_format" in args and names_response_format(status, detail):
                # refused: ask again without it (not a retry), and never send it again
                self.response_format_unsupported(f"{status}: {detail[:120]}")
                del args["response_format"]
                continue
            if "response_format" in args and self.response_format_supported is False:
                del args["response_format"]  # another request found out meanwhile
            if not retry or attempt == self.max_retries:
                tries = f" after {attempt + 1} attempts" if retry else ""
                raise BackendError(
                    f"{'chat/completions' if chat else 'completions'} request to "
                    f"{self.base_url or 'api.openai.com'} failed{tries}: {status}: {detail}")
            delay = max(random.uniform(0, self.backoff * 2 ** attempt), wait_hint)
            log.warning("%s; retry %d/%d in %.1fs", status, attempt + 1, self.max_retries, delay)
            await asyncio.sleep(delay)
            attempt += 1
        if "response_format" in args:
            self.response_format_supported = self.response_format_supported or True
        # usage covers all choices; with n > 1 each gets an equal share (servers don't split it)
        per = ((resp.usage and resp.usage.completion_tokens) or 0) // max(len(resp.choices), 1)
        out = []
        for c in sorted(resp.choices, key=lambda c: c.index):
            # scrubbed: an echoing server must not get the key into caches or outputs
            text = self._scrub((c.message.content or "") if chat else c.text)
            # Some servers (transformers serve) stop on the string but keep it in the text.
            text, stopped = cut_at_stop(text, params.stop)
            calls = [{"name": t.function.name, "arguments": self._scrub(t.function.arguments or "")}
                     for t in (c.message.tool_calls or [])] if chat else []
            # a server ends a tool-calling turn with finish_reason "tool_calls"
            finish = "stop" if stopped else {"tool_calls": "stop"}.get(c.finish_reason,
                                                                        c.finish_reason or "stop")
            out.append(Completion(text, per, finish, calls or None))
        return out

    async def _attempt(self, call, prompt, args, chat):
        """One request: (response, None) or (None, (what happened, retry?, seconds the
        server asked us to wait, scrubbed detail)). The raw error and response stay in
        this frame, which is gone by the time a BackendError carries the detail away."""
        import openai

        try:
            resp = await call(prompt, **args)
            problem = _malformed(resp, chat)
            if problem is None:
                return resp, (None, False, 0.0, None)
            failure = f"malformed response ({problem})", True, 0.0, str(resp)
        except json.JSONDecodeError as e:  # a 200 whose body is not JSON (a proxy page)
            failure = "malformed response", True, 0.0, str(e)
        except openai.APIError as e:  # HTTP status, timeout or connection; bugs propagate
            failure = (*self._classify(e), _body(e))
        return None, (*failure[:3], self._scrub(failure[3][:300]))

    @staticmethod
    def _classify(e: Exception) -> tuple[str, bool, float]:
        """(what happened, whether to retry, seconds the server asked us to wait)."""
        import openai

        if isinstance(e, openai.APITimeoutError):
            return "timeout", True, 0.0
        if isinstance(e, openai.APIConnectionError):
            return "connection error", True, 0.0
        if isinstance(e, openai.APIStatusError):
            code = e.status_code
            try:  # Retry-After in seconds, as rate limiters send it; capped
                hint = min(float(e.response.headers.get("retry-after", 0)), 60.0)
            except ValueError:
                hint = 0.0
            return f"HTTP {code}", code in RETRY_STATUS or code >= 500, hint
        return type(e).__name__, False, 0.0

    def _scrub(self, text: str) -> str:
        # An echoing server must not leak the key into our messages.
        secret = os.environ.get(self.api_key_env) or ""
        return text.replace(secret, "***") if len(secret) >= 4 else text


def _malformed(resp, chat: bool) -> str | None:
    """What is wrong with a response that parsed but is not a completion, or None."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        return "no choices"
    for c in choices:
        if getattr(c, "message", None) is None if chat else not isinstance(getattr(c, "text", None), str):
            return "a choice without text"
    return None


def _body(e: Exception) -> str:
    body = getattr(e, "body", None) or getattr(e, "message", None) or str(e)
    return str(body)[:300]


# ---------------------------------------------------------------- vllm (offline engine)

class VLLMBackend:
    def __init__(self, model: str, *, dtype: str = "auto", **engine_kwargs):
        try:
            import vllm
        except ImportError as e:
            raise BackendError("the vllm backend needs vLLM and a GPU: "
                               "pip install 'ember[gpu]'") from e
        self.vllm = vllm
        self.llm = vllm.LLM(model=resolve_model(model), dtype=dtype, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    structured = "structured-outputs"

    def _structured(self, schema: dict) -> dict:
        """SamplingParams keywords asking for JSON under `schema`: `structured_outputs`
        (vLLM >= 0.10.2; the guided_* names went in 0.12), else `guided_decoding`."""
        try:
            from vllm.sampling_params import StructuredOutputsParams
        except ImportError:
            from vllm.sampling_params import GuidedDecodingParams

            return {"guided_decoding": GuidedDecodingParams(json=schema)}
        return {"structured_outputs": StructuredOutputsParams(json=schema)}

    def generate(self, prompts, params: SamplingParams, on_progress: Progress | None = None,
                 on_result: OnResult | None = None, *, seeds: list[int] | None = None,
                 json_schema: dict | None = None, tools: list[dict] | None = None):
        extra = self._structured(json_schema) if json_schema is not None else {}
        by_seed = {}  # one SamplingParams per distinct seed, shared by its prompts
        for seed in prompt_seeds(prompts, params, seeds):
            if seed not in by_seed:
                by_seed[seed] = self.vllm.SamplingParams(
                    n=params.n, temperature=params.temperature, top_p=params.top_p,
                    max_tokens=params.max_new_tokens, seed=seed,
                    stop=list(params.stop) or None, **extra)
        sp = [by_seed[seed] for seed in prompt_seeds(prompts, params, seeds)]
        inputs = []
        for p in prompts:
            if isinstance(p, str):
                inputs.append(p)
            else:  # rendered like the hf backend; token ids so no second BOS is added
                text = self.tokenizer.apply_chat_template(p, tools=tools, tokenize=False,
                                                          add_generation_prompt=True)
                inputs.append({"prompt_token_ids": self.tokenizer.encode(text, add_special_tokens=False)})
        # vLLM schedules and batches everything itself and returns outputs in input order;
        # a list of SamplingParams gives each prompt its own.
        outs = self.llm.generate(inputs, sp, use_tqdm=False)
        results = [[Completion(c.text, len(c.token_ids), c.finish_reason or "stop")
                    for c in sorted(o.outputs, key=lambda c: c.index)] for o in outs]
        if on_result:
            for i, r in enumerate(results):
                on_result(i, r)
        if on_progress:
            on_progress(len(prompts), len(prompts))
        return results


def make_backend(kind: str, model: str, *, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 batch_size: int = 16, max_retries: int = 5, timeout: float = 120,
                 dtype: str = "auto", device: str | None = None, backoff: float = 0.5,
                 max_prompt_tokens: int | None = None, truncate_prompts: bool = False) -> Backend:
    """Build the backend called `kind` ("hf", "openai" or "vllm") for `model`."""
    if kind == "hf":
        return HFBackend(model, batch_size=batch_size, dtype=dtype, device=device,
                         max_prompt_tokens=max_prompt_tokens, truncate_prompts=truncate_prompts)
    if kind == "openai":
        return OpenAIBackend(model, base_url=base_url, api_key_env=api_key_env,
                             concurrency=concurrency, max_retries=max_retries,
                             timeout=timeout, backoff=backoff)
    if kind == "vllm":
        return VLLMBackend(model, dtype=dtype)
    raise ValueError(f"unknown backend {kind!r}; expected one of hf, openai, vllm")
