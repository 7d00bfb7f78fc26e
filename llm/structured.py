"""Structured (JSON-schema constrained) output: how each backend is asked for it, and the
grammar logits processor of the hf backend.

    from ember.llm.structured import grammar_available, JSONSchemaProcessor
    proc = JSONSchemaProcessor(tokenizer, schema, vocab_size=model.config.vocab_size)
    model.generate(**batch, logits_processor=LogitsProcessorList([proc]))

`LLM.generate_json` (ember.llm.client) passes the schema to the backend, which constrains
decoding where it can:

- hf: a logits processor built on llguidance (the optional `llguidance` package, part of
  the `models` extra) masks, at every step, each row's tokens that cannot continue a JSON
  text valid under the schema; a row whose JSON is complete may only end its turn. The
  processor keeps one matcher per generated row (`n` > 1 gives each sample its own),
  advances it by the token the row actually got; once the object is complete only the
  end of turn is allowed, and a row that has ended is no longer masked.
  Without llguidance, decoding is unconstrained and `generate_json` parses and retries
  (one warning per process says so).
- openai: ``response_format={"type": "json_schema", "json_schema": {"name", "schema",
  "strict": true}}`` (`response_format`, below). A server that refuses it (a 400/422
  naming response_format) or ignores it (an answer that is not schema-valid JSON though it
  was not cut at max tokens) is marked once; from then on that backend asks without it,
  and generate_json falls back to parse-and-retry (ember.llm.client reports this once).
- vllm: ``SamplingParams(structured_outputs=StructuredOutputsParams(json=schema))`` on
  vLLM >= 0.10.2, ``guided_decoding=GuidedDecodingParams(json=schema)`` on older ones.

Constrained output is still parsed strictly and validated with jsonschema by the caller:
constraints are only as good as the grammar compiler's cover of JSON Schema.

The JSON is compact (", " and ": " separators, no newlines or indentation): with free
whitespace a small model can spend its whole budget on blank lines inside an object.
"""

from __future__ import annotations

import importlib.util
import json
import logging

log = logging.getLogger(__name__)

# Separators of the constrained JSON; no other whitespace is allowed between tokens.
COMPILE_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def grammar_available() -> bool:
    """Whether the hf backend can constrain decoding (llguidance is installed)."""
    return importlib.util.find_spec("llguidance") is not None


def response_format(schema: dict, name: str = "output") -> dict:
    """The OpenAI `response_format` asking for JSON valid under `schema`."""
    return {"type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True}}


def names_response_format(status: str, detail: str) -> bool:
    """Whether an error answer says the server does not take `response_format`: a 400 or
    422 whose body names it (or its json_schema part)."""
    text = detail.lower()
    return status in ("HTTP 400", "HTTP 422") and (
        "response_format" in text or "json_schema" in text or "response format" in text)


class GrammarCompiler:
    """Compiles JSON schemas to llguidance grammars for one tokenizer, once each."""

    def __init__(self, tokenizer, vocab_size: int | None, eos_ids: list[int]):
        import llguidance
        import llguidance.hf
        import llguidance.numpy

        self.ll = llguidance
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size,
                                                      eos_token=list(eos_ids) or None)
        self.vocab_size = vocab_size or self.tokenizer.vocab_size
        self._grammars: dict[str, str] = {}
        self.executor = llguidance.LLExecutor(num_threads=1)

    def grammar(self, schema: dict) -> str:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            grammar = self.ll.LLMatcher.grammar_from_json_schema(schema, overrides=COMPILE_OPTIONS)
            error, warnings = self.ll.LLMatcher.validate_grammar_with_warnings(
                grammar, self.tokenizer)
            if error:
                raise ValueError(f"JSON schema not supported by the grammar compiler: "
                                 f"{'; '.join(warnings)}")
            for w in warnings:
                log.warning("JSON schema grammar: %s", w)
            self._grammars[key] = grammar
        return self._grammars[key]

    def processor(self, schema: dict) -> JSONSchemaProcessor:
        return JSONSchemaProcessor(self, self.grammar(schema))


class JSONSchemaProcessor:
    """A transformers logits processor (callable on (input_ids, scores)) that keeps every
    row on a JSON text valid under one grammar. Use one per `generate` call."""

    def __init__(self, compiler: GrammarCompiler, grammar: str):
        self.compiler, self.grammar = compiler, grammar
        self.matchers = None
        self.bitmask = None

    def __call__(self, input_ids, scores):
        import numpy as np
        import torch

        ll = self.compiler.ll
        rows = input_ids.shape[0]
        if self.matchers is None:  # first step: nothing generated yet
            self.matchers = [ll.LLMatcher(self.compiler.tokenizer, self.grammar, log_level=0)
                             for _ in range(rows)]
            words = (self.compiler.vocab_size + 31) // 32
            self.bitmask = np.full((rows, words), -1, dtype=np.int32)
        else:
            for m, token in zip(self.matchers, input_ids[:, -1].tolist()):
                if not m.is_error():
                    m.consume_token(token)  # a wrong token puts it in its error state
        # A complete object leaves the matcher stopped, and its mask allows only the end
        # of turn. A row in the error state has ended (what follows its end token is
        # padding, which transformers writes whatever the scores say): left unmasked.
        live = [(m, i) for i, m in enumerate(self.matchers) if not m.is_error()]
        self.bitmask.fill(-1)
        if live:
            ll.numpy.fill_next_token_bitmask_par(self.compiler.executor, live, self.bitmask)
        bits = torch.from_numpy(self.bitmask).to(scores.device)
        shifts = torch.arange(32, dtype=torch.int32, device=scores.device)
        allowed = ((bits.unsqueeze(-1) >> shifts) & 1).bool().reshape(rows, -1)
        vocab = scores.shape[-1]
        if allowed.shape[1] < vocab:  # logits wider than the tokenizer: never those
            pad = torch.zeros(rows, vocab - allowed.shape[1], dtype=torch.bool,
                              device=scores.device)
            allowed = torch.cat([allowed, pad], dim=1)
        return scores.masked_fill(~allowed[:, :vocab], float("-inf"))
