"""`ember train` top to bottom: resolve the model, run SFT and/or RFT, each from the last.

    ember train --stage sft,rft --model smollm2 --data sft.jsonl --tasks tasks.jsonl \\
        --selector bots --out runs/demo

Layout of OUT: `config.yaml` (the resolved configuration), then per stage a folder
(`sft/`, `rft/`) with TRL's `checkpoint-N/` folders, `logs/`, and the final `model/`
(LoRA merged in; what `ember eval --model OUT/rft/model` reads). RFT adds
`selection.jsonl`. A stage whose `model/` exists is done: with `--resume` it is skipped,
and a stage in progress continues from its last checkpoint. Without `--resume`, a stage
folder that already holds checkpoints is an error rather than silently overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import yaml

from ember.adp.io import InputError, atomic_writer, check_input, output_lock
from ember.adp.summary import Summary
from ember.llm.models import resolve_model
from ember.train.checkpoints import last_checkpoint
from ember.train.config import TrainConfig, to_dict
from ember.train.rft import check_env, run_rft
from ember.train.sft import run_sft

log = logging.getLogger(__name__)


def check_inputs(cfg: TrainConfig) -> None:
    """Fail in a second on missing inputs, not after loading TRL and the model."""
    needs = {"sft": ("data", cfg.sft.data, "SFT.jsonl (ember convert --to sft-chat)"),
             "rft": ("tasks", cfg.rft.tasks, "TASKS.jsonl (schemas/task.schema.json)")}
    for stage in cfg.stages:
        flag, value, what = needs[stage]
        if not value:
            raise ValueError(f"the {stage} stage needs --{flag} {what}")
        try:
            check_input(value)  # local files in microseconds; a hub name: one request
        except InputError as e:
            raise ValueError(f"--{flag} {e}") from e
    if "rft" in cfg.stages:
        check_env(cfg.rft)


def check_processes(cfg: TrainConfig) -> None:
    """Under a multi-process launch (torchrun, accelerate launch set WORLD_SIZE and RANK),
    refuse a tasks_per_step that does not split into whole groups per process, before any
    process loads a model. Every process finds the same error; the first reports it and
    the others exit with the same status quietly, so the message is shown once."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "rft" not in cfg.stages or cfg.rft.tasks_per_step % world == 0:
        return
    if int(os.environ.get("RANK", "0")) != 0:
        # Give the first process time to print the error: the launcher stops every process
        # as soon as one exits, and an early silent exit here would cut its message off.
        time.sleep(20)
        raise SystemExit(2)
    raise ValueError(f"--rft-tasks-per-step {cfg.rft.tasks_per_step} must be a multiple of "
                     f"the number of processes ({world}): each process generates whole "
                     "groups of --rft-samples")


def run_train(cfg: TrainConfig, rft_callbacks: tuple = ()) -> dict:
    """Run the configured stages; returns {stage: final model directory}.
    ``rft_callbacks`` are TrainerCallbacks added to the RFT trainer."""
    stages = cfg.stages
    check_inputs(cfg)
    check_processes(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out / "config.yaml", "w") as f:
        f.write(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    model = resolve_model(cfg.model)
    results = {}
    for stage in stages:
        stage_dir = out / stage
        final = stage_dir / "model"
        if cfg.resume and final.exists():
            log.info("%s already finished (%s); skipping", stage, final)
        else:
            if not cfg.resume and last_checkpoint(stage_dir) is not None:
                raise ValueError(f"{stage_dir} already holds checkpoints: pass --resume to "
                                 "continue that run, or choose another --out")
            final = run_sft(cfg, model, stage_dir) if stage == "sft" else \
                run_rft(cfg, model, stage_dir, rft_callbacks)
        results[stage] = str(final)
        model = str(final)  # the next stage starts from this one's result
    return results


def selection_summary(path: Path) -> dict | None:
    """Means over the steps logged in selection.jsonl (None when nothing was logged)."""
    import json

    if not path.exists():
        return None
    steps = [json.loads(line)["metrics"] for line in path.open() if line.strip()]
    if not steps:
        return None

    def mean(key: str) -> float:
        return sum(s.get(key, 0.0) for s in steps) / len(steps)

    return {"steps": len(steps), "effective_ratio": mean("effective_ratio"),
            "mean_pass_rate": mean("pass_rate"), "select_ms": mean("select_ms")}


def run(cfg: TrainConfig) -> Summary:
    """`ember train`: the stages in order; the summary names each final model."""
    start = time.perf_counter()
    cfg.stages  # a bad --stage is an error before anything loads
    # One run per output directory; under a multi-process launch only the first process
    # holds the lock (the others are the same run).
    first = int(os.environ.get("RANK", "0")) == 0
    with output_lock(cfg.out, directory=True) if first else contextlib.nullcontext():
        models = run_train(cfg)
    details = {"stages": models}
    if "rft" in models:
        details["rft"] = selection_summary(Path(cfg.out) / "rft" / "selection.jsonl")
    return Summary("train", read=len(models), produced=len(models), output=cfg.out,
                   seconds=time.perf_counter() - start, details=details)
