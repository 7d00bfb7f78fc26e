"""Structured output and per-prompt seeds in the LLM layer.

- openai: a strict `response_format` json_schema goes with every JSON call; a server that
  refuses it (a real local HTTP server answering 400 naming response_format) or ignores
  it (answers invalid JSON) is detected once and asked without it from then on, and the
  LLM reports it once in `warnings`; `transformers serve` takes the field (and ignores it).
- hf: the llguidance grammar processor really constrains the embedded model (it writes a
  value it would never write on its own), for every row of a sampled batch.
- seeds: one call carries a seed per prompt; each is cached exactly as a call with that
  seed alone, and the hf backend gives the same texts either way.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from ember.llm.backends import SamplingParams, make_backend
from ember.llm.cache import Cache
from ember.llm.client import LLM
from ember.llm.structured import grammar_available, names_response_format, response_format
from tests.llm.test_backends import ok, scripted_server

SCHEMA = {"type": "object", "required": ["answer"], "additionalProperties": False,
          "properties": {"answer": {"type": "string"}}}
# A value the model never writes unprompted: only a working constraint produces it.
FORCED = {"type": "object", "required": ["code"], "additionalProperties": False,
          "properties": {"code": {"enum": ["zebra-42"]}}}


def chat(text):
    return [{"role": "user", "content": text}]


def _llm(url, cache=None):
    return LLM(make_backend("openai", "fake-model", base_url=url, max_retries=0, backoff=0.01),
               model="fake-model", cache=cache)


# ---------------------------------------------------------------- openai

def test_response_format_is_sent_strict_and_an_honouring_server_stays_on():
    def reply(k, path, body, headers):
        return 200, ok(path, body, '{"answer": "5"}'), 0

    with scripted_server(reply) as (url, seen, _):
        llm = _llm(url)
        assert llm.generate_json([chat("2+3?"), chat("1+4?")], SCHEMA,
                                 SamplingParams(temperature=0.7)) == [({"answer": "5"}, None)] * 2
    assert [s["body"]["response_format"] for s in seen] == [response_format(SCHEMA)] * 2
    rf = seen[0]["body"]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"] == SCHEMA and rf["json_schema"]["name"]
    assert llm.backend.response_format_supported is True and llm.warnings == []
    # plain generate calls never carry it
    with scripted_server(reply) as (url, seen, _):
        _llm(url).generate([chat("hi")], SamplingParams())
    assert "response_format" not in seen[0]["body"]


def test_server_rejecting_response_format_is_asked_again_without_it_once():
    def reply(k, path, body, headers):
        if "response_format" in body:
            return 400, {"error": {"message": "Unrecognized request argument supplied: "
                                              "response_format"}}, 0
        return 200, ok(path, body, 'Here: {"answer": "5"}' if body["seed"] else "no idea"), 0

    with scripted_server(reply) as (url, seen, _):
        llm = _llm(url)  # max_retries=0: the fallback is not a retry
        got = llm.generate_json([chat("2+3?")], SCHEMA, SamplingParams(temperature=0.7))
        assert got == [({"answer": "5"}, None)]
        # 400 -> same request without response_format -> invalid -> retry with seed 1
        assert [("response_format" in s["body"], s["body"]["seed"]) for s in seen] == [
            (True, 0), (False, 0), (False, 1)]
        assert llm.backend.response_format_supported is False
        assert len(llm.warnings) == 1 and "response_format" in llm.warnings[0]
        before = len(seen)
        llm.generate_json([chat("other")], SCHEMA, SamplingParams(temperature=0.7, seed=1))
        assert all("response_format" not in s["body"] for s in seen[before:])
        assert len(llm.warnings) == 1  # reported once


def test_server_ignoring_response_format_is_detected_and_reported_once(tmp_path):
    def reply(k, path, body, headers):  # takes the field, writes what it likes
        text = '```json\n{"answer": "5"}\n```' if body["seed"] == 1 else "Sure! The answer is 5."
        return 200, ok(path, body, text), 0

    with scripted_server(reply) as (url, seen, _):
        llm = _llm(url, Cache(tmp_path / "c.sqlite"))
        got = llm.generate_json([chat("2+3?")], SCHEMA, SamplingParams(temperature=0.7))
        assert got == [({"answer": "5"}, None)]
        assert [("response_format" in s["body"], s["body"]["seed"]) for s in seen] == [
            (True, 0), (False, 1)]
        assert llm.backend.response_format_supported is False
        assert llm.warnings == [llm.warnings[0]] and "ignored" in llm.warnings[0]
        llm.close()
        # a rerun (a new process: a fresh backend) replays both attempts from the cache
        again = _llm(url, Cache(tmp_path / "c.sqlite"))
        assert again.generate_json([chat("2+3?")], SCHEMA,
                                   SamplingParams(temperature=0.7)) == got
        assert len(seen) == 2 and again.usage["calls"] == 0


def test_a_reply_cut_at_max_tokens_does_not_count_as_ignoring():
    def reply(k, path, body, headers):
        resp = ok(path, body, '{"answer": "a very long')
        resp["choices"][0]["finish_reason"] = "length"
        return 200, resp, 0

    with scripted_server(reply) as (url, seen, _):
        llm = _llm(url)
        [(obj, why)] = llm.generate_json([chat("q")], SCHEMA, SamplingParams(temperature=0.7),
                                         attempts=2)
    assert obj is None and "invalid JSON" in why and "after 2 attempts" in why
    assert all("response_format" in s["body"] for s in seen)
    assert llm.backend.response_format_supported is not False and llm.warnings == []


def test_names_response_format():
    assert names_response_format("HTTP 400", "{'error': 'response_format is not supported'}")
    assert names_response_format("HTTP 422", "json_schema: unknown field")
    assert not names_response_format("HTTP 400", "context length exceeded")
    assert not names_response_format("HTTP 500", "response_format crashed the server")


# ---------------------------------------------------------------- seeds

def test_one_call_with_a_seed_per_prompt_is_cached_like_separate_calls(tmp_path):
    with scripted_server(lambda k, p, b, h: (200, ok(p, b, f"seed {b['seed']}"), 0)) as (
            url, seen, _):
        llm = _llm(url, Cache(tmp_path / "c.sqlite"))
        out = llm.generate([chat("a"), chat("a"), chat("b"), chat("a")], SamplingParams(),
                           seeds=[0, 1, 1, 0])
        assert [r.text for r in out] == ["seed 0", "seed 1", "seed 1", "seed 0"]
        assert sorted((s["body"]["messages"][0]["content"], s["body"]["seed"]) for s in seen) \
            == [("a", 0), ("a", 1), ("b", 1)]  # the repeated (a, 0) asked once
        # the same calls made one seed at a time are all cache hits
        assert llm.generate([chat("a")], SamplingParams(seed=1))[0].cached
        assert llm.generate([chat("a"), chat("b")], SamplingParams(seed=0),
                            seeds=[0, 1])[1].cached
        assert len(seen) == 3
        with pytest.raises(ValueError, match="2 seeds for 1 prompts"):
            llm.generate([chat("a")], SamplingParams(), seeds=[0, 1])


# ---------------------------------------------------------------- transformers serve

@pytest.mark.slow
def test_transformers_serve_accepts_and_ignores_response_format(served_model):
    """What the local server does with the field: a 200 (not a 4xx), unconstrained text."""
    body = {"model": served_model.model, "messages": chat("Say hello."), "max_tokens": 6,
            "temperature": 0, "response_format": response_format(FORCED)}
    req = urllib.request.Request(served_model.base_url + "/chat/completions",
                                 json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 200
        text = json.loads(r.read())["choices"][0]["message"]["content"]
    assert "zebra-42" not in text  # ignored: a constrained reply could only be {"code": ...}


# ---------------------------------------------------------------- hf, with the model

@pytest.fixture(scope="module")
def hf():
    return make_backend("hf", "smollm2", batch_size=4, device="cpu", dtype="float32")


@pytest.mark.slow
@pytest.mark.skipif(not grammar_available(), reason="needs llguidance (the models extra)")
def test_hf_grammar_constrains_every_row(hf):
    llm = LLM(hf, model="smollm2")
    assert llm.structured() == "grammar"
    prompts = [chat("Describe the weather in one word."), "The capital of France is"]
    got = llm.generate_json(prompts, FORCED, SamplingParams(n=2, temperature=1.0,
                                                            max_new_tokens=16), attempts=1)
    assert got == [({"code": "zebra-42"}, None)] * 2
    raw = hf.generate(prompts, SamplingParams(n=2, temperature=1.0, max_new_tokens=16),
                      json_schema=FORCED)
    assert [c.text for cs in raw for c in cs] == ['{"code": "zebra-42"}'] * 4
    assert all(c.finish_reason == "stop" for cs in raw for c in cs)  # ended after the object
    # without the processor the same call is free text
    free = hf.generate(prompts[:1], SamplingParams(max_new_tokens=8))
    assert "zebra" not in free[0][0].text


@pytest.mark.slow
def test_hf_seeds_per_prompt_match_separate_calls(hf):
    prompts = [chat("Tell me a word."), "Once upon a time", chat("Name a colour.")]
    params = SamplingParams(temperature=1.0, max_new_tokens=6)
    together = hf.generate(prompts, params, seeds=[3, 4, 3])
    alone = [hf.generate([prompts[0], prompts[2]], SamplingParams(**{**params.__dict__, "seed": 3})),
             hf.generate([prompts[1]], SamplingParams(**{**params.__dict__, "seed": 4}))]
    assert [together[0], together[2]] == alone[0] and [together[1]] == alone[1]
    assert together != hf.generate(prompts, params, seeds=[5, 6, 5])
