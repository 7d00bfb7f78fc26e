"""The `ember` command: one typer app, one module per subcommand.

    ember convert raw.json --from agenttuning_os -o adp.jsonl
    ember validate adp.jsonl
    ember convert adp.jsonl --to sft-chat -o sft.jsonl
    ember eval --model smollm2 --benchmarks gsm8k-boxed,mawps --limit 20

Every command is built the same way (ember.cli.options): a config dataclass of the
library, its `run(cfg)`, and a renderer in the command's module.

Start-up: the commands are registered by name (COMMANDS: name, module, one-line help) and
a command's module, with its library config, is imported only when that command runs, is
completed or shows its own `--help`. `ember`, `ember --help` and `ember --version` import
nothing but the standard library: the listing is rendered here from COMMANDS and OPTIONS
(tests/cli/test_startup.py checks both against the real commands, so they cannot drift).
`ember convert --help` and `ember validate --help` import only their command: the page is
rendered by ember.cli.help from the command's config, as typer's route renders it too;
and a plain command line of those two (ember.cli.argv) runs without typer or click.
Everything else goes through typer (`app`, built on first use).
"""

from __future__ import annotations

import os
import sys

HELP = """\
Agent data and reasoning training, from raw agent datasets to a measured model.

Example, raw AgentInstruct OS data to training-ready chat data:

  ember convert raw.json --from agenttuning_os -o adp.jsonl
  ember validate adp.jsonl
  ember convert adp.jsonl --to sft-chat -o sft.jsonl

Then measure a model:

  ember eval --model smollm2 --benchmarks gsm8k-boxed,mawps --limit 20 --out runs/base

Every command reads and writes plain JSONL, takes --config FILE.yaml (flags override it)
and --json (the summary on stdout). Run `ember COMMAND --help` for each command's options.
"""

# name -> (module, one-line help: the first paragraph of the command's own help).
# The module is imported only when the command is used; the order is the listing's.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("ember.cli.convert",
                "Convert agent datasets to ADP and ADP to training formats."),
    "validate": ("ember.cli.validate", "Check ADP trajectories against "
                 "schemas/adp.schema.json and for semantic errors."),
    "train": ("ember.cli.train", "Fine-tune a model: SFT on sft-chat data, then RFT (GRPO) "
              "on tasks whose batches a selector chooses online."),
    "eval": ("ember.cli.eval", "Measure a model on benchmarks: writes OUT/results.json and "
             "OUT/samples.jsonl."),
    "synth": ("ember.cli.synth",
              "Generate training data with an LLM (every call cached and resumable)."),
    "bench": ("ember.cli.bench",
              "Compare task selectors: on a simulated learner, or on real GRPO."),
}

# The root's options as `ember --help` lists them (typer adds the completion ones).
OPTIONS: list[tuple[str, str]] = [
    ("--version", "Print ember's version and exit."),
    ("--install-completion", "Install completion for the current shell."),
    ("--show-completion",
     "Show completion for the current shell, to copy it or customize the installation."),
    ("--help", "Show this message and exit."),
]


def help_text(prog: str = "ember", width: int | None = None) -> str:
    """`ember --help`, from HELP, OPTIONS and COMMANDS (no command module is imported)."""
    from ember.cli import help

    page = help.width(width)
    body = [f"Usage: {prog} [OPTIONS] COMMAND [ARGS]...", ""]
    body += ["  " + line if line else "" for line in HELP.splitlines()]
    body += ["", "Options:", *help.rows(OPTIONS, page), "", "Commands:",
             *help.rows([(name, text) for name, (_, text) in COMMANDS.items()], page)]
    return "\n".join(body) + "\n"


def _one_config(name: str):
    """The module of ``ember NAME`` where the command is one config (it has CONFIG, HELP,
    run and render: convert, validate), else None."""
    import importlib

    module = importlib.import_module(COMMANDS[name][0])
    return module if hasattr(module, "CONFIG") else None


def command_help_text(name: str, prog: str = "ember", page: int | None = None) -> str | None:
    """`ember NAME --help` without typer, for a command that is one config; None for the
    others, whose help typer renders (through the same ember.cli.help)."""
    module = _one_config(name)
    if module is None:
        return None
    from ember.cli.help import command_help

    return command_help(f"{prog} {name}", module.HELP, module.CONFIG, page=page)


def _prog_name() -> str:
    """The program name as click shows it (`ember`, or `python -m ember.cli.main`)."""
    main = sys.modules.get("__main__")
    path = sys.argv[0] if sys.argv and sys.argv[0] else "ember"
    package = getattr(main, "__package__", None)
    if not package:
        return os.path.basename(path)
    name = os.path.splitext(os.path.basename(path))[0]
    return f"python -m {package}" + ("" if name == "__main__" else f".{name}")


def version_line() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"ember {version('ember')}"
    except PackageNotFoundError:
        return "ember (not installed as a package)"


def quick_run(name: str, args: list[str]) -> bool:
    """Run ``ember NAME ARGS`` without typer where the command is one config and ARGS are
    plain (ember.cli.argv); False when typer is to parse and run them."""
    module = _one_config(name)
    if module is None:
        return False
    from ember.cli.argv import quick_parse

    values = quick_parse(module.CONFIG, args)
    if values is None:
        return False
    from ember.cli.run import invoke

    invoke(module.CONFIG, module.run, module.render, values, name)
    return True


# --- the typer side: a group whose commands are imported by name, on first use -------


def load_command(name: str):
    """The click command of ``ember NAME``, built by importing its module (COMMANDS)."""
    import importlib

    import typer
    import typer.main

    try:
        module = importlib.import_module(COMMANDS[name][0])
    except KeyboardInterrupt:  # typer would exit 130 without a word
        sys.stderr.write("error: interrupted while the command was loading; nothing was "
                         "started\n")
        raise typer.Exit(130) from None
    holder = typer.Typer(rich_markup_mode="markdown")  # as the root: same help rendering
    if hasattr(module, "register"):
        module.register(holder)
    else:
        holder.add_typer(module.app, name=name)
    return typer.main.get_group(holder).commands[name]


def _build_app():
    from collections.abc import MutableMapping

    import typer
    from typer.core import TyperGroup

    from ember.cli.options import Group  # option values checked without pydantic

    class LazyCommands(MutableMapping):
        """name -> command; a command of COMMANDS is imported on first access."""

        def __init__(self, loaded=None):
            self._loaded = dict(loaded or {})

        def __getitem__(self, name):
            if name not in self._loaded:
                if name not in COMMANDS:
                    raise KeyError(name)
                self._loaded[name] = load_command(name)
            return self._loaded[name]

        def __setitem__(self, name, command):
            self._loaded[name] = command

        def __delitem__(self, name):
            del self._loaded[name]

        def __iter__(self):
            return iter(dict.fromkeys([*COMMANDS, *self._loaded]))

        def __len__(self):
            return len(set(COMMANDS) | set(self._loaded))

    class LazyGroup(Group):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.commands = LazyCommands(self.commands)

        def list_commands(self, ctx):
            return list(self.commands)

        def format_help(self, ctx, formatter):
            formatter.write(help_text(ctx.command_path))

        def shell_complete(self, ctx, incomplete):
            # the commands' names and short help, from COMMANDS: none is imported
            from typer._click.shell_completion import CompletionItem
            from typer._click.utils import make_default_short_help

            items = [CompletionItem(name, help=make_default_short_help(text))
                     for name, (_, text) in COMMANDS.items() if name.startswith(incomplete)]
            return items + super(TyperGroup, self).shell_complete(ctx, incomplete)

    app = typer.Typer(
        cls=LazyGroup,
        name="ember",
        help=HELP,
        no_args_is_help=True,
        add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
        pretty_exceptions_enable=False,
        rich_markup_mode="markdown",
    )

    def _version(value: bool) -> None:
        if value:
            typer.echo(version_line())
            raise typer.Exit()

    @app.callback()
    def _root(version: bool = typer.Option(False, "--version", callback=_version,
                                           is_eager=True, help=OPTIONS[0][1])) -> None:
        pass

    return app


_APP = None


def __getattr__(name: str):
    """``app``, the typer application, built on first use (``from ember.cli.main import
    app`` works as for any typer app; every command in it is imported when first used)."""
    global _APP
    if name == "app":
        if _APP is None:
            _APP = _build_app()
        return _APP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _completing() -> bool:
    return any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)


def main() -> None:
    args = sys.argv[1:]
    if not _completing():  # shell completion always goes through typer
        if args in ([], ["--help"]):  # no arguments: the help, exit 2, as click does
            sys.stdout.write(help_text(_prog_name()))
            sys.stdout.flush()
            raise SystemExit(0 if args else 2)
        if args == ["--version"]:
            print(version_line())
            return
        if len(args) == 2 and args[0] in COMMANDS and args[1] == "--help":
            page = command_help_text(args[0], _prog_name())
            if page is not None:
                sys.stdout.write(page)
                return
        if args and args[0] in COMMANDS and quick_run(args[0], args[1:]):
            return
    __getattr__("app")()


if __name__ == "__main__":
    main()
