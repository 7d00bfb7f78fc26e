"""`ember synth solutions`: budget allocation, input rejects, the pipeline against a
scripted solver (a real local HTTP server) and, slow, the CLI against the real
`transformers serve` of the embedded model."""

from __future__ import annotations

import json

import pytest

from ember.llm.backends import make_backend
from ember.llm.cache import Cache
from ember.llm.client import LLM
from ember.synth.solutions import SolutionsConfig, allocate, difficulty, synth_solutions
from tests.llm.test_backends import ok, scripted_server


def read(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def test_uniform_allocation():
    assert allocate([0.0, 0.5, 1.0], 12, "uniform") == [4, 4, 4]
    assert allocate([0.0, 0.5, 1.0], 7, "uniform") == [3, 2, 2]
    assert allocate([0.3], 0, "uniform") == [0]
    assert allocate([], 5, "uniform") == []


def test_prop2diff_allocation_numbers():
    # one each, then 12 in proportion to 0 : .5 : 1 : .25 -> 0, 3.43, 6.86, 1.71
    assert allocate([0.0, 0.5, 1.0, 0.25], 16, "prop2diff") == [1, 4, 8, 3]
    got = allocate([0.1, 0.9, 0.6, 0.0, 1.0], 23, "prop2diff")
    assert sum(got) == 23 and min(got) >= 1
    assert got[4] >= got[1] >= got[2] >= got[0] >= got[3] == 1  # harder -> more attempts
    assert allocate([0.0, 0.0, 0.0], 7, "prop2diff") == [3, 2, 2]  # all easy: even split
    assert allocate([0.5, 1.0, 0.0], 2, "prop2diff") == [1, 1, 1]  # the minimum wins
    with pytest.raises(ValueError, match="unknown strategy"):
        allocate([0.5], 3, "hardest-first")


def test_difficulty_bins():
    assert [difficulty(f) for f in (0.0, 0.25, 0.5, 0.75, 1.0)] == [
        "easy", "easy", "medium", "hard", "unsolved-in-probe"]


def solver(k, path, body, headers):
    """Always right on "easy", right on "medium" for odd seeds, never right on "hard"."""
    ask = body["messages"][-1]["content"]
    seed = body.get("seed", 0)
    if "easy" in ask:
        text = f"Attempt {seed}: 2 + 2 = 4, so \\boxed{{4}}."
    elif "medium" in ask:
        text = f"Attempt {seed}: \\boxed{{{6 if seed % 2 else 5}}}"
    else:
        text = f"Attempt {seed}: \\boxed{{0}}"
    return 200, ok(path, body, text), 0


@pytest.mark.parametrize("strategy", ["uniform", "prop2diff"])
def test_pipeline_with_scripted_solver(tmp_path, strategy):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"id": "e", "prompt": "easy: 2+2?", "answer": "4"}\n'
                     '{"id": "m", "prompt": "medium: 3+3?", "answer": "6"}\n'
                     '{"id": "h", "prompt": "hard: 7*7?", "answer": "49"}\n'
                     '{"id": "broken"}\n')
    out = tmp_path / "sft.jsonl"
    cfg = SolutionsConfig(tasks=str(tasks), out=str(out), strategy=strategy, samples=4,
                          probe_samples=2)
    with scripted_server(solver) as (url, seen, _):
        # the server answers one choice whatever n asks: the backend asks again per sample
        with LLM(make_backend("openai", "s", base_url=url, max_retries=0), model="s",
                 cache=Cache(tmp_path / "c.sqlite")) as llm:
            summary = synth_solutions(cfg, llm)
        sent = len(seen)
    rows = read(out)
    by_task = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r)
        assert r["messages"][0]["role"] == "user" and "\\boxed{}" in r["messages"][0]["content"]
        assert r["messages"][-1]["role"] == "assistant"
    # probe seeds 0, 1: easy 2/2 right, medium 1/2, hard 0/2
    assert {t: rs[0]["difficulty"] for t, rs in by_task.items()} == {"e": "easy", "m": "medium"}
    extra = {"uniform": [2, 2, 2], "prop2diff": [1, 2, 3]}[strategy]
    assert summary["attempts"] == {"probe": 6, "extra": 6, "extra_min": min(extra),
                                   "extra_max": max(extra)}
    assert len(by_task["e"]) == 2 + extra[0]  # every attempt right and distinct
    assert sent == 6 + 6
    assert summary["coverage"]["unsolved-in-probe"] == {"tasks": 1, "covered": 0, "coverage": 0.0}
    assert summary["tasks_covered"] == 2 and summary["produced"] == len(rows)
    rejects = read(tmp_path / "sft.rejects.jsonl")
    assert sorted((r["stage"], r["reason"]) for r in rejects) == [
        ("input", "not-a-task"), ("sample", "unsolved")]
    assert json.loads((tmp_path / "sft.jsonl.summary.json").read_text())["produced"] == len(rows)

    # rerun: all from the cache, same output
    first = out.read_text()
    with scripted_server(solver) as (url, seen, _):
        with LLM(make_backend("openai", "s", base_url=url, max_retries=0), model="s",
                 cache=Cache(tmp_path / "c.sqlite")) as llm:
            again = synth_solutions(cfg, llm)
        assert seen == [] and again["llm"]["calls"] == 0
    assert out.read_text() == first


@pytest.mark.slow
def test_cli_against_served_model(ember, served_model, tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"id": "a", "prompt": "What is 2 + 3?", "answer": "5"}\n'
                     '{"id": "b", "prompt": "What is 10 - 4?", "answer": "6"}\nbad\n')
    out = tmp_path / "sft.jsonl"
    args = ["synth", "solutions", "--tasks", tasks, "--backend", "openai", "--model",
            served_model.model, "--concurrency", "1", "--timeout", "600", "--samples", "2",
            "--probe-samples", "1", "--max-new-tokens", "48", "-o", out, "--json"]
    proc = ember(*args, "--base-url", served_model.base_url, check=False)
    # the 135M model solves these only sometimes: 0 solutions is exit 3, saying why
    solved = bool(read(out))
    assert proc.returncode == (0 if solved else 3), proc.stderr
    assert solved or "fewer than --min-yield 1" in proc.stderr
    summary = json.loads(proc.stdout)
    rows = read(out)
    assert summary["tasks"] == 2 and summary["produced"] == len(rows)
    assert summary["attempts"]["probe"] == 2 and summary["attempts"]["extra"] == 2
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    rejects = read(tmp_path / "sft.rejects.jsonl")
    assert ("input", "invalid-json") in {(r["stage"], r["reason"]) for r in rejects}
    assert all(r["stage"] and r["reason"] for r in rejects)
    print(f"served-model solutions: {len(rows)} correct, coverage {summary['coverage']}")
    # rerun against a dead endpoint: everything comes from the cache
    first = out.read_text()
    proc = ember(*args, "--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0", check=False)
    assert proc.returncode == (0 if solved else 3), proc.stderr
    assert json.loads(proc.stdout)["llm"]["calls"] == 0
    assert out.read_text() == first


def test_cli_bad_options(ember, tmp_path):
    tasks = tmp_path / "t.jsonl"
    tasks.write_text('{"prompt": "1+1?", "answer": "2"}\n')
    proc = ember("synth", "solutions", "--tasks", tasks, "--samples", "2", "--probe-samples", "4", "-o",
                 tmp_path / "o.jsonl", check=False)
    assert proc.returncode == 2 and "--probe-samples (4) must not exceed --samples (2)" in proc.stderr
    proc = ember("synth", "solutions", "--tasks", tasks, "--strategy", "hardest", "-o",
                 tmp_path / "o.jsonl", check=False)
    assert proc.returncode == 2 and "unknown --strategy 'hardest'" in proc.stderr
