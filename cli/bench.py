"""`ember bench`: quick built-in benchmarks; `ember bench selectors` compares task selectors
on the simulated learner.

The options are the fields of ember.train.simulate.SimConfig; this module registers the
command and renders the comparison.
"""

from __future__ import annotations

import typer

from ember.cli.options import add_command
from ember.cli.render import console
from ember.train.simulate import SimConfig, run

app = typer.Typer(
    help=(
        "Quick benchmarks that need no model.\n\n"
        "Example:\n\n"
        "  ember bench selectors --num-tasks 2000 --steps 300 --plot selectors.png"
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


def render(summary) -> None:
    from rich.table import Table  # here: `ember --help` need not load it

    result = summary.details
    cfg = result["config"]
    table = Table(title=f"selectors on the simulated learner ({cfg['num_tasks']} tasks, "
                        f"{cfg['steps']} steps, seed {cfg['seed']}; start accuracy "
                        f"{result['initial_accuracy']:.3f})")
    for col in ("selector", f"steps to {cfg['target']:g}", "final acc", "effective", "strict",
                "ms/step"):
        table.add_column(col, justify="left" if col == "selector" else "right")
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
