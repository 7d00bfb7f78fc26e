"""RFT: GRPO (TRL's GRPOTrainer) on task records, each generation batch chosen by a selector.

    ember train --model smollm2 --tasks tasks.jsonl --selector bots --reward math --out runs/rft

Reading top to bottom: load the task records (rejecting bad lines with reasons) and word
each one as `ember eval` asks it; build the selector from the tasks' columns; build the
reward functions by name; configure GRPO so that one generation batch (B tasks x G
rollouts) is exactly one optimizer step; train; save the final model to OUT/model.

How selection plugs into TRL (`SelectiveGRPOTrainer`):

- Which tasks: when TRL is about to generate, the trainer asks the selector for B task
  indices and lays them out as TRL's RepeatSampler would (each task G times in a row,
  the global list cut into consecutive per-process slices). Every process runs the same
  seeded selector on the same gathered outcomes, so all agree without communicating.
  Asking at generation time rather than inside the DataLoader's sampler matters:
  accelerate's dataloader fetches one batch ahead, so a sampler would choose batch t+1
  before the rewards of batch t were known.
- What came back: the reward calculation is extended to gather the task indices with
  the rewards (all processes), count per task the rollouts whose first reward reaches
  `success_threshold`, and `update` the selector.
- Logging: every step the selector's metrics (effective-task ratio, strict ratio,
  posterior mean, selection time) go to TRL's metrics (so to `report_to`) under
  `selection/`, and one line per step to OUT/selection.jsonl: step, the chosen task ids
  and their pass rates.
- Resume: each checkpoint holds selector_state.json (the selector's whole state, its RNG
  included); `--resume` restores it with the optimizer, so the run makes the same
  selections as one that was never interrupted, and selection.jsonl is cut back to the
  checkpoint's step.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from ember.adp.io import InputError, atomic_writer
from ember.adp.rejects import default_rejects_path, write_rejects
from ember.evaluate.tasks import read_tasks, task_item
from ember.train.checkpoints import last_checkpoint, save_final
from ember.train.config import TrainConfig

log = logging.getLogger(__name__)

SELECTOR_STATE = "selector_state.json"


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


def load_tasks(path: str, rejects: Path) -> tuple[list[dict], int]:
    """Valid task records; the others go to `rejects` with a reason. (tasks, n rejected)"""
    try:
        tasks, bad = read_tasks(path)
    except InputError as e:
        raise ValueError(str(e)) from e
    if bad:
        write_rejects(rejects, bad)
    return tasks, len(bad)


def task_rows(tasks: list[dict]) -> list[dict]:
    """Each task as a GRPO dataset row: the chat prompt `ember eval` would send, plus the
    columns the rewards read (answer, scorer, tests as JSON text) and its index."""
    rows = []
    for i, t in enumerate(tasks):
        item = task_item(t)
        tests = t.get("tests")
        rows.append({"prompt": item.messages, "answer": str(t.get("answer", "")),
                     "scorer": t.get("scorer", "math"), "task_id": str(t["id"]),
                     "tests": json.dumps(tests) if tests else "", "task_index": i})
    return rows


def make_selector(opts, tasks: list[dict], seed: int):
    """The selector named in the options, fed the per-task columns it reads."""
    from ember.train.selectors import selector_class

    cls = selector_class(opts.selector)
    kwargs = {}
    for arg in getattr(cls, "columns", ()):
        field = opts.columns.get(arg)
        if not field:
            continue
        values = [t.get(field) for t in tasks]
        if all(v is None for v in values):
            continue  # the column is optional for this selector (e.g. sec without categories)
        if any(v is None for v in values):
            missing = sum(v is None for v in values)
            raise ValueError(f"{missing} of {len(tasks)} tasks lack the field {field!r} that "
                             f"selector {opts.selector} reads as {arg}")
        kwargs[arg] = values
    return cls(len(tasks), seed=seed, **kwargs, **opts.selector_args)


def make_trainer_class():
    """SelectiveGRPOTrainer, defined lazily so importing this module doesn't import TRL."""
    import torch
    from accelerate.utils import gather_object
    from trl import GRPOTrainer

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

        # -- which tasks ------------------------------------------------------------------
        def _prepare_inputs(self, generation_batch):
            generate_every = self.args.steps_per_generation * self.num_iterations
            if self.model.training and (self._step % generate_every == 0
                                        or self._buffered_inputs is None):
                generation_batch = self._selected_batch()
            return super()._prepare_inputs(generation_batch)

        def _selected_batch(self) -> list[dict]:
            start = time.perf_counter()
            ids = self.selector.select(self.state.global_step, self.tasks_per_batch)
            self._select_ms = (time.perf_counter() - start) * 1e3
            self._chosen = ids
            layout = np.repeat(ids, self.num_generations)  # RepeatSampler: G in a row
            per = len(layout) // self.accelerator.num_processes
            mine = layout[self.accelerator.process_index * per:][:per]
            return [self.train_dataset[int(i)] for i in mine]

        # -- what came back ---------------------------------------------------------------
        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            if self.model.training:
                # gather and gather_object both concatenate in process order: rows align.
                index = np.asarray(gather_object([x["task_index"] for x in inputs]))
                first = torch.nan_to_num(rewards[:, 0], nan=0.0).float().cpu().numpy()
                self._update_selector(index, first >= self.success_threshold)
            return rewards

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
                with self.selection_log.open("a") as f:
                    f.write(json.dumps(line) + "\n")

        # -- resume -----------------------------------------------------------------------
        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            if self.args.should_save:
                folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
                with atomic_writer(folder / SELECTOR_STATE, "w") as f:
                    f.write(json.dumps(_jsonable(self.selector.state_dict())))

        def _load_optimizer_and_scheduler(self, checkpoint):
            super()._load_optimizer_and_scheduler(checkpoint)
            if checkpoint is None:
                return
            path = Path(checkpoint) / SELECTOR_STATE
            if not path.exists():
                raise ValueError(f"{checkpoint} has no {SELECTOR_STATE}: it was not written by "
                                 "ember train, so the selections cannot be resumed")
            self.selector.load_state_dict(_from_jsonable(json.loads(path.read_text())))
            step = int(Path(checkpoint).name.rsplit("-", 1)[-1])
            if self.accelerator.is_main_process and self.selection_log.exists():
                # Lines past the checkpoint came from the interrupted run; they are redone.
                kept = [line for line in self.selection_log.read_text().splitlines()
                        if line.strip() and json.loads(line)["step"] < step]
                with atomic_writer(self.selection_log, "w") as f:
                    f.writelines(line + "\n" for line in kept)

    return SelectiveGRPOTrainer


def grpo_args(cfg: TrainConfig, out: Path, num_processes: int):
    """TRL GRPOConfig for one optimizer step per generation batch of B tasks x G rollouts."""
    import torch
    from trl import GRPOConfig

    o = cfg.rft
    total = o.tasks_per_step * o.num_generations
    if total % (o.batch_size * num_processes):
        raise ValueError(f"tasks_per_step x num_generations = {total} must be a multiple of "
                         f"batch_size x processes = {o.batch_size} x {num_processes}")
    accum = total // (o.batch_size * num_processes)
    bf16 = torch.cuda.is_available() if cfg.bf16 is None else cfg.bf16
    return GRPOConfig(
        output_dir=str(out), max_steps=o.max_steps, learning_rate=o.learning_rate,
        per_device_train_batch_size=o.batch_size, gradient_accumulation_steps=accum,
        steps_per_generation=accum, num_generations=o.num_generations,
        temperature=o.temperature, max_completion_length=o.max_completion_length,
        beta=o.beta, loss_type=o.loss_type, seed=cfg.seed, data_seed=cfg.seed,
        reward_weights=[float(w) for w in o.reward_weights.split(",")] if o.reward_weights else None,
        bf16=bf16, use_cpu=not torch.cuda.is_available(),
        # Recomputing activations saves GPU memory; on a CPU it only costs time.
        gradient_checkpointing=torch.cuda.is_available(),
        use_vllm=o.use_vllm, vllm_mode=o.vllm_mode,
        vllm_server_base_url=o.vllm_server_base_url,
        vllm_gpu_memory_utilization=o.vllm_gpu_memory_utilization,
        logging_steps=cfg.logging_steps, save_steps=o.save_steps, save_strategy="steps",
        report_to=[r for r in cfg.report_to.split(",") if r and r != "none"] or "none",
        disable_tqdm=not os.isatty(2),
        remove_unused_columns=False, shuffle_dataset=False,
    )


def run_rft(cfg: TrainConfig, model_path: str, out: Path) -> Path:
    """Train with GRPO; returns the directory of the final model (OUT/model)."""
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ember.train.rewards import load_rewards

    o = cfg.rft
    if not o.tasks:
        raise ValueError("the rft stage needs --tasks TASKS.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    rejects_path = default_rejects_path(out, directory=True)
    tasks, rejected = load_tasks(o.tasks, rejects_path)
    if rejected:
        log.warning("%d task lines rejected; reasons in %s", rejected, rejects_path)
    if len(tasks) < o.tasks_per_step:
        raise ValueError(f"{len(tasks)} usable tasks in {o.tasks}, fewer than tasks_per_step "
                         f"= {o.tasks_per_step}")
    rewards = load_rewards(o.reward)
    selector = make_selector(o, tasks, cfg.seed)
    args = grpo_args(cfg, out, PartialState().num_processes)
    if args.reward_weights and len(args.reward_weights) != len(rewards):
        raise ValueError(f"{len(args.reward_weights)} reward weights for {len(rewards)} rewards")
    checkpoint = last_checkpoint(out) if cfg.resume else None
    if cfg.resume and checkpoint is None:
        log.info("no checkpoint in %s; starting RFT from the beginning", out)
    selection_log = out / "selection.jsonl"
    if checkpoint is None and selection_log.exists():
        selection_log.unlink()  # a fresh run: don't append to an old one's log

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto")
    peft_config = None
    if o.lora_r:
        from peft import LoraConfig

        peft_config = LoraConfig(r=o.lora_r, lora_alpha=o.lora_alpha, target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    trainer = make_trainer_class()(
        model=model, reward_funcs=rewards, args=args, train_dataset=Dataset.from_list(task_rows(tasks)),
        processing_class=tokenizer, peft_config=peft_config, selector=selector,
        selection_log=selection_log, success_threshold=o.success_threshold)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return save_final(trainer, out / "model")
