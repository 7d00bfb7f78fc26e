"""RFT: GRPO (TRL's GRPOTrainer) on task records, each generation batch chosen by a selector.

    ember train --model smollm2 --tasks tasks.jsonl --selector bots --reward math --out runs/rft

Reading top to bottom: load the task records (rejecting bad lines with reasons) and word
each one as `ember eval` asks it; build the selector from the tasks' columns; build the
reward functions by name; configure GRPO so that one generation batch (B tasks x G
rollouts) is exactly one optimizer step; train; save the final model to OUT/model.

Prompts: each task's chat prompt, rendered with the model's chat template as TRL renders
it, is at most `max_prompt_length` tokens. TRL 1.16's GRPOConfig has no prompt limit (no
`max_prompt_length` field; GRPOTrainer generates from the whole rendered prompt), so the
rows are cut here, before TRL sees them: an over-long task keeps the end of its text
(with the built-in wordings: the end of the question and the answer format), cut at a
token boundary of its own tokenization, with the chat template's system and role markers
intact. The run logs how many prompts were cut.

How selection plugs into TRL: `SelectiveGRPOTrainer` (ember.train.grpo_trainer, imported
only when training starts, so that importing this module does not import TRL or torch)
asks the selector for the tasks of each generation batch when TRL is about to generate,
updates it from the gathered rewards, logs to OUT/selection.jsonl, and keeps the
selector's state in every checkpoint so that `--resume` makes the same selections as an
uninterrupted run. Its module docstring says how.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ember.adp.io import InputError
from ember.adp.rejects import default_rejects_path, write_rejects
from ember.evaluate.search import open_searcher
from ember.evaluate.search_tool import SearchEnvironment, question_prompt, use_response_template
from ember.evaluate.tasks import read_tasks, task_item
from ember.train.checkpoints import last_checkpoint, save_final
from ember.train.config import TrainConfig
from ember.train.rewards import load_rewards
from ember.train.selectors import selector_class
from ember.train.lora import lora_config

log = logging.getLogger(__name__)

ENVIRONMENTS = ("none", "search")


def load_tasks(path: str, rejects: Path) -> tuple[list[dict], int]:
    """Valid task records; the others go to `rejects` with a reason. (tasks, n rejected)"""
    try:
        tasks, bad = read_tasks(path)
    except InputError as e:
        raise ValueError(str(e)) from e
    if bad:
        write_rejects(rejects, bad)
    return tasks, len(bad)


def prompt_length(messages: list[dict], tokenizer) -> int:
    """Tokens of the chat prompt as TRL's GRPOTrainer renders it (generation prompt added)."""
    return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                             tokenize=True, return_dict=True)["input_ids"])


def fit_prompt(messages: list[dict], tokenizer, max_tokens: int) -> tuple[list[dict], bool]:
    """The chat prompt cut to at most `max_tokens` rendered tokens: the last message (the
    task's text) loses its first tokens, the rest of the chat is kept. (messages, cut?)
    ValueError when even an empty last message does not fit."""
    length = prompt_length(messages, tokenizer)
    if not max_tokens or length <= max_tokens:
        return messages, False
    text = messages[-1]["content"]
    starts = [a for a, _ in tokenizer(text, add_special_tokens=False,
                                      return_offsets_mapping=True)["offset_mapping"]]
    drop = 0
    while length > max_tokens:
        # Re-tokenizing a suffix can differ at its first token; cut more until it fits.
        drop += length - max_tokens
        if drop >= len(starts):
            empty = [*messages[:-1], {**messages[-1], "content": ""}]
            raise ValueError(f"max_prompt_length={max_tokens} leaves no room for the task's "
                             f"text: the chat around it alone is "
                             f"{prompt_length(empty, tokenizer)} tokens")
        cut = [*messages[:-1], {**messages[-1], "content": text[starts[drop]:]}]
        length = prompt_length(cut, tokenizer)
    return cut, True


def task_rows(tasks: list[dict], tokenizer=None, max_prompt_length: int = 0,
              env: str = "none", max_tool_calls: int = 3) -> tuple[list[dict], int]:
    """Each task as a GRPO dataset row: the chat prompt `ember eval` would send (cut to
    `max_prompt_length` rendered tokens when a tokenizer is given), plus the columns the
    rewards read (answer, scorer, tests as JSON text) and its index. (rows, number cut)
    With env="search" a task without its own `template` is worded for the search tool
    (evaluate/prompts/search_tool.md)."""
    rows, cut = [], 0
    for i, t in enumerate(tasks):
        if env == "search" and t.get("template") is None:
            messages = [{"role": "user", "content": question_prompt(t["prompt"], max_tool_calls)}]
        else:
            messages = task_item(t).messages
        if tokenizer is not None and max_prompt_length:
            messages, was_cut = fit_prompt(messages, tokenizer, max_prompt_length)
            cut += was_cut
        tests = t.get("tests")
        rows.append({"prompt": messages, "answer": str(t.get("answer", "")),
                     "scorer": t.get("scorer", "math"), "task_id": str(t["id"]),
                     "tests": json.dumps(tests) if tests else "", "task_index": i})
    return rows, cut


def make_selector(opts, tasks: list[dict], seed: int):
    """The selector named in the options, fed the per-task columns it reads."""
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


def grpo_args(cfg: TrainConfig, out: Path, num_processes: int):
    """TRL GRPOConfig for one optimizer step per generation batch of B tasks x G rollouts."""
    import torch
    from trl import GRPOConfig

    o = cfg.rft
    total = o.tasks_per_step * o.samples
    if total % (o.batch_size * num_processes):
        raise ValueError(f"tasks_per_step x samples = {total} must be a multiple of "
                         f"batch_size x processes = {o.batch_size} x {num_processes}")
    if o.tasks_per_step % num_processes:
        # Each process generates whole groups (its consecutive slice of the B x G layout).
        raise ValueError(f"tasks_per_step = {o.tasks_per_step} must be a multiple of the "
                         f"number of processes ({num_processes}): each process generates "
                         "whole groups of samples")
    accum = total // (o.batch_size * num_processes)
    bf16 = torch.cuda.is_available() if cfg.bf16 is None else cfg.bf16
    return GRPOConfig(
        output_dir=str(out), max_steps=o.max_steps, learning_rate=o.learning_rate,
        per_device_train_batch_size=o.batch_size, gradient_accumulation_steps=accum,
        steps_per_generation=accum, num_generations=o.samples,
        temperature=o.temperature, max_completion_length=o.max_new_tokens,
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
        # One round = the policy's tool calls, then its next turn (SearchEnvironment also
        # caps the number of calls).
        max_tool_calling_iterations=o.max_tool_calls if o.env == "search" else None,
    )


def check_env(o) -> None:
    """The --env options, checked before TRL or a model is loaded."""
    if o.env not in ENVIRONMENTS:
        raise ValueError(f"--env must be one of {', '.join(ENVIRONMENTS)}, got {o.env!r}")
    if o.env != "search" and o.search_index:
        raise ValueError("--search-index is read only with --env search")
    if o.env == "search" and not o.search_index:
        raise ValueError("--env search needs --search-index DIR|URL (`ember synth index`)")


def search_environment(o, tokenizer):
    """For --env search: a factory of SearchEnvironment over the opened index (TRL makes
    one per rollout) with the tokenizer set up to parse tool calls; None otherwise."""
    check_env(o)
    if o.env != "search":
        return None
    if not use_response_template(tokenizer):
        raise ValueError("--env search: the model's chat template is not ember's "
                         "ChatML-with-tools and its tokenizer has no response_template, so "
                         "its tool calls cannot be parsed; set tokenizer.response_template "
                         "(transformers' response parsing) in the model folder")
    searcher = open_searcher(o.search_index)
    return lambda: SearchEnvironment(searcher, max_calls=o.max_tool_calls)


def run_rft(cfg: TrainConfig, model_path: str, out: Path, callbacks: tuple = ()) -> Path:
    """Train with GRPO; returns the directory of the final model (OUT/model).
    ``callbacks``: transformers TrainerCallbacks to add (``ember bench rft`` measures with one)."""
    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    # cpu=True as TRL's use_cpu gives it: without it a CPU-only launch counts 1 process.
    args = grpo_args(cfg, out, PartialState(cpu=not torch.cuda.is_available()).num_processes)
    if args.reward_weights and len(args.reward_weights) != len(rewards):
        raise ValueError(f"{len(args.reward_weights)} reward weights for {len(rewards)} rewards")
    checkpoint = last_checkpoint(out) if cfg.resume else None
    if cfg.resume and checkpoint is None:
        log.info("no checkpoint in %s; starting RFT from the beginning", out)
    selection_log = out / "selection.jsonl"
    if checkpoint is None and selection_log.exists():
        # A fresh run: don't append to an old one's log (every rank tries; one wins).
        selection_log.unlink(missing_ok=True)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    environment = search_environment(o, tokenizer)
    rows, cut = task_rows(tasks, tokenizer, o.max_prompt_length, o.env, o.max_tool_calls)
    if cut:
        log.warning("%d task prompts longer than max_prompt_length=%d tokens were cut to "
                    "their last tokens", cut, o.max_prompt_length)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto")
    from ember.train.grpo_trainer import SelectiveGRPOTrainer  # imports TRL: only once needed

    trainer = SelectiveGRPOTrainer(
        model=model, reward_funcs=rewards, args=args, train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer, peft_config=lora_config(o), selector=selector,
        selection_log=selection_log, success_threshold=o.success_threshold,
        callbacks=list(callbacks) or None, environment_factory=environment)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return save_final(trainer, out / "model")
