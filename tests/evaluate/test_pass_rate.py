"""`ember eval pass-rate`: a pass-rate column over K samples, rejects, resume."""

import json

import pytest

from ember.evaluate.benchmarks import load_benchmark
from ember.evaluate.tasks import read_tasks


@pytest.mark.slow
def test_pass_rate_column_rejects_and_resume(ember, tmp_path):
    items = load_benchmark("mawps").load()[:3]
    tasks = tmp_path / "tasks.jsonl"
    rows = [{"id": it.id, "prompt": it.messages[0]["content"].split("\n\nSolve")[0],
             "answer": it.gold, "category": "math"} for it in items]
    tasks.write_text("\n".join(json.dumps(r) for r in rows)
                     + '\n{"id": "broken", "answer": "1"}\n')
    out = tmp_path / "rated.jsonl"
    # A killed earlier run left the first task rated in the partial file.
    (tmp_path / ".rated.jsonl.partial").write_text(json.dumps(rows[0] | {"p": 0.25}) + "\n{\"id\"")
    summary = json.loads(ember("eval", "pass-rate", "--model", "smollm2", "--tasks", tasks,
                               "--column", "p", "--samples", "2", "--max-new-tokens", "32",
                               "-o", out, "--json").stdout)
    assert summary["resumed"] == 1 and summary["produced"] == 3 and summary["rejected"] == 1
    # Written in the task file form (every other field in `extra`); read_tasks reads it.
    lines = [json.loads(line) for line in out.open()]
    assert all(set(r) == {"id", "prompt", "answer", "scorer", "extra"} for r in lines[1:])
    rated, bad = read_tasks(out)
    assert not bad and [r["id"] for r in rated] == [r["id"] for r in rows]
    assert rated[0]["p"] == 0.25  # not redone
    assert all(r["p"] in (0.0, 0.5, 1.0) for r in rated[1:])
    assert all(r["category"] == "math" for r in rated)  # other fields are kept
    (reject,) = [json.loads(line) for line in (tmp_path / "rated.rejects.jsonl").open()]
    assert reject["line"] == 4 and "prompt" in reject["detail"]
