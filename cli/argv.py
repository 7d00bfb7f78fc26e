"""A command's arguments read without typer, for the plain cases.

    quick_parse(ConvertConfig, ["raw.jsonl", "--from", "agenttuning_os", "-o", "out.jsonl"])
    # -> the values typer would pass the command, or None

`ember convert ...` and `ember validate ...` (a module with CONFIG: one config, no
subcommands) are parsed here by ember.cli.main and run through ember.cli.run, so a
run does not import typer and click (~60 ms of a small run's start-up). Only what is
plain is read: the config's flags and short flags as `--flag VALUE`, `--flag=VALUE` or
`-f VALUE`, `--x` / `--no-x` for a yes/no option, --config and --json, positional
inputs and `--`. Anything else (help, an unknown or repeated flag, a value that is not
of its type or out of its bounds, a missing value, a value that looks like a flag)
gives None, and typer parses the whole command line and explains what is wrong, as it
does for every command. tests/cli/test_argv.py holds the two routes to the same values.
"""

from __future__ import annotations

from pathlib import Path

from ember.cli.fields import CONFIG_OPTION, JSON_OPTION, options, typed_value


def quick_parse(cls: type, args: list[str]) -> dict | None:
    """The keyword arguments typer would call the command of config ``cls`` with, for
    ``args``; None where they are not plain (see the module docstring)."""
    if not args:
        return None  # no arguments: typer shows the help
    opts = options(cls)
    arguments = [o for o in opts if o.field.metadata.get("argument")]
    if len(arguments) > 1 or (arguments and arguments[0].kind is not list):
        return None
    spellings: dict[str, tuple] = {}  # "--from" -> (option, the value a bare yes/no flag sets)
    for o in opts:
        if o.field.metadata.get("argument"):
            continue
        names = [o.flag] + ([o.field.metadata["short"]] if o.field.metadata.get("short") else [])
        for name in names:
            spellings[name] = (o, True if o.kind is bool else None)
        if o.kind is bool:
            spellings[f"--no-{o.flag[2:]}"] = (o, False)
    values: dict = {o.param: None for o in opts}
    values.update(config=None, json_out=False)
    positional: list[str] = []
    seen: set[str] = set()
    rest = iter(args)
    for token in rest:
        if token == "--":
            positional += list(rest)
            break
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        if name == JSON_OPTION[0]:
            if eq or "json_out" in seen:
                return None
            values["json_out"] = True
            seen.add("json_out")
            continue
        if name in CONFIG_OPTION[:2]:
            raw = inline if eq else next(rest, None)
            if raw is None or "config" in seen or _flag_like(raw):
                return None
            values["config"] = Path(raw)
            seen.add("config")
            continue
        if name not in spellings:
            return None  # --help, a typo, a combined short flag: typer's to explain
        o, flag_value = spellings[name]
        if o.param in seen and o.kind is not dict:
            return None  # typer decides what a repeated flag means
        seen.add(o.param)
        if o.kind is bool:
            if eq:
                return None
            values[o.param] = flag_value
            continue
        raw = inline if eq else next(rest, None)
        if raw is None or (not eq and _flag_like(raw)):
            return None
        if o.kind is dict:
            values[o.param] = [*(values[o.param] or []), raw]
            continue
        kind = str if o.kind is list else o.kind
        meta = o.field.metadata
        try:
            values[o.param] = typed_value(kind, raw, meta.get("min"), meta.get("max"))
        except (ValueError, KeyError):
            return None
    if positional and not arguments:
        return None
    if arguments:
        values[arguments[0].param] = positional or None
    return values


def _flag_like(value: str) -> bool:
    return value.startswith("-") and value != "-"
