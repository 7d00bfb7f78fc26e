"""The one way an `ember` command is built: a config dataclass + ``run(cfg) -> Summary``.

    from ember.cli.options import add_command
    add_command(app, "pass-rate", PassRateConfig, pass_rates, render, help=HELP)

``add_command`` generates one typer option per config field (flag, short flag, help,
default and bounds all come from the field: ember.adp.config), adds ``--config FILE.yaml``
(YAML sets values, the flags a user typed override them) and ``--json``, and on a call:
builds the config, runs the library function with a progress callback (a bar on a
terminal, nothing otherwise), then prints the summary (``--json``: as JSON on stdout) and
exits with the summary's exit code (3: the run finished but its result is partial, e.g.
too many rejects or less than --min-yield). Failures are one line on stderr
(``error: ...``): exit code 2 for bad options or inputs, 1 for a failure at run time (a
full disk, an endpoint that stays down, an output another run holds), 130 on Ctrl-C; with
``--json`` stdout then carries ``{"error": ..., "exit_code": ...}``. ``EMBER_DEBUG=1``
shows the traceback instead.
"""

from __future__ import annotations

import inspect
import os
import sys
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
import typer.core
from rich.markup import escape

from ember.adp.config import load_config
from ember.adp.io import InputError, LockedError
from ember.cli.fields import CONFIG_OPTION, JSON_OPTION, Option, base_type, options
from ember.cli.help import command_help
from ember.cli.render import console, print_json


def _parameter(o: Option) -> inspect.Parameter:
    meta = o.field.metadata
    base, kind = base_type(o.hint), o.kind
    bounds = {k: meta[k] for k in ("min", "max") if meta.get(k) is not None}
    if meta.get("argument"):
        if kind is list:
            default = typer.Argument(None, metavar=meta.get("metavar") or "PATH...", help=o.text)
            return inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY,
                                     annotation=Optional[List[str]], default=default)
        default = typer.Argument(None, metavar=meta.get("metavar"), help=o.text, **bounds)
        return inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY,
                                 annotation=Optional[base], default=default)
    decls = [o.flag] + ([meta["short"]] if meta.get("short") else [])
    if kind is bool:
        name = o.flag[2:]
        decls = [f"--{name}/--no-{name}"] + ([meta["short"]] if meta.get("short") else [])
        annotation = Optional[bool]
    elif kind is dict:
        annotation = Optional[List[str]]
    elif kind is list:
        annotation = Optional[str]
    else:
        annotation = Optional[base]
    default = typer.Option(None, *decls, help=o.text, show_default=False, rich_help_panel=o.panel,
                           metavar=meta.get("metavar"), **bounds)
    return inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=default)


def _pairs(values: list[str], flag: str) -> dict:
    import yaml

    out = {}
    for v in values:
        key, sep, raw = v.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} takes KEY=VALUE, got {v!r}")
        out[key.strip()] = yaml.safe_load(raw)  # numbers and booleans typed as in YAML
    return out


def overrides(opts: list[Option], values: dict) -> dict:
    """The override dict for load_config from what the user typed (None = not typed)."""
    out = {}
    for o in opts:
        value = values.get(o.param)
        if value is None:
            continue
        if o.kind is dict:
            value = _pairs(value, o.flag)
        elif o.kind is list and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif o.kind is Path:
            value = str(value)
        out[o.key] = value
    return out


EXPECTED = (ValueError, InputError, FileNotFoundError)   # bad options or inputs: exit 2


def runtime_errors() -> tuple:
    """What failed while running: exit 1 (a full disk, an endpoint that stays down, a held
    lock, the LLM cache). The LLM backends' and sqlite3's error classes are looked up, not
    imported: a command that never imported them cannot have raised them, and importing
    them here would slow every command's start-up."""
    errors = [LockedError, OSError, RuntimeError, MemoryError]
    if "ember.llm.backends" in sys.modules:
        errors.append(sys.modules["ember.llm.backends"].BackendError)
    if "sqlite3" in sys.modules:
        errors.append(sys.modules["sqlite3"].Error)
    return tuple(errors)


def fail(message: str, code: int, json_out: bool = False) -> None:
    """One line on stderr (and a JSON object on stdout with --json), then exit ``code``."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if json_out:
        print_json({"error": message, "exit_code": code})
    raise typer.Exit(code)


def invoke(cls: type, run: Callable, render: Callable, kwargs: dict,
           label: str = "working") -> None:
    """Build the config from --config and the typed flags, run, render, exit."""
    json_out = kwargs.pop("json_out", False)
    path = kwargs.pop("config", None)
    debug = os.environ.get("EMBER_DEBUG") == "1"
    try:
        cfg = load_config(cls, path, overrides(options(cls), kwargs))
    except ValueError as e:
        fail(str(e), 2, json_out)
    try:
        with progress_bar(label) as progress:
            summary = run(cfg, progress=progress) if _takes_progress(run) else run(cfg)
    except KeyboardInterrupt:
        fail("interrupted; finished work is saved: run the same command again to resume",
             130, json_out)
    except ModuleNotFoundError as e:  # an optional package of an extra that is not installed
        if debug:
            raise
        fail(f"this needs the package {e.name!r}, which is not installed: pip install "
             "'ember[all]' (see the README's install section)", 1, json_out)
    except runtime_errors() + EXPECTED as e:
        if debug:
            raise
        fail(_one_line(e), _exit_code(e), json_out)
    data = summary.to_dict() if hasattr(summary, "to_dict") else summary
    if json_out:
        print_json(data)
    else:
        render(summary)
    for line in getattr(summary, "warnings", []):
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    code = getattr(summary, "exit_code", 0)
    if code:
        console.print(f"[bold red]error:[/] {escape(summary.error)}", highlight=False,
                      soft_wrap=True)
        raise typer.Exit(code)


def _exit_code(e: BaseException) -> int:
    """2 for bad options or inputs (a missing file is one), 1 for a failure at run time."""
    if isinstance(e, LockedError):
        return 1
    return 2 if isinstance(e, EXPECTED) else 1


def _one_line(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return "out of memory (an input too large for this machine? see --max-prompt-tokens)"
    text = " ".join(str(e).split()) or type(e).__name__
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(e, sqlite3.Error):
        text = f"LLM cache: {text}"
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text += f" ({e.filename})"
    return text


def _takes_progress(fn) -> bool:
    try:
        return "progress" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def command_function(cls: type, run: Callable, render: Callable, label: str,
                     context: bool = False) -> Callable:
    """A function typer can register, whose signature is the config's options."""
    params = [_parameter(o) for o in options(cls)]
    flag, short, _, text = CONFIG_OPTION
    params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY,
                                    annotation=Optional[Path],
                                    default=typer.Option(None, flag, short, help=text)))
    flag, _, _, text = JSON_OPTION
    params.append(inspect.Parameter("json_out", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, flag, help=text)))
    if context:
        params.insert(0, inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                           annotation=typer.Context))

    def handler(*args, **kwargs):
        if context:
            ctx = args[0] if args else kwargs.pop("ctx")
            kwargs.pop("ctx", None)
            if ctx.invoked_subcommand:
                return
        invoke(cls, run, render, kwargs, label)

    handler.__signature__ = inspect.Signature(params)
    return handler


def add_command(app: typer.Typer, name: str, cls: type, run: Callable, render: Callable, *,
                help: str, no_args_is_help: bool = True) -> None:
    """Register ``ember ... NAME`` built from ``cls`` (see the module docstring)."""
    command = type(f"{cls.__name__}Command", (Command,), {"config": cls})
    app.command(name, help=help, no_args_is_help=no_args_is_help, cls=command)(
        command_function(cls, run, render, name))


def group(cls: type | None = None) -> type:
    """The typer group class for ``typer.Typer(cls=...)`` whose callback is ``cls``'s
    options (None: a group of commands alone); its help is rendered as a command's."""
    return type("Group", (Group,), {"config": cls})


# --- option values checked without pydantic --------------------------------------------
# typer (0.2x) checks each option's value with a pydantic TypeAdapter built on first use;
# importing pydantic and building them is ~180 ms, most of `ember convert`'s start-up.
# Every option ember generates is a str, int, float, bool or Path (or a list of str), so
# they are checked here instead. Where typer keeps no such hook, nothing changes.


class Coerce:
    """One option's value check: its type and the field's bounds (min/max)."""

    NAMES = {int: "integer", float: "number", bool: "boolean", str: "string", Path: "path"}

    def __init__(self, kind: type, lo=None, hi=None):
        self.kind, self.lo, self.hi = kind, lo, hi

    def coerce(self, value, param, ctx):
        if param.multiple or param.nargs == -1:
            return () if value is None else [self.one(v, param, ctx) for v in value]
        return None if value is None else self.one(value, param, ctx)

    def one(self, value, param, ctx):
        kind = self.kind
        if kind is bool and isinstance(value, str):
            value = {"true": True, "1": True, "yes": True, "false": False, "0": False,
                     "no": False}.get(value.lower(), value)
        try:
            out = value if type(value) is kind else kind(value)
        except (TypeError, ValueError):
            out = None
        if out is None or kind is bool and not isinstance(value, bool):
            raise typer.BadParameter(f"{value!r} is not a valid {self.NAMES[kind]}.",
                                     ctx=ctx, param=param)
        if (self.lo is not None and out < self.lo) or (self.hi is not None and out > self.hi):
            span = (f"at least {self.lo}" if self.hi is None else f"at most {self.hi}"
                    if self.lo is None else f"in the range {self.lo} to {self.hi}")
            raise typer.BadParameter(f"{value} is not {span}.", ctx=ctx, param=param)
        return out


def check_without_pydantic(params) -> None:
    """Give every simple-typed typer parameter of ``params`` a Coerce (see above)."""
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", False) is not None:
            continue
        kind = descriptor.annotation
        if typing.get_origin(kind) is list:
            kind = (typing.get_args(kind) or (None,))[0]
        if kind in Coerce.NAMES:
            info = descriptor.parameter_info
            param._runtime_param = Coerce(kind, getattr(info, "min", None),
                                          getattr(info, "max", None))


class Command(typer.core.TyperCommand):
    """A typer command built from config class ``config``: its option values are checked
    by ``Coerce``, its help is ember.cli.help's page."""

    config: type | None = None

    def parse_args(self, ctx, args):
        check_without_pydantic(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def format_help(self, ctx, formatter):
        formatter.write(command_help(ctx.command_path, self.help or "", self.config))


class Group(typer.core.TyperGroup):
    """A typer group whose own options (if any) are config class ``config``'s."""

    config: type | None = None

    def parse_args(self, ctx, args):
        check_without_pydantic(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def format_help(self, ctx, formatter):
        # each command's first paragraph, as `ember --help` lists the commands
        commands = [(name, " ".join((self.commands[name].help or "").split("\n\n")[0].split()))
                    for name in self.list_commands(ctx)]
        formatter.write(command_help(ctx.command_path, self.help or "", self.config, commands))


@contextmanager
def progress_bar(description: str):
    """A transient rich bar on stderr (off when stderr is not a terminal); yields
    ``progress(done, total, what=None)``, safe to call from any thread."""
    if not console.is_terminal:  # no bar to draw: rich.progress need not be imported
        yield lambda done, total, what=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def progress(done: int, total: int | None, what: str | None = None) -> None:
            what = what or description
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        yield progress
