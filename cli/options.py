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

import dataclasses
import inspect
import os
import sys
import types
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
import typer.core
from rich.markup import escape

from ember.adp.config import is_section, load_config
from ember.adp.io import InputError, LockedError
from ember.cli.render import console, print_json


@dataclasses.dataclass
class Option:
    """One command-line option generated from a config field."""

    param: str            # the Python parameter name typer passes back
    key: str              # the override key load_config takes ("rft.max_steps", "model")
    flag: str             # "--rft-max-steps"
    field: dataclasses.Field
    hint: Any             # the field's type
    default: Any          # the field's default value, for the help text
    panel: str | None


def options(cls: type, prefix: str = "", key_prefix: str = "", panel: str | None = None,
            instance: Any = None) -> list[Option]:
    """Every CLI option of ``cls``, sections included, in declaration order."""
    hints = typing.get_type_hints(cls)
    instance = instance if instance is not None else _defaults(cls)
    out = []
    for f in dataclasses.fields(cls):
        if is_section(f):
            sub_prefix = prefix + f.metadata["prefix"]
            sub_key = f"{key_prefix}{f.name}." if f.metadata["prefix"] else key_prefix
            out += options(hints[f.name], sub_prefix, sub_key,
                           f.metadata.get("help") or panel, getattr(instance, f.name, None))
            continue
        if not f.metadata.get("cli", True):
            continue
        flag = f.metadata.get("flag") or f"--{prefix}{f.name.replace('_', '-')}"
        param = (key_prefix.replace(".", "__") + f.name)
        out.append(Option(param, key_prefix + f.name, flag, f, hints[f.name],
                          getattr(instance, f.name, dataclasses.MISSING), panel))
    return out


def _defaults(cls):
    try:
        return cls()
    except TypeError:  # required fields: build what has defaults
        return None


def _base(hint):
    """X for ``X | None``; the hint itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if args else hint
    return hint


def _parameter(o: Option) -> inspect.Parameter:
    meta = o.field.metadata
    base = _base(o.hint)
    origin = typing.get_origin(base) or base
    shown = "" if o.default in (dataclasses.MISSING, None) else f" [default: {_show(o.default)}]"
    required = o.default is dataclasses.MISSING
    text = meta["help"] + (" [required]" if required and not meta.get("argument") else shown)
    bounds = {k: meta[k] for k in ("min", "max") if meta.get(k) is not None}
    if meta.get("argument"):
        if origin is list:
            default = typer.Argument(None, metavar=meta.get("metavar") or "PATH...", help=meta["help"])
            return inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY,
                                     annotation=Optional[List[str]], default=default)
        default = typer.Argument(None, metavar=meta.get("metavar"), help=meta["help"], **bounds)
        return inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY,
                                 annotation=Optional[base], default=default)
    decls = [o.flag] + ([meta["short"]] if meta.get("short") else [])
    if origin is bool:
        name = o.flag[2:]
        decls = [f"--{name}/--no-{name}"] + ([meta["short"]] if meta.get("short") else [])
        annotation = Optional[bool]
    elif origin is dict:
        annotation, text = Optional[List[str]], text + " (repeatable KEY=VALUE)"
    elif origin is list:
        annotation, text = Optional[str], text + " (comma-separated)"
    else:
        annotation = Optional[base]
    default = typer.Option(None, *decls, help=text, show_default=False, rich_help_panel=o.panel,
                           metavar=meta.get("metavar"), **bounds)
    return inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=default)


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


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
        origin = typing.get_origin(_base(o.hint)) or _base(o.hint)
        if origin is dict:
            value = _pairs(value, o.flag)
        elif origin is list and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif origin is Path or _base(o.hint) is Path:
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
    params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY,
                                    annotation=Optional[Path], default=typer.Option(
                                        None, "--config", "-c", help=(
                                            "YAML file of options (keys as the flags, "
                                            "underscores or dashes; sections as `sft:`); "
                                            "flags typed here override it."))))
    params.append(inspect.Parameter("json_out", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, "--json", help=(
                                        "Print the summary as JSON on stdout (an "
                                        "{error, exit_code} object on failure)."))))
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
    app.command(name, help=help, no_args_is_help=no_args_is_help, cls=Command)(
        command_function(cls, run, render, name))


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
    """A typer command whose option values are checked by ``Coerce``."""

    def parse_args(self, ctx, args):
        check_without_pydantic(self.get_params(ctx))
        return super().parse_args(ctx, args)


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
