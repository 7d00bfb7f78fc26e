"""A config dataclass's fields as command-line options: flag, short flag, kind, help.

One list, read by both sides of the CLI: ember.cli.options turns it into typer
parameters, ember.cli.help renders `ember COMMAND --help` from it. Standard library
only, so that a command's help is printed without importing typer or rich.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from ember.adp.config import is_section

# the two options every command adds to its config's: (flag, short, metavar, help)
CONFIG_OPTION = ("--config", "-c", "PATH", "YAML file of options (keys as the flags, "
                 "underscores or dashes; sections as `sft:`); flags typed here override it.")
JSON_OPTION = ("--json", None, None, "Print the summary as JSON on stdout (an "
               "{error, exit_code} object on failure).")
HELP_OPTION = ("--help", None, None, "Show this message and exit.")

KIND_METAVARS = {str: "TEXT", int: "INTEGER", float: "FLOAT", Path: "PATH"}
KIND_NAMES = {int: "integer", float: "number", bool: "boolean", str: "string", Path: "path"}


def typed_value(kind: type, value, lo=None, hi=None):
    """``value`` (as typed) as a ``kind`` within the field's bounds; ValueError, in click's
    words, where it is not one."""
    if kind is bool and isinstance(value, str):
        value = {"true": True, "1": True, "yes": True, "false": False, "0": False,
                 "no": False}.get(value.lower(), value)
    try:
        out = value if type(value) is kind else kind(value)
    except (TypeError, ValueError):
        out = None
    if out is None or kind is bool and not isinstance(value, bool):
        raise ValueError(f"{value!r} is not a valid {KIND_NAMES[kind]}.")
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        span = (f"at least {lo}" if hi is None else f"at most {hi}"
                if lo is None else f"in the range {lo} to {hi}")
        raise ValueError(f"{value} is not {span}.")
    return out


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

    @property
    def kind(self):
        """bool, int, float, str, Path, list or dict: what the option takes."""
        base = base_type(self.hint)
        return typing.get_origin(base) or base

    @property
    def text(self) -> str:
        """The help text as `--help` shows it: the field's help, then how it is typed and
        its default (or that it is required)."""
        meta = self.field.metadata
        if meta.get("argument"):
            return meta["help"]
        required = self.default is dataclasses.MISSING
        shown = "" if self.default in (dataclasses.MISSING, None) else f" [default: {show(self.default)}]"
        lo, hi = meta.get("min"), meta.get("max")
        span = ("" if lo is None and hi is None else f" [x>={lo}]" if hi is None else
                f" [x<={hi}]" if lo is None else f" [{lo}<=x<={hi}]")
        typed = {dict: " (repeatable KEY=VALUE)", list: " (comma-separated)"}.get(self.kind, "")
        return meta["help"] + typed + span + (" [required]" if required else shown)


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


def base_type(hint):
    """X for ``X | None``; the hint itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if args else hint
    return hint


def show(value) -> str:
    """A default as the help shows it: lists comma-separated, dicts as KEY=VALUE pairs."""
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)
