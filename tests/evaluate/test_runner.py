"""`ember eval` end to end: results.json, resume after a real kill, the scores of known
responses (a scripted endpoint), rescore, compare."""

import dataclasses
import json
import signal
import subprocess
import sys
import time

import jsonschema
import pytest

from ember.evaluate.benchmarks import load_benchmark
from ember.evaluate.scoring import get_scorer
from ember.schemas import load_schema
from tests.llm.test_backends import ok, scripted_server

SMALL = ["--benchmarks", "mawps", "--max-new-tokens", "40"]


def read_samples(path):
    return [json.loads(line) for line in path.open()]


@pytest.mark.slow
def test_eval_writes_valid_results_and_resumes_after_kill(ember, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ember.cli.main", "eval", "--model", "smollm2", *SMALL,
           "--limit", "6", "--batch-size", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = out / "samples.jsonl"
    deadline = time.time() + 300
    while not samples.exists() or len(samples.read_bytes().splitlines()) < 2:
        assert proc.poll() is None and time.time() < deadline, "eval ended before the kill"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_samples(samples)
    assert 2 <= len(before) < 6

    results = json.loads(ember("eval", "--model", "smollm2", *SMALL, "--limit", "6",
                               "--batch-size", "2", "--out", out, "--json").stdout)
    jsonschema.validate(results, load_schema("results"))
    mawps = results["benchmarks"]["mawps"]
    assert mawps["items"] == 6 and mawps["samples"] == 6
    assert mawps["timing"]["generated"] == 6 - len(before)  # finished items were not redone
    after = read_samples(samples)
    assert len(after) == 6 and len({r["id"] for r in after}) == 6
    assert after[: len(before)] == before
    # The samples are the first 6 items with their own gold, each scored as the math
    # scorer scores its response, and the reported score is the mean of those scores.
    items = load_benchmark("mawps").load()[:6]
    assert [r["id"] for r in after] == [it.id for it in items]
    assert [r["gold"] for r in after] == [it.gold for it in items]
    assert all(r["response"].strip() and r["tokens"] > 0 for r in after)  # the model wrote
    scorer = get_scorer("math")
    rescored = [scorer(r["response"], it) for r, it in zip(after, items)]
    assert [(r["extracted"], r["metrics"]["score"]) for r in after] == \
        [(m["extracted"], m["score"]) for m in rescored]
    assert mawps["metrics"]["score"]["value"] == pytest.approx(
        sum(m["score"] for m in rescored) / 6)
    assert results["generation"]["temperature"] == 0.0 and results["backend"] == "hf"

    # Other settings in the same directory are refused rather than mixed in.
    proc = ember("eval", "--model", "smollm2", *SMALL, "--limit", "6", "--temperature", "0.7",
                 "--out", out, check=False)
    assert proc.returncode == 2 and "other settings" in proc.stderr


def test_eval_scores_known_responses(ember, tmp_path):
    """An endpoint that answers each mawps item a known way: right in a box, right in
    words, wrong, empty. The per-sample and overall scores are known in advance."""
    items = load_benchmark("mawps").load()[:6]
    replies = [  # (response, score)
        (f"Joan has {items[0].gold} left, so the answer is \\boxed{{{items[0].gold}}}.", 1.0),
        (f"\\boxed{{{items[1].gold}}}", 1.0),
        (f"The answer is \\boxed{{{int(items[2].gold) + 1}}}.", 0.0),  # off by one
        ("", 0.0),                                                     # said nothing
        (f"The answer is {items[4].gold}", 1.0),                       # no box, last number
        ("I am not sure.", 0.0),
    ]
    by_question = {it.messages[-1]["content"]: reply for it, (reply, _) in zip(items, replies)}

    def answer(k, path, body, headers):
        return 200, ok(path, body, by_question[body["messages"][-1]["content"]]), 0

    with scripted_server(answer) as (url, seen, _):
        results = json.loads(ember("eval", "--backend", "openai", "--base-url", url,
                                   "--model", "scripted", "--max-retries", "0", *SMALL,
                                   "--limit", "6", "--out", tmp_path / "run", "--json").stdout)
    assert len(seen) == 6
    jsonschema.validate(json.loads((tmp_path / "run" / "results.json").read_text()),
                        load_schema("results"))
    rows = read_samples(tmp_path / "run" / "samples.jsonl")
    assert [(r["id"], r["response"]) for r in rows] == \
        [(it.id, reply) for it, (reply, _) in zip(items, replies)]
    assert [r["metrics"]["score"] for r in rows] == [score for _, score in replies]
    assert [r["extracted"] for r in rows[:3]] == [items[0].gold, items[1].gold,
                                                 str(int(items[2].gold) + 1)]
    mawps = results["benchmarks"]["mawps"]
    assert mawps["items"] == 6 and mawps["metrics"]["score"]["value"] == pytest.approx(0.5)


def fake_run(folder, scores, benchmark="mawps", protocol=None):
    folder.mkdir()
    with open(folder / "samples.jsonl", "w") as f:
        for i, s in enumerate(scores):
            row = {"benchmark": benchmark, "id": f"q{i}", "sample": 0, "response": "",
                   "metrics": {"score": s}}
            f.write(json.dumps(row | ({"protocol": protocol} if protocol else {})) + "\n")
    return folder


def test_compare_paired_bootstrap_and_plot(ember, tmp_path):
    a = fake_run(tmp_path / "a", [0] * 60 + [1] * 40)
    b = fake_run(tmp_path / "b", [0] * 30 + [1] * 70)   # B fixes 30 of A's misses
    plot = tmp_path / "cmp.png"
    report = json.loads(ember("eval", "compare", a, b, "--plot", plot, "--json").stdout)
    (row,) = report["benchmarks"]
    assert row["items"] == 100 and row["diff"] == pytest.approx(0.30)
    assert 0.2 < row["ci_low"] < 0.3 < row["ci_high"] < 0.4 and row["significant"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    same = json.loads(ember("eval", "compare", a, a, "--plot", "none", "--json").stdout)
    assert same["benchmarks"][0]["diff"] == 0 and not same["benchmarks"][0]["significant"]


def test_compare_refuses_two_protocols_under_one_name(ember, tmp_path):
    # An old run's `gsm8k` (ember's one-turn boxed protocol) against lm-eval's gsm8k.
    old = fake_run(tmp_path / "old", [1] * 10, benchmark="gsm8k")
    new = fake_run(tmp_path / "new", [0] * 10, benchmark="gsm8k", protocol="lm-eval gsm8k 3.0")
    proc = ember("eval", "compare", old, new, "--plot", "none", check=False)
    assert proc.returncode == 2 and "another protocol" in proc.stderr
    assert "lm-eval gsm8k 3.0" in proc.stderr


def test_rescore_needs_no_model(ember, tmp_path):
    """Rescoring reads saved responses only: it runs with torch made unimportable."""
    from ember.evaluate.benchmarks import load_benchmark
    from ember.evaluate.runner import EvalConfig

    out = tmp_path / "run"
    out.mkdir()
    items = load_benchmark("mawps").load()[:3]
    cfg = EvalConfig(benchmarks=["mawps"], out=str(out))
    (out / "run.json").write_text(json.dumps({"config": dataclasses.asdict(cfg)}))
    with open(out / "samples.jsonl", "w") as f:
        for i, item in enumerate(items):
            answer = item.gold if i < 2 else "nonsense"
            f.write(json.dumps({"benchmark": "mawps", "id": item.id, "sample": 0,
                                "response": f"So the answer is \\boxed{{{answer}}}.",
                                "extracted": None, "gold": item.gold,
                                "metrics": {"score": 0.0}}) + "\n")
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
            "from ember.cli.main import main; sys.argv = ['ember', 'eval', 'rescore', "
            f"{str(out)!r}, '--json']; main()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert results["benchmarks"]["mawps"]["metrics"]["score"]["value"] == pytest.approx(2 / 3)
    jsonschema.validate(json.loads((out / "results.json").read_text()), load_schema("results"))
    rows = read_samples(out / "samples.jsonl")
    assert [r["metrics"]["score"] for r in rows] == [1.0, 1.0, 0.0]
    assert rows[0]["extracted"] is not None
