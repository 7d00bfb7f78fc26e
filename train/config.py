"""The configuration of `ember train`: three dataclasses, the single source of every option.

    ember train --config examples/configs/rft_bots.yaml --rft-max-steps 20

A YAML file sets values (top-level keys, plus `sft:` and `rft:` sections); command-line
flags override it; `ember train --help` lists every field below with its default. Every
field of `SFTOptions` is the flag `--sft-NAME` and every field of `RFTOptions` the flag
`--rft-NAME` (`--sft-max-steps`, `--rft-learning-rate`), except the few that name a
stage's inputs and so have one plain flag of their own: `--data`, `--tasks`,
`--selector`, `--selector-arg`, `--selector-column`, `--reward`, `--reward-weights`,
`--success-threshold`, `--env`, `--search-index`. Adding a field to one section never renames another's flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ember.adp import config as _config
from ember.adp.config import opt, section


@dataclass
class SFTOptions:
    """Supervised fine-tuning on `sft-chat` records (TRL SFTTrainer)."""

    data: str | None = opt(None, flag="--data", help="sft-chat JSONL (`ember convert --to sft-chat`): {messages, tools}")
    max_steps: int = opt(-1, "optimizer steps; -1 = run `epochs` epochs")
    epochs: float = opt(1.0, "passes over the data when max_steps is -1")
    learning_rate: float = opt(2e-5, "peak learning rate (1e-4 is typical with LoRA)")
    batch_size: int = opt(4, "sequences per device per micro-step")
    grad_accum: int = opt(1, "micro-steps per optimizer step")
    max_length: int = opt(2048, "tokens per sequence; longer ones are truncated")
    assistant_only_loss: bool = opt(True, "train on assistant turns only (tool results, user "
                                          "and system text get no loss)")
    packing: bool = opt(False, "pack sequences into max_length blocks (BFD)")
    lora_r: int = opt(0, "LoRA rank; 0 = full fine-tuning")
    lora_alpha: int = opt(32, "LoRA alpha")
    lora_dropout: float = opt(0.05, "LoRA dropout")
    eval_fraction: float = opt(0.0, "share of records held out for eval loss (0 = none)")
    save_steps: int = opt(200, "checkpoint every N steps (--resume continues from the last)")


@dataclass
class RFTOptions:
    """Reinforcement fine-tuning with GRPO on task records, batches chosen by a selector."""

    tasks: str | None = opt(None, flag="--tasks", help="Task records, JSONL (schemas/task.schema.json: id, prompt, answer, "
                                  "optional scorer, category, pass-rate columns)")
    selector: str = opt("uniform", flag="--selector", help="uniform, sequential, offline-easy2hard, bots, sec, greso, "
                                   "or a dotted path to a selector class")
    selector_args: dict = opt({}, flag="--selector-arg", help="selector hyper-parameters, e.g. {lam: 0.1, rho: 0.1} "
                                  "(CLI: --selector-arg lam=0.1)")
    columns: dict = opt({"categories": "category"}, flag="--selector-column",
                        help="selector input <- task field, e.g. {ref_weak: p_base, ref_strong: "
                        "p_big} for bots (CLI: --selector-column ref_weak=p_base)")
    reward: str = opt("math", flag="--reward", help="comma-separated rewards: math, qa, code, auto (each task's "
                              "own scorer), format, or dotted "
                              "paths; the first decides success for the selector")
    reward_weights: str | None = opt(None, flag="--reward-weights", help="comma-separated weights, one per reward")
    success_threshold: float = opt(0.5, flag="--success-threshold", help="a rollout succeeds when the first reward >= this")
    env: str = opt("none", flag="--env", help="environment of the rollouts: none (one completion "
                   "per task) or search (multi-turn: the policy calls a search tool over "
                   "--search-index; results come back as tool messages, masked from the loss)")
    search_index: str | None = opt(None, flag="--search-index", help="Search index for --env search: an "
                                   "`ember synth index` directory or http://HOST:PORT of a "
                                   "/retrieve server")
    max_tool_calls: int = opt(3, "--env search: searches per rollout at most (more get an error "
                                 "text back); the rollout's whole text, tool results included, "
                                 "stays within max_new_tokens", min=1)
    max_steps: int = opt(100, "optimizer steps (one generation batch each)")
    tasks_per_step: int = opt(8, "Tasks per step (B): distinct tasks in each generation batch")
    samples: int = opt(8, "Samples per prompt: rollouts per task, the GRPO group (G)", min=1)
    batch_size: int = opt(8, "completions per device per micro-step; B*G must be a "
                             "multiple of batch_size x processes")
    learning_rate: float = opt(1e-6, "peak learning rate")
    temperature: float = opt(1.0, "sampling temperature of the rollouts")
    max_prompt_length: int = opt(512, "prompt tokens at most, chat template included: a longer "
                                       "task keeps the end of its text, cut at a token, and "
                                       "the run logs how many were cut; 0 = no limit")
    max_new_tokens: int = opt(256, "Cap on generated tokens per rollout", min=1)
    beta: float = opt(0.0, "KL coefficient (0 = no reference model, TRL's default)")
    loss_type: str = opt("dapo", "TRL GRPO loss: grpo, dapo, dr_grpo, bnpo")
    use_vllm: bool = opt(False, "generate with vLLM (GPU; pip install 'ember[gpu]')")
    vllm_mode: str = opt("colocate", "colocate (in the training process) or server "
                                     "(`trl vllm-serve` at vllm_server_base_url)")
    vllm_server_base_url: str | None = opt(None, "vLLM server URL for vllm_mode=server")
    vllm_gpu_memory_utilization: float = opt(0.3, "GPU memory share vLLM takes when colocated")
    lora_r: int = opt(0, "LoRA rank; 0 = full fine-tuning")
    lora_alpha: int = opt(32, "LoRA alpha")
    lora_dropout: float = opt(0.0, "LoRA dropout")
    save_steps: int = opt(50, "checkpoint (with the selector's state) every N steps")


@dataclass
class TrainConfig:
    """`ember train`: which stages, on which model, into which directory."""

    stage: str = opt("rft", "sft, rft, or sft,rft (SFT, then RFT from its result)")
    model: str = opt("smollm2", "Model to start from: smollm2 (embedded), a local model "
                                "directory, or a hub id", short="-m")
    out: str = opt("train-out", short="-o", help="Output directory: OUT/sft and OUT/rft, each with "
                                "checkpoint-N/ and the final model/")
    seed: int = opt(0, "Seed of sampling and every random choice: data order, selector, "
                       "rollouts")
    resume: bool = opt(False, "Continue a killed run: each stage from its last checkpoint in OUT")
    bf16: bool | None = opt(None, "bf16 weights and compute; default: on when CUDA is there")
    report_to: str = opt("none", "loggers for TRL metrics: none, tensorboard, wandb, trackio "
                                 "(comma-separated)")
    logging_steps: int = opt(1, "log metrics every N steps")
    sft: SFTOptions = section(SFTOptions, prefix="sft-", help="SFT stage")
    rft: RFTOptions = section(RFTOptions, prefix="rft-", help="RFT stage")

    @property
    def stages(self) -> list[str]:
        stages = [s.strip() for s in self.stage.split(",") if s.strip()]
        bad = [s for s in stages if s not in ("sft", "rft")]
        if bad or not stages or stages not in (["sft"], ["rft"], ["sft", "rft"]):
            raise ValueError(f"--stage must be sft, rft or sft,rft; got {self.stage!r}")
        return stages


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """The config from a YAML file (or defaults), then ``overrides`` on top
    ({"rft.max_steps": 4} or {"seed": 1})."""
    return _config.load_config(TrainConfig, path, overrides)


to_dict = _config.to_dict
