"""`ember bench rft`: task selectors compared on real GRPO, from the same model, seed and budget.

    ember bench rft --model smollm2 --tasks examples/data/tasks/arithmetic_train.jsonl \\
        --eval-tasks examples/data/tasks/arithmetic_heldout.jsonl \\
        --selectors uniform,bots --steps 20 --eval-every 5 \\
        --train-config examples/configs/rft_cpu_small.yaml --out bench-rft

Reading top to bottom: for each selector, run `ember train --stage rft` (the same code
path, `ember.train.stages.run_train`) into OUT/runs/SELECTOR with the same model, seed,
steps, tasks per step and rollouts; the only difference between runs is `--selector`. A
TrainerCallback records, as training goes:

- per step: the effective-task ratio of the chosen batch (share of its tasks whose real
  rollouts were neither all right nor all wrong, from OUT/runs/S/rft/selection.jsonl),
  the mean reward, the step's wall time and the selector's share of it (select + update);
- every `--eval-every` steps (and before the first): held-out accuracy, greedy decoding
  of the live policy on the `--eval-tasks`, each judged by its task's scorer (the scorer
  `ember eval` uses).

It writes OUT/bench.json (checked against schemas/bench_rft.schema.json; it records the
machine and the library versions) and OUT/bench.png (effective ratio and reward per step,
held-out accuracy per step and per second of training; one line per selector).

Resumable: a selector whose run finished is not run again, and a killed one continues
from its last checkpoint (`--rft-save-steps` in the train config) with the same
selections, its per-step records cut back to that checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from pathlib import Path

from ember.adp.config import load_config as _load_config
from ember.adp.config import opt
from ember.adp.io import atomic_writer, output_lock, repair_tail
from ember.adp.summary import Summary
from ember.evaluate.scoring import get_scorer
from ember.evaluate.tasks import task_item
from ember.llm.backends import HFBackend, SamplingParams
from ember.llm.models import resolve_model
from ember.train.config import TrainConfig
from ember.train.rft import load_tasks
from ember.train.stages import run_train

log = logging.getLogger(__name__)

SCHEMA = "bench_rft"


@dataclasses.dataclass
class BenchRFTConfig:
    """`ember bench rft`: which selectors race, on which model, tasks and budget."""

    tasks: str | None = opt(None, flag="--tasks", help="Task records, JSONL (schemas/task.schema.json): what GRPO trains on")
    eval_tasks: str | None = opt(None, "Held-out task records, scored greedily every --eval-every steps")
    model: str = opt("smollm2", "Model to start from: smollm2 (embedded), a local model "
                                "directory, or a hub id", short="-m")
    selectors: list[str] = opt(["uniform", "bots"], "Selectors to run, each from the same start "
                                                    "(built-in names or dotted paths)")
    steps: int = opt(20, "Training steps per selector (GRPO optimizer steps)", min=1)
    eval_every: int = opt(5, "Held-out evaluation every N steps (and before the first)", min=1)
    train_config: str | None = opt(None, "An `ember train` YAML whose rft: options (learning "
                                         "rate, rollouts, tasks per step, ...) every run uses")
    out: str = opt("bench-rft", short="-o", help="Output directory: bench.json, bench.png, runs/SELECTOR/")
    seed: int = opt(0, "Seed of sampling and every random choice: data order, selector, "
                       "rollouts")
    resume: bool = opt(False, "Continue a killed run: finished selectors are kept, the "
                              "one in progress continues from its last checkpoint")
    eval_batch_size: int = opt(16, "Held-out prompts generated together", min=1)


# --- measuring a run ---------------------------------------------------------------------


def heldout_items(path: str, rejects: Path) -> list:
    tasks, _ = load_tasks(path, rejects)
    if not tasks:
        raise ValueError(f"--eval-tasks {path}: no usable task records")
    return [(task_item(t), get_scorer(t.get("scorer", "math"))) for t in tasks]


def greedy_accuracy(model, tokenizer, items: list, max_new_tokens: int, batch_size: int) -> float:
    """Mean score of greedy answers of ``model`` (as it is now) on the held-out items,
    generated as `ember eval --backend hf` generates them."""
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    try:
        backend = HFBackend.for_model(model, tokenizer, batch_size=batch_size)
        results = backend.generate([item.messages for item, _ in items],
                                   SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
    finally:  # the trainer's model and tokenizer, as they were
        tokenizer.padding_side = side
        model.train(was_training)
    return sum(float(score(done[0].text, item)["score"])
               for (item, score), done in zip(items, results)) / len(items)


def _recorder(run_dir: Path, items: list, cfg: BenchRFTConfig, max_new_tokens: int):
    """A TrainerCallback writing steps.jsonl (reward, step time) and heldout.jsonl."""
    from transformers import TrainerCallback

    steps_log, heldout_log = run_dir / "steps.jsonl", run_dir / "heldout.jsonl"

    class Recorder(TrainerCallback):
        def _heldout(self, state, model, tokenizer):
            if not state.is_world_process_zero:
                return
            start = time.perf_counter()
            acc = greedy_accuracy(model, tokenizer, items, max_new_tokens, cfg.eval_batch_size)
            _append(heldout_log, {"step": state.global_step, "accuracy": acc,
                                  "eval_seconds": time.perf_counter() - start})

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kw):
            # On resume the records past the checkpoint are from steps that will be redone.
            for path in (steps_log, heldout_log):
                _cut(path, state.global_step)
            if state.global_step == 0:
                self._heldout(state, model, processing_class)

        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and logs and "reward" in logs:
                _append(steps_log, {"step": state.global_step, "reward": logs["reward"],
                                    "step_time": logs.get("step_time")})

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kw):
            step = state.global_step
            if step % cfg.eval_every == 0 or step == state.max_steps:
                self._heldout(state, model, processing_class)

    return Recorder()


def _append(path: Path, row: dict) -> None:
    with path.open("a") as f:  # a per-step log: each line is whole or cut away on resume
        f.write(json.dumps(row) + "\n")


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    repair_tail(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cut(path: Path, step: int) -> None:
    rows = [r for r in _rows(path) if r["step"] <= step]
    with atomic_writer(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


# --- the race ----------------------------------------------------------------------------


def train_config(cfg: BenchRFTConfig, selector: str, run_dir: Path) -> TrainConfig:
    base = _load_config(TrainConfig, cfg.train_config)
    rft = dataclasses.replace(base.rft, tasks=cfg.tasks, selector=selector, max_steps=cfg.steps)
    return dataclasses.replace(base, stage="rft", model=cfg.model, out=str(run_dir),
                               seed=cfg.seed, resume=True, rft=rft)


def run_one(cfg: BenchRFTConfig, selector: str, items: list, out: Path) -> dict:
    """Train with one selector (or pick up its finished run); its per-step records."""
    run_dir = out / "runs" / selector.replace(":", "_").replace("/", "_")
    run_dir.mkdir(parents=True, exist_ok=True)
    tcfg = train_config(cfg, selector, run_dir)
    done = run_dir / "rft" / "model"
    if not done.exists():
        if not cfg.resume and (run_dir / "rft").exists():
            raise ValueError(f"{run_dir} holds an earlier run: pass --resume to continue the "
                             "bench, or choose another --out")
        start = time.perf_counter()
        run_train(tcfg, rft_callbacks=(_recorder(run_dir, items, cfg, tcfg.rft.max_new_tokens),))
        log.info("%s: %d steps in %.0f s", selector, cfg.steps, time.perf_counter() - start)
    return collect(run_dir)


def collect(run_dir: Path) -> dict:
    """One selector's figures from its run folder: steps, held-out curve, totals."""
    selection = {r["step"]: r for r in _rows(run_dir / "rft" / "selection.jsonl")}
    wall, steps = 0.0, []
    for r in _rows(run_dir / "steps.jsonl"):
        sel = selection.get(r["step"] - 1, {}).get("metrics", {})  # selection logs 0-based
        seconds = float(r["step_time"] or 0.0)
        wall += seconds
        steps.append({"step": r["step"], "reward": r["reward"], "step_seconds": seconds,
                      "wall_seconds": wall,
                      "effective_ratio": sel.get("effective_ratio"),
                      "pass_rate": sel.get("pass_rate"),
                      "selector_ms": sel.get("select_ms", 0.0) + sel.get("update_ms", 0.0)})
    walls = {0: 0.0, **{s["step"]: s["wall_seconds"] for s in steps}}
    heldout = [{"step": h["step"], "accuracy": h["accuracy"], "wall_seconds": walls.get(h["step"])}
               for h in _rows(run_dir / "heldout.jsonl")]
    ratios = [s["effective_ratio"] for s in steps if s["effective_ratio"] is not None]
    train_s = sum(s["step_seconds"] for s in steps)
    return {
        "steps": steps, "heldout": heldout,
        "effective_ratio": sum(ratios) / len(ratios) if ratios else None,
        "mean_reward": sum(s["reward"] for s in steps) / len(steps) if steps else None,
        "heldout_before": heldout[0]["accuracy"] if heldout else None,
        "heldout_after": heldout[-1]["accuracy"] if heldout else None,
        "train_seconds": train_s,
        "selector_share": (sum(s["selector_ms"] for s in steps) / 1e3 / train_s) if train_s else None,
    }


def machine() -> dict:
    import os

    import torch
    import transformers
    import trl

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "torch": torch.__version__,
            "transformers": transformers.__version__, "trl": trl.__version__,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    return info


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [(axes[0, 0], "steps", "step", "effective_ratio", "effective-task ratio"),
              (axes[0, 1], "steps", "step", "reward", "mean reward"),
              (axes[1, 0], "heldout", "step", "accuracy", "held-out accuracy"),
              (axes[1, 1], "heldout", "wall_seconds", "accuracy", "held-out accuracy")]
    for ax, key, x, y, label in panels:
        for name, run in result["selectors"].items():
            rows = [r for r in run[key] if r.get(x) is not None and r.get(y) is not None]
            ax.plot([r[x] for r in rows], [r[y] for r in rows], marker="o", ms=3, label=name)
        ax.set_xlabel("training seconds" if x == "wall_seconds" else "step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0, 0].legend()
    cfg = result["config"]
    fig.suptitle(f"ember bench rft: {cfg['model']}, {cfg['steps']} steps, seed {cfg['seed']} "
                 f"({result['machine']['device']})")
    fig.tight_layout()
    with atomic_writer(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def check_schema(result: dict) -> None:
    import jsonschema

    from ember.schemas import load_schema

    jsonschema.validate(result, load_schema(SCHEMA))


def run(cfg: BenchRFTConfig) -> Summary:
    """Run every selector, write OUT/bench.json and OUT/bench.png; the summary is bench.json."""
    start = time.perf_counter()
    if not cfg.tasks or not cfg.eval_tasks:
        raise ValueError("ember bench rft needs --tasks TRAIN.jsonl and --eval-tasks HELDOUT.jsonl")
    for flag, path in (("--tasks", cfg.tasks), ("--eval-tasks", cfg.eval_tasks)):
        if not Path(path).exists():
            raise ValueError(f"{flag} {path}: no such file or directory")
    if len(set(cfg.selectors)) != len(cfg.selectors) or not cfg.selectors:
        raise ValueError(f"--selectors must name each selector once, got {cfg.selectors}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out, directory=True):
        items = heldout_items(cfg.eval_tasks, out / "eval-tasks.rejects.jsonl")
        resolve_model(cfg.model)  # a bad --model fails before the first run starts
        runs = {name: run_one(cfg, name, items, out) for name in cfg.selectors}
        tcfg = train_config(cfg, cfg.selectors[0], out)
        result = {
            "schema": SCHEMA, "version": 1,
            "config": {**dataclasses.asdict(cfg),
                       "rft": {k: v for k, v in dataclasses.asdict(tcfg.rft).items()
                               if k not in ("tasks", "selector", "max_steps")}},
            "machine": machine(), "heldout_items": len(items), "selectors": runs,
            "seconds": time.perf_counter() - start,
        }
        check_schema(result)
        with atomic_writer(out / "bench.json", "w") as f:
            json.dump(result, f, indent=1)
        plot(result, out / "bench.png")
    details = {k: v for k, v in result.items() if k != "seconds"}  # Summary has its own
    return Summary("bench rft", read=len(cfg.selectors), produced=len(runs), output=str(out),
                   seconds=result["seconds"], details=details)
