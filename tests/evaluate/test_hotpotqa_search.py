"""The agentic hotpotqa-search benchmark: `ember eval` runs the search agent per item
against a scripted OpenAI-compatible server and scores the answers with EM/F1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ember.evaluate.benchmarks import hotpotqa_paragraphs, load_benchmark
from tests.evaluate.test_agent import turn_and_question
from tests.llm.test_backends import ok, scripted_server

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_items_are_agent_prompts():
    bench = load_benchmark("hotpotqa-search")
    items = bench.load()
    assert bench.agent and bench.scorer == "qa" and len(items) == 53
    first = items[0]
    assert first.gold == "yes" and first.meta["question"].startswith("Were Scott Derrickson")
    # the native protocol's first turn: the search tool's question prompt
    assert "`search` tool" in first.messages[0]["content"] and len(first.messages) == 1
    assert first.messages[0]["content"].endswith(f"Question: {first.meta['question']}")
    assert not load_benchmark("hotpotqa").agent
    # the default corpus is the one examples/data/search ships
    shipped = [json.loads(line) for line in
               (ROOT / "examples" / "data" / "search" / "corpus.jsonl").open()]
    assert hotpotqa_paragraphs() == shipped


CALL = '<tool_call>{"name": "search", "arguments": {"query": "Scott Derrickson"}}</tool_call>'
STEPS = {  # protocol -> question start -> step texts
    "tags": {"Were Scott": ["<think>Look him up.</think><search>Scott Derrickson</search>",
                            "<think>Both American.</think><answer>yes</answer>"],
             "What government": ["<think>I recall it.</think><answer>Chief of Staff</answer>"]},
    "native": {"Were Scott": ["Look him up.\n" + CALL, "Both are American.\nAnswer: yes"],
               "What government": ["I recall it.\nAnswer: Chief of Staff"]},
}


def _reply(k, path, body, headers):
    turn, question = turn_and_question(body)
    protocol = "native" if body.get("tools") else "tags"
    steps = next(v for key, v in STEPS[protocol].items() if question.startswith(key))
    return 200, ok(path, body, steps[turn]), 0


@pytest.mark.parametrize("protocol", ["native", "tags"])
def test_eval_runs_the_agent_and_scores_em_f1(ember, tmp_path, protocol):
    out = tmp_path / "run"
    args = ("eval", "--backend", "openai", "--model", "scripted", "--benchmarks",
            "hotpotqa-search", "--limit", "2", "--out", out, "--json", "--protocol", protocol)
    with scripted_server(_reply) as (url, seen, _):
        results = json.loads(ember(*args, "--base-url", url).stdout)
        assert len(seen) == 3
        metrics = results["benchmarks"]["hotpotqa-search"]["metrics"]
        assert metrics["em"]["value"] == 0.5
        assert abs(metrics["f1"]["value"] - (1 + 2 / 3) / 2) < 1e-9
        rows = [json.loads(line) for line in (out / "samples.jsonl").open()]
        assert [r["response"] for r in rows] == ["yes", "Chief of Staff"]
        assert [r["finish_reason"] for r in rows] == ["answered", "answered"]
        assert rows[0]["steps"][0]["query"] == "Scott Derrickson"
        assert rows[0]["steps"][0]["results"][0]["title"] == "Scott Derrickson"
        assert (out / "search-index" / "docs.jsonl").exists()
        if protocol == "native":  # the tool is offered; its result came back as a tool turn
            assert seen[0]["body"]["tools"][0]["function"]["name"] == "search"
            second = next(r["body"]["messages"] for r in seen if len(r["body"]["messages"]) > 1)
            assert [m["role"] for m in second] == ["user", "assistant", "tool"]
            assert second[1]["tool_calls"][0]["function"]["arguments"] == \
                '{"query": "Scott Derrickson"}'
            assert second[2]["content"].startswith("Doc 1 (Title: Scott Derrickson)")
        else:
            assert "tools" not in seen[0]["body"]
        # resume: every item is in samples.jsonl, nothing is asked again
        again = json.loads(ember(*args, "--base-url", url).stdout)
        assert len(seen) == 3
        assert again["benchmarks"]["hotpotqa-search"]["metrics"]["em"]["value"] == 0.5
        # an index of the user's own, here the example corpus
        index = tmp_path / "idx"
        ember("synth", "index", ROOT / "examples" / "data" / "search" / "corpus.jsonl",
              "-o", index)
        other = tmp_path / "run2"
        results = json.loads(ember("eval", "--backend", "openai", "--model", "scripted",
                                   "--benchmarks", "hotpotqa-search", "--limit", "1",
                                   "--out", other, "--search-index", index, "--base-url", url,
                                   "--json", "--protocol", protocol).stdout)
        assert results["benchmarks"]["hotpotqa-search"]["metrics"]["em"]["value"] == 1.0
        assert not (other / "search-index").exists()
    rescored = json.loads(ember("eval", "rescore", out, "--json").stdout)
    assert rescored["benchmarks"]["hotpotqa-search"]["metrics"]["em"]["value"] == 0.5


def test_unknown_protocol_is_refused_before_any_model_loads(ember, tmp_path):
    proc = ember("eval", "--model", "smollm2", "--benchmarks", "hotpotqa-search",
                 "--protocol", "xml", "--out", tmp_path / "run", check=False)
    assert proc.returncode == 2 and "--protocol must be one of native, tags" in proc.stderr


def test_backend_failure_fails_the_run_and_saves_nothing(ember, tmp_path):
    def reply(k, path, body, headers):
        return 400, {"error": {"message": "model not loaded"}}, 0

    out = tmp_path / "run"
    with scripted_server(reply) as (url, seen, _):
        proc = ember("eval", "--backend", "openai", "--model", "scripted", "--base-url", url,
                     "--benchmarks", "hotpotqa-search", "--limit", "2", "--out", out,
                     check=False)
    assert proc.returncode != 0 and "model not loaded" in proc.stderr
    assert len(seen) == 2
    assert (out / "samples.jsonl").read_text() == ""  # a rerun asks both again
