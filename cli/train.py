"""`ember train`: SFT and GRPO-based RFT with online task selection.

Every option is a field of the dataclasses in train/config.py (TrainConfig, SFTOptions,
RFTOptions); this module registers the command, keeps TRL's chatter off stdout, and
renders the summary.
"""

from __future__ import annotations

from ember.cli.options import add_command
from ember.cli.render import console, training_output
from ember.train import stages
from ember.train.config import TrainConfig

HELP = """Fine-tune a model: SFT on sft-chat data, then RFT (GRPO) on tasks whose batches a
selector chooses online.

Examples:

  ember train --stage sft --model smollm2 --data sft.jsonl --out runs/sft

  ember train --model smollm2 --tasks tasks.jsonl --selector bots --reward math --out runs/rft

  ember train --stage sft,rft --data sft.jsonl --tasks tasks.jsonl --out runs/both

  ember train --config examples/configs/rft_bots.yaml --rft-max-steps 20

  accelerate launch --config_file examples/accelerate/zero3.yaml -m ember.cli.main train --config examples/configs/rft_gpu.yaml

The final model lands in OUT/STAGE/model (`ember eval --model OUT/rft/model`); RFT logs
each step's chosen tasks and pass rates to OUT/rft/selection.jsonl.
"""


def run(cfg: TrainConfig):
    console.print(f"[bold]ember train[/] stages {cfg.stage} on {cfg.model} -> {cfg.out}")
    with training_output():
        return stages.run(cfg)


def render(summary) -> None:
    for stage, path in summary.details["stages"].items():
        console.print(f"{stage}: model in {path}")
    r = summary.details.get("rft")
    if r:
        console.print(f"rft: {r['steps']} steps, effective-task ratio {r['effective_ratio']:.2f}, "
                      f"mean pass rate {r['mean_pass_rate']:.2f}, selection "
                      f"{r['select_ms']:.2f} ms/step")


def register(app) -> None:
    add_command(app, "train", TrainConfig, run, render, help=HELP)
