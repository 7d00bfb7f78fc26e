"""`ember bench`: task selectors compared, on a simulated learner in seconds
(`ember bench selectors`) and on real GRPO with a real model (`ember bench rft`).

The options are the fields of ember.train.simulate.SimConfig and
ember.train.bench_rft.BenchRFTConfig; this module registers the commands and renders
the comparisons.
"""

from __future__ import annotations

import typer

from ember.cli.options import add_command, group
from ember.cli.render import console, training_output
from ember.train import bench_rft
from ember.train.bench_rft import BenchRFTConfig
from ember.train.simulate import SimConfig, run

app = typer.Typer(
    cls=group(),
    help=(
        "Compare task selectors: on a simulated learner, or on real GRPO.\n\n"
        "Examples:\n\n"
        "  ember bench selectors --num-tasks 2000 --steps 300 --plot selectors.png\n\n"
        "  ember bench rft --tasks train.jsonl --eval-tasks heldout.jsonl "
        "--selectors uniform,bots --steps 20"
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

HELP = """Compare task selectors on a simulated learner, in seconds.

Tasks have a latent difficulty; the policy's ability grows with every informative task
(0 < successes < K). Every selector trains the same learner from the same seed; the
table gives steps to the target held-out accuracy, the mean effective-task ratio (share
of selected tasks with 0 < pass rate < 1), the strict ratio (pass rate within 0.5 ±
0.25), and the selection overhead per step.

Examples:

  ember bench selectors

  ember bench selectors --num-tasks 5000 --steps 500 --seed 1 --plot selectors.png

  ember bench selectors --selectors uniform,bots --json
"""


def selector_table(title: str, columns: list[str]):
    """A table of one row per selector: its name, then ``columns`` (numbers, right-aligned)."""
    from rich.table import Table  # here: `ember --help` need not load it

    table = Table(title=title)
    table.add_column("selector", justify="left")
    for col in columns:
        table.add_column(col, justify="right")
    return table


def render(summary) -> None:
    result = summary.details
    cfg = result["config"]
    table = selector_table(f"selectors on the simulated learner ({cfg['num_tasks']} tasks, "
                           f"{cfg['steps']} steps, seed {cfg['seed']}; start accuracy "
                           f"{result['initial_accuracy']:.3f})",
                           [f"steps to {cfg['target']:g}", "final acc", "effective", "strict",
                            "ms/step"])
    for name, r in result["selectors"].items():
        reached = r["steps_to_target"]
        table.add_row(name, "—" if reached is None else str(reached), f"{r['final_accuracy']:.3f}",
                      f"{r['effective_ratio']:.2f}", f"{r['strict_ratio']:.2f}",
                      f"{r['overhead_ms']:.3f}")
    console.print(table)
    console.print(summary_line(result), highlight=False)
    if result.get("plot"):
        console.print(f"plot: {result['plot']}", highlight=False)


def summary_line(result: dict) -> str:
    runs = result["selectors"]
    if "bots_vs_uniform" not in result:
        best = min(runs, key=lambda n: runs[n]["steps_to_target"] or float("inf"))
        return f"fastest to target: {best} ({runs[best]['steps_to_target']} steps)"
    b, u = runs["bots"], runs["uniform"]
    ratio = result["bots_vs_uniform"]["steps_ratio"]

    def steps(r) -> str:
        return "not reached" if r["steps_to_target"] is None else f"{r['steps_to_target']} steps"

    return (f"bots: {steps(b)} to {result['config']['target']:g} accuracy vs uniform "
            f"{steps(u)}" + (f" ({ratio:.2f}x)" if ratio is not None else "") +
            f"; effective-task ratio {b['effective_ratio']:.2f} vs {u['effective_ratio']:.2f}; "
            f"overhead {b['overhead_ms']:.2f} ms/step")


add_command(app, "selectors", SimConfig, run, render, help=HELP, no_args_is_help=False)


RFT_HELP = """Compare task selectors on real GRPO: the same model, seed and budget for each.

Each selector trains with `ember train --stage rft` into OUT/runs/SELECTOR; per step the
effective-task ratio of the chosen batch (from the real rollouts), the mean reward, the
step's time and the selector's share of it; every --eval-every steps the held-out
accuracy (greedy, each task's scorer). Writes OUT/bench.json
(schemas/bench_rft.schema.json) and OUT/bench.png. RFT options (learning rate, rollouts,
tasks per step, completion length) come from --train-config, an `ember train` YAML.
A killed bench continues with --resume.

Examples:

  ember bench rft --tasks examples/data/tasks/arithmetic_train.jsonl \\
      --eval-tasks examples/data/tasks/arithmetic_heldout.jsonl \\
      --train-config examples/configs/rft_cpu_small.yaml --steps 20 --out bench-rft

  ember bench rft ... --selectors uniform,bots,sec --resume --json
"""


def run_rft(cfg: BenchRFTConfig):
    console.print(f"[bold]ember bench rft[/] {', '.join(cfg.selectors)} on {cfg.model}, "
                  f"{cfg.steps} steps each -> {cfg.out}")
    with training_output():
        return bench_rft.run(cfg)


def render_rft(summary) -> None:
    result = summary.details
    cfg = result["config"]
    table = selector_table(f"selectors on GRPO ({cfg['model']}, {cfg['steps']} steps, seed "
                           f"{cfg['seed']}, {result['heldout_items']} held-out tasks, "
                           f"{result['machine']['device']})",
                           ["effective", "mean reward", "held-out before", "after", "train s",
                            "selector share"])

    def num(x, fmt):
        return "—" if x is None else format(x, fmt)

    for name, r in result["selectors"].items():
        table.add_row(name, num(r["effective_ratio"], ".2f"), num(r["mean_reward"], ".3f"),
                      num(r["heldout_before"], ".3f"), num(r["heldout_after"], ".3f"),
                      f"{r['train_seconds']:.0f}", num(r["selector_share"], ".2%"))
    console.print(table)
    console.print(f"results: {summary.output}/bench.json, plot: {summary.output}/bench.png",
                  highlight=False)


add_command(app, "rft", BenchRFTConfig, run_rft, render_rft, help=RFT_HELP, no_args_is_help=True)
