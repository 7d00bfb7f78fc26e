"""SelectiveGRPOTrainer: TRL's GRPOTrainer with each generation batch chosen by a selector.

    from ember.train.grpo_trainer import SelectiveGRPOTrainer
    trainer = SelectiveGRPOTrainer(model=..., reward_funcs=..., args=grpo_config,
                                   train_dataset=rows, selector=selector,
                                   selection_log="OUT/selection.jsonl")

GRPOTrainer trains on whatever its DataLoader yields. This subclass changes three things,
each by overriding one of TRL's private methods (listed with their parameters in
`TRL_OVERRIDES`; tests/train/test_grpo_trainer.py checks them against the installed TRL):

- Which tasks (`_prepare_inputs`): when TRL is about to generate, the trainer throws away
  the DataLoader's generation batch and asks the selector for B task indices instead,
  laid out as TRL's RepeatSampler would (each task G times in a row, the global list cut
  into consecutive per-process slices). Every process runs the same seeded selector on the
  same gathered outcomes, so all agree without communicating. Asking at generation time
  rather than inside the DataLoader's sampler matters: accelerate's dataloader fetches one
  batch ahead, so a sampler would choose batch t+1 before the rewards of batch t were known.
- What came back (`_calculate_rewards`): after TRL computes the rewards, the trainer
  gathers the task indices with them (all processes), counts per task the rollouts whose
  first reward reaches `success_threshold`, and `update`s the selector. Every step the
  selector's metrics (effective-task ratio, strict ratio, posterior mean, selection time)
  go to TRL's metrics (so to `report_to`) under `selection/`, and the main process appends
  one line to the selection log (OUT/selection.jsonl): step, the chosen task ids and their
  pass rates.
- Resume (`_save_checkpoint`, `_load_optimizer_and_scheduler`): each checkpoint also holds
  selector_state.json (the selector's whole state, its RNG included); resuming restores it
  together with the optimizer, so the run makes the same selections as one that was never
  interrupted, and the selection log is cut back to the checkpoint's step.

Several processes (torchrun, accelerate launch; tests/train/test_distributed.py runs two
on CPUs): every process holds its own selector, seeded alike, and they stay identical
because each updates from the same gathered outcomes; nothing about the selection is sent
between them. tasks_per_step must be a multiple of the number of processes, so that each
process generates whole groups. With EMBER_RANK_LOG=1 each process also appends, per
step, what it generated, its successes and a hash of its selector's state to
rank-N.jsonl beside the selection log, to check that contract from outside.

With `--env search` (TRL's `environment_factory`) a completion holds tool results; TRL's
tool_mask leaves them out of the loss, and `_prepare_inputs` logs how many tokens that was
(`tools/masked_tokens`; with EMBER_RANK_LOG=1 also their text, to masked-N.jsonl).

Everything else (generation, the GRPO loss, one optimizer step per generation batch as
configured in ember.train.rft.grpo_args) is TRL's own. This module imports TRL and torch
at its top; ember.train.rft imports it only when training starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer

from ember.adp.io import atomic_writer, repair_tail

SELECTOR_STATE = "selector_state.json"
# A debug log per process, next to the selection log (see the module docstring).
RANK_LOG_ENV = "EMBER_RANK_LOG"

# TRL/transformers private methods this class overrides or calls, with the parameters (in
# order) it relies on: the overrides call `super()` positionally and `_get_output_dir` by
# keyword. Checked against the installed TRL by tests/train/test_grpo_trainer.py; the
# pyproject pin (`trl>=1.16,<1.17`) covers the versions checked.
TRL_OVERRIDES: dict[str, tuple[str, ...]] = {
    "_prepare_inputs": ("self", "generation_batch"),
    "_calculate_rewards": ("self", "inputs", "prompts", "completions", "completion_ids_list"),
    "_save_checkpoint": ("self", "model", "trial"),
    "_load_optimizer_and_scheduler": ("self", "checkpoint"),
    "_get_output_dir": ("self", "trial"),
}
# Attributes of GRPOTrainer that the overrides read (set in its __init__ or training_step).
TRL_ATTRIBUTES: tuple[str, ...] = ("_step", "_buffered_inputs", "_metrics", "num_iterations",
                                   "num_generations")


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_jsonable(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"])
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


class SelectiveGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, selector, selection_log: str | os.PathLike,
                 success_threshold: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.selector = selector
        self.selection_log = Path(selection_log)
        self.success_threshold = success_threshold
        self.tasks_per_batch = self.args.generation_batch_size // self.num_generations
        self._chosen: np.ndarray | None = None
        self._select_ms = 0.0
        rank = self.accelerator.process_index
        self.rank_log = (self.selection_log.with_name(f"rank-{rank}.jsonl")
                         if os.environ.get(RANK_LOG_ENV) == "1" else None)

    # -- which tasks ----------------------------------------------------------------------
    def _prepare_inputs(self, generation_batch):
        generate_every = self.args.steps_per_generation * self.num_iterations
        if self.model.training and (self._step % generate_every == 0
                                    or self._buffered_inputs is None):
            generation_batch = self._selected_batch()
        inputs = super()._prepare_inputs(generation_batch)
        if self.model.training and inputs.get("tool_mask") is not None:
            self._count_masked(inputs)
        return inputs

    def _count_masked(self, inputs) -> None:
        """--env search: how many completion tokens of this micro-batch were the
        environment's (tool results, tool_mask 0), which TRL leaves out of the loss; logged
        as tools/masked_tokens. With EMBER_RANK_LOG=1 the text of both parts goes to
        masked-N.jsonl, to check that from outside."""
        real = inputs["completion_mask"].bool()
        tool = inputs["tool_mask"].bool()
        masked, trained = real & ~tool, real & tool
        self._metrics["train"]["tools/masked_tokens"].append(float(masked.sum()))
        if self.rank_log is not None:
            decode = self.processing_class.decode
            rows = list(zip(inputs["completion_ids"], masked, trained))
            line = {"step": self.state.global_step,
                    "masked": [decode(ids[m]) for ids, m, _ in rows],
                    "trained": [decode(ids[t]) for ids, _, t in rows]}
            with self.rank_log.with_name(f"masked-{self.accelerator.process_index}.jsonl").open("a") as f:
                f.write(json.dumps(line) + "\n")

    def _selected_batch(self) -> list[dict]:
        start = time.perf_counter()
        ids = self.selector.select(self.state.global_step, self.tasks_per_batch)
        self._select_ms = (time.perf_counter() - start) * 1e3
        self._chosen = ids
        layout = np.repeat(ids, self.num_generations)  # RepeatSampler: G in a row
        per = len(layout) // self.accelerator.num_processes
        mine = layout[self.accelerator.process_index * per:][:per]
        return [self.train_dataset[int(i)] for i in mine]

    # -- what came back -------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training:
            # gather and gather_object both concatenate in process order: rows align.
            index = np.asarray(gather_object([x["task_index"] for x in inputs]))
            first = torch.nan_to_num(rewards[:, 0], nan=0.0).float().cpu().numpy()
            success = first >= self.success_threshold
            self._update_selector(index, success)
            if self.rank_log is not None:
                # This process's rows of the gathered rewards (gather keeps process order).
                n = len(inputs)
                self._log_rank(inputs, success[self.accelerator.process_index * n:][:n])
        return rewards

    def _log_rank(self, inputs, success: np.ndarray) -> None:
        state = json.dumps(_jsonable(self.selector.state_dict()), sort_keys=True)
        line = {"step": self.state.global_step, "process": self.accelerator.process_index,
                "processes": self.accelerator.num_processes,
                "task_index": [int(x["task_index"]) for x in inputs],
                "success": [bool(v) for v in success],
                "selector_sha256": hashlib.sha256(state.encode()).hexdigest()}
        with self.rank_log.open("a") as f:  # a per-step debug log, like the selection log
            f.write(json.dumps(line) + "\n")

    def _update_selector(self, index: np.ndarray, success: np.ndarray) -> None:
        tasks, inverse = np.unique(index, return_inverse=True)
        successes = np.bincount(inverse, weights=success.astype(np.float64))
        counts = np.bincount(inverse).astype(np.float64)
        self.selector.update(tasks, successes, counts)
        metrics = self.selector.metrics()
        metrics["select_ms"] = self._select_ms
        for key, value in metrics.items():
            self._metrics["train"][f"selection/{key}"].append(float(value))
        if self.accelerator.is_main_process:
            rate = dict(zip(tasks.tolist(), (successes / counts).tolist()))
            chosen = self._chosen.tolist() if self._chosen is not None else tasks.tolist()
            line = {"step": self.state.global_step,
                    "task_ids": [self.train_dataset[i]["task_id"] for i in chosen],
                    "task_index": chosen,
                    "pass_rate": [rate.get(i) for i in chosen],
                    "metrics": {k: round(float(v), 6) for k, v in metrics.items()}}
            # One line appended per step (a log, not a finished file); on resume the
            # lines past the checkpoint are cut away with atomic_writer below.
            with self.selection_log.open("a") as f:
                f.write(json.dumps(line) + "\n")

    # -- resume ---------------------------------------------------------------------------
    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            with atomic_writer(folder / SELECTOR_STATE, "w") as f:
                f.write(json.dumps(_jsonable(self.selector.state_dict())))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None:
            if self.rank_log is not None:
                self.rank_log.unlink(missing_ok=True)  # a fresh run starts its own log
            return
        path = Path(checkpoint) / SELECTOR_STATE
        if not path.exists():
            raise ValueError(f"{checkpoint} has no {SELECTOR_STATE}: it was not written by "
                             "ember train, so the selections cannot be resumed")
        self.selector.load_state_dict(_from_jsonable(json.loads(path.read_text())))
        step = int(Path(checkpoint).name.rsplit("-", 1)[-1])
        # Lines past the checkpoint came from the interrupted run; they are redone.
        if self.accelerator.is_main_process:
            _cut_log(self.selection_log, step)
        if self.rank_log is not None:
            _cut_log(self.rank_log, step)


def _cut_log(path: Path, step: int) -> None:
    """Keep the lines of a per-step log from before `step` (a torn last line, left by a
    kill or a full disk, is dropped first)."""
    if not path.exists():
        return
    repair_tail(path)
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] < step]
    with atomic_writer(path, "w") as f:
        f.writelines(line + "\n" for line in kept)
