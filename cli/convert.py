"""`ember convert`: raw agent datasets -> ADP -> training formats (DESIGN §2)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ember.cli.render import console, fail, print_json

DEFAULT_MAX_REJECT_RATE = 0.05


def convert(
    inputs: List[str] = typer.Argument(None, metavar="INPUT...", help=(
        "Files to read: JSONL, JSON array/object, Parquet (gzip/zstd ok), a saved "
        "Hugging Face dataset directory, or hf://org/name[:split].")),
    source: str = typer.Option("adp", "--from", "-f", help=(
        "What the input is: a built-in dataset (see --list), a mapping .yaml file, a "
        "'package.module:function' taking a raw record, or 'adp' / 'atif'.")),
    target: str = typer.Option("adp", "--to", "-t", help=(
        "Output format: adp, sft-chat (OpenAI messages + tools, for `ember train --stage "
        "sft` and TRL SFTTrainer), openhands, sweagent, atif.")),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help=(
        "Output JSONL, written atomically ('-' for stdout).")),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help=(
        "Where rejected records go, with source, line and reason "
        "[default: OUT.rejects.jsonl].")),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help=(
        "Worker processes. Output is byte-identical for any value.")),
    max_reject_rate: float = typer.Option(DEFAULT_MAX_REJECT_RATE, "--max-reject-rate",
                                          min=0.0, max=1.0, help=(
        "Exit 1 when more than this fraction of records (or any whole input) is rejected.")),
    resume: bool = typer.Option(False, "--resume", help=(
        "Continue a killed run of the same command from its last checkpoint instead of "
        "starting over (output grows in .OUT.partial until the run completes).")),
    list_: bool = typer.Option(False, "--list", help="List built-in datasets and shapes, then exit."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Convert agent datasets to ADP and ADP to training formats.

    Records that cannot be converted go to a rejects file with the reason; the run goes
    on and ends with a summary (read / converted / rejected by reason). Output appears
    under its final name only when the run completes; a killed run continues with
    --resume.

    Examples:

      ember convert sample_raw.json --from agenttuning_os -o os.adp.jsonl

      ember convert os.adp.jsonl --to sft-chat -o os.sft.jsonl

      ember convert data/*.jsonl.gz --from swe-smith --to sft-chat -o sft.jsonl --workers 8

      ember convert raw.jsonl --from my_mapping.yaml -o out.jsonl

      ember convert big.jsonl.zst --from nnetnav-wa -o out.jsonl --resume   # after a kill
    """
    from ember.adp.convert import convert as run_convert

    if list_:
        _print_list(json_out)
        return
    if not inputs:
        fail("no INPUT given (try `ember convert --help`)")
    if output is None:
        fail("missing --output / -o (use '-' for stdout)")
    with Progress(TextColumn("[bold]converting"), BarColumn(), TextColumn("{task.completed} records"),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("convert", total=None)
        try:
            summary = run_convert(inputs, output, source=source, target=target, rejects=rejects,
                                  workers=workers, resume=resume,
                                  progress=lambda n: bar.advance(task, n))
        except ValueError as exc:
            fail(str(exc))
    if resume and not summary.resumed:
        console.print("[yellow]note:[/] no checkpoint of this exact command was found; "
                      "converted from the start")
    result = summary.to_dict()
    result.update(output=str(output), rejects=str(rejects or _default_rejects(output)),
                  max_reject_rate=max_reject_rate)
    too_many = summary.reject_rate > max_reject_rate or bool(summary.input_errors)
    if json_out:
        print_json(result)
    else:
        _print_summary(summary, result)
    if summary.read == 0 and not summary.input_errors:
        console.print("[yellow]warning:[/] the input held no records; wrote an empty output")
    if too_many:
        console.print(f"[bold red]error:[/] reject rate {summary.reject_rate:.2%} exceeds "
                      f"--max-reject-rate {max_reject_rate:.2%}" if not summary.input_errors else
                      "[bold red]error:[/] some inputs could not be read", highlight=False)
        raise typer.Exit(1)


def _default_rejects(output) -> str:
    from ember.adp.convert import default_rejects_path

    return default_rejects_path(output)


def _print_summary(summary, result) -> None:
    table = Table(title="ember convert", title_justify="left")
    for col in ("input", "read", "converted", "rejected"):
        table.add_column(col, justify="left" if col == "input" else "right")
    for path, c in summary.per_input.items():
        table.add_row(path, str(c["read"]), str(c["converted"]), str(c["rejected"]))
    table.add_row("[bold]total", str(summary.read), str(summary.converted), str(summary.rejected))
    console.print(table)
    for reason, n in summary.reasons.most_common():
        console.print(f"  rejected [yellow]{reason}[/]: {n}")
    for path, err in summary.input_errors:
        console.print(f"  [red]unreadable input[/] {err}", highlight=False)
    mb = summary.bytes_in / 1e6
    console.print(f"  {mb:.1f} MB in {summary.seconds:.2f}s -> {result['output']}"
                  + (f" (rejects: {result['rejects']})" if summary.rejected or summary.input_errors else ""),
                  highlight=False)


def _print_list(json_out: bool) -> None:
    import importlib

    from ember.adp.export import EXPORTERS
    from ember.adp.mapping import MAPPINGS_DIR, SHAPES, builtin_names, load_mapping

    rows = []
    for name in builtin_names():
        shape, mapping = load_mapping(MAPPINGS_DIR / f"{name}.yaml")
        rows.append({"dataset": name, "shape": shape, "description": mapping.description})
    shapes = {name: (importlib.import_module(mod).__doc__ or "").strip().splitlines()[0]
              for name, mod in SHAPES.items()}
    if json_out:
        print_json({"datasets": rows, "shapes": shapes, "exporters": list(EXPORTERS)})
        return
    table = Table(title="built-in datasets (--from NAME)", title_justify="left")
    table.add_column("dataset")
    table.add_column("shape")
    table.add_column("description")
    for r in rows:
        table.add_row(r["dataset"], r["shape"], r["description"])
    console.print(table)
    shape_table = Table(title="shapes (mapping files say `shape: NAME`)", title_justify="left")
    shape_table.add_column("shape")
    shape_table.add_column("what it reads")
    for name, doc in shapes.items():
        shape_table.add_row(name, doc)
    console.print(shape_table)
    console.print("exporters (--to): " + ", ".join(EXPORTERS))
