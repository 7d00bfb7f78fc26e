"""`--help` pages, rendered with the standard library alone.

    command_help("ember convert", HELP, ConvertConfig)   # what `ember convert --help` prints

Every ember command's help comes from here, whether typer is running (the command
classes of ember.cli.options call it) or not: `ember COMMAND --help` for a command
that is one config (convert, validate) is answered by ember.cli.main before typer or
rich is imported, so it costs only the command's own imports. The layout is click's
plain one: usage, the command's text as written, then arguments, options by panel and
subcommands, each a name column and a wrapped help column.
"""

from __future__ import annotations

import os
import sys
import textwrap


def width(columns: int | None = None) -> int:
    """The page width: ``columns``, else $COLUMNS or the terminal's, kept between 40 and
    100."""
    if not columns:
        try:
            columns = (int(os.environ.get("COLUMNS", ""))
                       or os.get_terminal_size(sys.stdout.fileno()).columns)
        except (ValueError, OSError):
            columns = 80
    return max(40, min(columns, 100))


def rows(pairs: list[tuple[str, str]], page: int, column: int = 30) -> list[str]:
    """Two columns: each name, then its text wrapped to the page (a name longer than
    ``column`` puts its text on the next line, as click does)."""
    left = min(max(len(name) for name, _ in pairs), column) + 4
    out = []
    for name, text in pairs:
        lines = textwrap.wrap(text, max(20, page - left)) or [""]
        if len(name) + 4 > left:
            out.append(f"  {name}")
        else:
            out.append(f"  {name.ljust(left - 2)}{lines.pop(0)}")
        out += [" " * left + line for line in lines]
    return out


def command_help(prog: str, text: str, cls: type | None = None,
                 commands: list[tuple[str, str]] = (), page: int | None = None) -> str:
    """The help page of ``prog``: its ``text``, the options of config class ``cls`` (with
    --config and --json) and ``commands``, (name, one-line help) pairs of a group."""
    from ember.cli.fields import CONFIG_OPTION, HELP_OPTION, JSON_OPTION, options

    page = width(page)
    opts = options(cls) if cls is not None else []
    arguments = [o for o in opts if o.field.metadata.get("argument")]
    usage = f"Usage: {prog} [OPTIONS]" + "".join(f" [{_argument(o)}]" for o in arguments)
    body = [usage + (" COMMAND [ARGS]..." if commands else ""), ""]
    body += ["  " + line if line.strip() else "" for line in text.strip("\n").splitlines()]
    if arguments:
        body += ["", "Arguments:", *rows([(f"[{_argument(o)}]", o.text) for o in arguments], page)]
    panels: dict[str | None, list[tuple[str, str]]] = {None: []}
    for o in opts:
        if not o.field.metadata.get("argument"):
            panels.setdefault(o.panel, []).append((_spelling(o), o.text))
    common = [CONFIG_OPTION, JSON_OPTION] if cls is not None else []
    for flag, short, metavar, help in [*common, HELP_OPTION]:
        panels[None].append((_names(flag, short, metavar), help))
    for panel, pairs in panels.items():
        body += ["", f"{panel or 'Options'}:", *rows(pairs, page)]
    if commands:
        body += ["", "Commands:", *rows(list(commands), page)]
    return "\n".join(body) + "\n"


def _argument(o) -> str:
    return o.field.metadata.get("metavar") or o.field.name.upper()


def _spelling(o) -> str:
    """`-f, --from TEXT`, `--resume / --no-resume`: how the option is typed."""
    from ember.cli.fields import KIND_METAVARS

    meta = o.field.metadata
    if o.kind is bool:
        return _names(f"{o.flag} / --no-{o.flag[2:]}", meta.get("short"), None)
    metavar = meta.get("metavar") or ("KEY=VALUE" if o.kind is dict else
                                      KIND_METAVARS.get(o.kind, "TEXT"))
    return _names(o.flag, meta.get("short"), metavar)


def _names(flag: str, short: str | None, metavar: str | None) -> str:
    return (f"{short}, " if short else "") + flag + (f" {metavar}" if metavar else "")
