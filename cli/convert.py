"""`ember convert`: raw agent datasets -> ADP -> training formats.

The options are the fields of ember.adp.convert.ConvertConfig; this module only registers
the command and renders its summary.
"""

from __future__ import annotations

from ember.adp.convert import ConvertConfig, run

HELP = """Convert agent datasets to ADP and ADP to training formats.

Records that cannot be converted go to a rejects file with the reason; the run goes on
and ends with a summary (read / converted / rejected by reason). Output appears under its
final name only when the run completes; a killed run continues with --resume.

Examples:

  ember convert sample_raw.json --from agenttuning_os -o os.adp.jsonl

  ember convert os.adp.jsonl --to sft-chat -o os.sft.jsonl

  ember convert data/*.jsonl.gz --from swe-smith --to sft-chat -o sft.jsonl --workers 8

  ember convert raw.jsonl --from my_mapping.yaml -o out.jsonl

  ember convert big.jsonl.zst --from nnetnav-wa -o out.jsonl --resume   # after a kill

  ember convert --list

  ember convert --list --shape react      # a shape's mapping options
"""


def render(summary) -> None:
    from rich.table import Table  # here: `--help` loads neither rich nor typer

    from ember.cli.render import console

    if summary.command == "convert --list":
        return _render_list(summary.details)
    d = summary.details
    table = Table(title="ember convert", title_justify="left")
    for col in ("input", "read", "converted", "rejected"):
        table.add_column(col, justify="left" if col == "input" else "right")
    for path, c in d["inputs"].items():
        table.add_row(path, str(c["read"]), str(c["converted"]), str(c["rejected"]))
    table.add_row("[bold]total", str(summary.read), str(d["converted"]), str(summary.rejected))
    console.print(table)
    for reason, n in summary.rejected_by_reason.items():
        console.print(f"  rejected [yellow]{reason}[/]: {n}")
    for err in d["input_errors"]:
        console.print(f"  [red]unreadable input[/] {err['error']}", highlight=False)
    console.print(f"  {d['bytes_in'] / 1e6:.1f} MB in {summary.seconds:.2f}s -> {summary.output}"
                  + (f" (rejects: {summary.rejects})" if summary.rejected or d["input_errors"]
                     else ""), highlight=False)


def _render_list(listing: dict) -> None:
    from rich.table import Table  # here: `--help` loads neither rich nor typer

    from ember.cli.render import console

    if "options" in listing:
        return _render_shape(listing)
    table = Table(title="built-in datasets (--from NAME)", title_justify="left")
    for col in ("dataset", "shape", "description"):
        table.add_column(col)
    for r in listing["datasets"]:
        table.add_row(r["dataset"], r["shape"], r["description"])
    console.print(table)
    shapes = Table(title="shapes (mapping files say `shape: NAME`)", title_justify="left")
    shapes.add_column("shape")
    shapes.add_column("what it reads")
    for name, doc in listing["shapes"].items():
        shapes.add_row(name, doc)
    console.print(shapes)
    console.print("exporters (--to): " + ", ".join(listing["exporters"]))
    console.print("a shape's options: ember convert --list --shape NAME (all: docs/mappings.md)")


def _render_shape(listing: dict) -> None:
    from rich.table import Table  # here: `--help` loads neither rich nor typer

    from ember.cli.render import console

    console.print(f"[bold]shape {listing['shape']}[/]: {listing['description']}",
                  highlight=False)
    table = Table(title="options (keys of a mapping file)", title_justify="left")
    for col in ("option", "type", "default", "help"):
        table.add_column(col, overflow="fold")
    for o in listing["options"]:
        table.add_row(o["name"], o["type"], o["default"], o["help"])
    console.print(table)


# CONFIG with HELP, run and render: `ember convert --help` and a plain command line
# are served without typer (ember.cli.main, ember.cli.argv)
CONFIG = ConvertConfig


def register(app) -> None:
    from ember.cli.options import add_command

    add_command(app, "convert", CONFIG, run, render, help=HELP)
