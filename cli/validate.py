"""`ember validate`: schema and semantic checks of ADP files.

The options are the fields of ember.adp.validate.ValidateConfig; this module only
registers the command and renders its report.
"""

from __future__ import annotations

from ember.adp.validate import ValidateConfig, run

HELP = """Check ADP trajectories against schemas/adp.schema.json and for semantic errors.

Semantic checks: every tool_call_id answered by exactly one observation, no tool result
without a call, no empty trajectories, no action whose result is missing, and more (see
`ember.adp.validate`); a repeated id is a warning. --strict adds what ADP's own data
model needs to load the file (schemas/adp-v1-strict.schema.json) and makes a repeated
id an error. Exits 1 when the share of invalid records exceeds --max-error-rate or a
file cannot be read.

Examples:

  ember validate adp.jsonl

  ember validate adp.jsonl --strict      # loadable by ADP's own tools

  ember validate data/*.jsonl --json > report.json
"""


def render(summary) -> None:
    from rich.table import Table  # here: `--help` loads neither rich nor typer

    from ember.cli.render import console

    files = summary.details["files"]
    title = "ember validate --strict" if summary.details.get("strict") else "ember validate"
    table = Table(title=title, title_justify="left")
    for col in ("file", "records", "valid", "invalid", "warnings"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for r in files:
        warnings = sum(1 for i in r["issues"] if i["severity"] == "warning")
        table.add_row(r["path"], str(r["records"]), str(r["valid"]),
                      f"[red]{r['invalid']}[/]" if r["invalid"] else "0", str(warnings))
    console.print(table)
    for r in files:
        if r["error"]:
            console.print(f"[bold red]error:[/] {r['error']}", highlight=False)
        kinds: dict = {}
        for i in r["issues"]:
            kinds[(i["severity"], i["kind"])] = kinds.get((i["severity"], i["kind"]), 0) + 1
        for (severity, kind), n in sorted(kinds.items()):
            colour = "red" if severity == "error" else "yellow"
            console.print(f"  {r['path']}: [{colour}]{severity} {kind}[/] × {n}", highlight=False)
        for i in r["issues"][:summary.details["show"]]:
            console.print(f"    line {i['line']} id={i['id']}: {i['kind']}: {i['message']}",
                          highlight=False)
    ok = summary.exit_code == 0
    console.print(("[bold green]OK[/]" if ok else "[bold red]FAILED[/]") +
                  f" {summary.produced}/{summary.read} valid")


# CONFIG with HELP, run and render: `ember validate --help` and a plain command line
# are served without typer (ember.cli.main, ember.cli.argv)
CONFIG = ValidateConfig


def register(app) -> None:
    from ember.cli.options import add_command

    add_command(app, "validate", CONFIG, run, render, help=HELP)
