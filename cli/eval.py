"""`ember eval`: benchmarks, rescoring, comparing runs, pass rates for training.

The options are the fields of EvalConfig (ember.evaluate.runner), RescoreConfig,
CompareConfig (ember.evaluate.report) and PassRateConfig (ember.evaluate.pass_rate); this
module only registers the commands and renders their summaries.
"""

from __future__ import annotations

import typer

from ember.cli.options import add_command, command_function, group
from ember.cli.render import console
from ember.evaluate.pass_rate import PassRateConfig, pass_rates
from ember.evaluate.report import CompareConfig, results_table, run_compare
from ember.evaluate.runner import EvalConfig, RescoreConfig, run, run_rescore

HELP = """Measure a model on benchmarks: writes OUT/results.json and OUT/samples.jsonl.

A killed run, started again with the same --out, skips the items already in
samples.jsonl; other settings in the same directory are refused.

Examples:

  ember eval --model smollm2 --benchmarks gsm8k-boxed,mawps --limit 20 --out runs/base

  ember eval --backend openai --base-url http://127.0.0.1:8000/v1 --model m --benchmarks math500

  ember eval --model smollm2 --benchmarks hotpotqa-search --limit 10 --out runs/search

  ember eval rescore runs/base

  ember eval compare runs/base runs/sft --plot sft_vs_base.png

  ember eval pass-rate --model smollm2 --tasks tasks.jsonl --samples 8 --column p_base -o tasks.rated.jsonl
"""

app = typer.Typer(cls=group(EvalConfig), help=HELP, invoke_without_command=True,
                  no_args_is_help=True, rich_markup_mode="markdown")


def render_results(summary) -> None:
    console.print(results_table(summary.details, title=summary.command.replace(" ", "-")
                                if summary.command != "eval" else "ember eval"))
    if summary.command == "eval":
        console.print(f"  results: {summary.output}   samples: {summary.details['samples_file']}",
                      highlight=False)
    if summary.details.get("lm_eval_results"):  # the same run in lm-eval's layout
        console.print(f"  lm-eval layout: {summary.details['lm_eval_results']} (under the run "
                      "directory)", highlight=False)


def render_compare(summary) -> None:
    from rich.table import Table  # here: `ember --help` need not load it

    d = summary.details
    table = Table(title=f"{d['b']} − {d['a']} ({d['metric']})", title_justify="left")
    for col in ("benchmark", "items", "A", "B", "B − A", "95% CI"):
        table.add_column(col, justify="left" if col == "benchmark" else "right")
    for r in d["benchmarks"]:
        colour = ("green" if r["significant"] and r["diff"] > 0 else
                  "red" if r["significant"] else "white")
        table.add_row(r["benchmark"], str(r["items"]), f"{r['a']:.4f}", f"{r['b']:.4f}",
                      f"[{colour}]{r['diff']:+.4f}[/]",
                      f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]")
    console.print(table)
    if summary.output:
        console.print(f"  plot: {summary.output}", highlight=False)


def render_pass_rate(summary) -> None:
    d = summary.details
    console.print(f"rated {summary.produced} tasks ({d['resumed']} from an earlier run), "
                  f"mean {d['column']} = {d['mean']}, all correct {d['all_correct']}, "
                  f"all wrong {d['all_wrong']}, rejected {summary.rejected} -> "
                  f"{summary.output}", highlight=False)


app.callback()(command_function(EvalConfig, run, render_results, "eval", context=True))
add_command(app, "rescore", RescoreConfig, run_rescore, render_results, help="""Score saved
samples again (e.g. after fixing an extractor) without the model.

Example:

  ember eval rescore runs/base
""")
add_command(app, "compare", CompareConfig, run_compare, render_compare, help="""Per-benchmark
difference B - A with paired-bootstrap 95% confidence intervals, and a PNG.

Example:

  ember eval compare runs/base runs/sft --plot sft_vs_base.png
""")
add_command(app, "pass-rate", PassRateConfig, pass_rates, render_pass_rate, help="""Add each
task's pass rate over --samples samples as a column (for bots / offline-easy2hard).

Rerunning the same command after a kill skips tasks already rated.

Example:

  ember eval pass-rate --model smollm2 --tasks tasks.jsonl --samples 8 --column p_base -o rated.jsonl
""")
