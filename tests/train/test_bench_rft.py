"""`ember bench rft`: two selectors race on real GRPO with a tiny model (2 steps each; the
embedded model's figures are docs/benchmarks.md's), as a user runs it; bench.json meets its schema, the plot is a PNG, a finished
bench given --resume trains nothing again; and the GPU check script refuses a machine
without CUDA in one clear line."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT

TASKS = FIXTURES / "tasks" / "arithmetic.jsonl"


@pytest.mark.slow
def test_two_selectors_two_steps(ember, tmp_path, tiny_model):
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(TASKS.read_text().splitlines(keepends=True)[:4]))
    train_cfg = tmp_path / "train.yaml"
    train_cfg.write_text("rft:\n  tasks_per_step: 2\n  samples: 2\n  batch_size: 4\n"
                         "  max_new_tokens: 8\n  save_steps: 1000\n  reward: math\n")
    out = tmp_path / "bench"
    args = ["bench", "rft", "--model", tiny_model, "--tasks", TASKS, "--eval-tasks", heldout,
            "--selectors", "uniform,bots", "--steps", "2",
            "--eval-every", "2", "--train-config", train_cfg, "--out", out, "--json"]
    summary = json.loads(ember(*args).stdout)
    result = json.loads((out / "bench.json").read_text())
    assert summary["selectors"].keys() == result["selectors"].keys() == {"uniform", "bots"}

    import jsonschema

    from ember.schemas import load_schema

    jsonschema.validate(result, load_schema("bench_rft"))
    for name, run in result["selectors"].items():
        assert [s["step"] for s in run["steps"]] == [1, 2], name
        assert [h["step"] for h in run["heldout"]] == [0, 2], name
        assert all(0 <= s["effective_ratio"] <= 1 for s in run["steps"])
        assert run["train_seconds"] > 0 and 0 <= run["selector_share"] < 1
        # The per-step ratio is the one the trainer logged for that batch.
        logged = [json.loads(line)["metrics"]["effective_ratio"] for line in
                  (out / "runs" / name / "rft" / "selection.jsonl").read_text().splitlines()]
        assert [s["effective_ratio"] for s in run["steps"]] == pytest.approx(logged)
    # Same start, same seed: the held-out accuracy before training is the same number.
    assert result["selectors"]["uniform"]["heldout_before"] == result["selectors"]["bots"]["heldout_before"]
    assert result["machine"]["device"] == "cpu" and result["config"]["rft"]["samples"] == 2
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A finished bench, resumed, trains nothing again and reports the same runs.
    before = (out / "runs" / "bots" / "rft" / "model" / "model.safetensors").stat().st_mtime
    start = time.monotonic()
    again = json.loads(ember(*args, "--resume").stdout)
    assert again["selectors"] == summary["selectors"]
    assert (out / "runs" / "bots" / "rft" / "model" / "model.safetensors").stat().st_mtime == before
    assert time.monotonic() - start < 60


def test_bench_refuses_an_earlier_run_without_resume_and_missing_inputs(ember, tmp_path):
    proc = ember("bench", "rft", "--tasks", TASKS, "--out", tmp_path / "b", check=False)
    assert proc.returncode == 2 and "--eval-tasks" in proc.stderr
    proc = ember("bench", "rft", "--tasks", tmp_path / "nope.jsonl", "--eval-tasks", TASKS,
                 "--out", tmp_path / "b", check=False)
    assert proc.returncode == 2 and "nope.jsonl" in proc.stderr


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="this machine has CUDA: the no-GPU path is not reachable")
def test_gpu_check_fails_clearly_without_cuda(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage: benchmarks/gpu_check.sh OUTDIR" in proc.stderr
    python = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "python")
    proc = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True,
                          text=True, env=dict(os.environ, PYTHON=python), timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing started
