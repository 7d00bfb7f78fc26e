"""The one way an `ember` command is built: a config dataclass + ``run(cfg) -> Summary``.

    from ember.cli.options import add_command
    add_command(app, "pass-rate", PassRateConfig, pass_rates, render, help=HELP)

``add_command`` generates one typer option per config field (flag, short flag, help,
default and bounds all come from the field: ember.cli.fields), adds ``--config FILE.yaml``
(YAML sets values, the flags a user typed override them) and ``--json``; on a call
ember.cli.run builds the config, runs the library function, prints the summary and exits
with its code (see there for the failures' exit codes). Help pages are ember.cli.help's.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Callable, List, Optional

import typer
import typer.core

from ember.cli.fields import (CONFIG_OPTION, JSON_OPTION, KIND_NAMES, Option, base_type,
                              options, typed_value)
from ember.cli.help import command_help
from ember.cli.run import invoke


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

    NAMES = KIND_NAMES

    def __init__(self, kind: type, lo=None, hi=None):
        self.kind, self.lo, self.hi = kind, lo, hi

    def coerce(self, value, param, ctx):
        if param.multiple or param.nargs == -1:
            return () if value is None else [self.one(v, param, ctx) for v in value]
        return None if value is None else self.one(value, param, ctx)

    def one(self, value, param, ctx):
        try:
            return typed_value(self.kind, value, self.lo, self.hi)
        except ValueError as e:
            raise typer.BadParameter(str(e), ctx=ctx, param=param) from None


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
