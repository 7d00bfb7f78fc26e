"""The `ember` command: one typer app, one module per subcommand.

    ember convert raw.json --from agenttuning_os -o adp.jsonl
    ember validate adp.jsonl
    ember convert adp.jsonl --to sft-chat -o sft.jsonl
    ember eval --model smollm2 --benchmarks gsm8k,mawps --limit 20

Every command is built the same way (ember.cli.options): a config dataclass of the
library, its `run(cfg)`, and a renderer here.
"""

from __future__ import annotations

import typer

from ember.cli import bench, convert, synth, train, validate
from ember.cli import eval as eval_command

app = typer.Typer(
    name="ember",
    help=(
        "Agent data and reasoning training, from raw agent datasets to a measured model.\n\n"
        "Example, raw AgentInstruct OS data to training-ready chat data:\n\n"
        "  ember convert raw.json --from agenttuning_os -o adp.jsonl\n\n"
        "  ember validate adp.jsonl\n\n"
        "  ember convert adp.jsonl --to sft-chat -o sft.jsonl\n\n"
        "Then measure a model:\n\n"
        "  ember eval --model smollm2 --benchmarks gsm8k,mawps --limit 20 --out runs/base\n\n"
        "Every command reads and writes plain JSONL, takes `--config FILE.yaml` (flags "
        "override it) and `--json` (the summary on stdout). Run `ember COMMAND --help` for "
        "each command's options."
    ),
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"ember {version('ember')}")
        except PackageNotFoundError:
            typer.echo("ember (not installed as a package)")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print ember's version and exit.")) -> None:
    pass


convert.register(app)
validate.register(app)
app.add_typer(eval_command.app, name="eval")
train.register(app)
app.add_typer(synth.app, name="synth")
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
