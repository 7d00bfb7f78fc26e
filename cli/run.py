"""A command's run once its options are read: the config from --config and the typed
flags, ``run(cfg)`` with a progress callback, the summary rendered (or ``--json``), the
exit code. Shared by typer's route (ember.cli.options) and the quick one (ember.cli.argv).

Failures are one line on stderr (``error: ...``): exit code 2 for bad options or inputs,
1 for a failure at run time (a full disk, an endpoint that stays down, an output another
run holds), 130 on Ctrl-C, 3 when the run finished but its result is partial (too many
rejects, less than --min-yield); with ``--json`` stdout then carries ``{"error": ...,
"exit_code": ...}``. ``EMBER_DEBUG=1`` shows the traceback instead. On a terminal the
lines are rich's (colour, a progress bar); elsewhere they are written plainly, the same
text, without importing rich.
"""

from __future__ import annotations

import inspect
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ember.adp.config import load_config
from ember.adp.io import InputError, LockedError
from ember.cli.fields import Option, options
from ember.cli.render import print_json


def on_terminal() -> bool:
    """Whether stderr is a terminal as rich decides it (its TTY_COMPATIBLE, FORCE_COLOR
    and FORCE_TERMINAL variables first); decided here without importing rich."""
    if any(v in os.environ for v in ("TTY_COMPATIBLE", "FORCE_COLOR", "FORCE_TERMINAL")):
        from ember.cli.render import console

        return console.is_terminal
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def say(label: str, style: str, message: str) -> None:
    """``label: message`` on stderr: through rich on a terminal, plain text otherwise."""
    if on_terminal():
        from rich.markup import escape

        from ember.cli.render import console

        console.print(f"[{style}]{label}:[/] {escape(message)}", highlight=False,
                      soft_wrap=True)
    else:
        sys.stderr.write(f"{label}: {message}\n")
        sys.stderr.flush()


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
    say("error", "bold red", message)
    if json_out:
        print_json({"error": message, "exit_code": code})
    raise SystemExit(code)


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
        say("warning", "yellow", line)
    code = getattr(summary, "exit_code", 0)
    if code:
        say("error", "bold red", summary.error)
        raise SystemExit(code)


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


@contextmanager
def progress_bar(description: str):
    """A transient rich bar on stderr (off when stderr is not a terminal); yields
    ``progress(done, total, what=None)``, safe to call from any thread."""
    if not on_terminal():  # no bar to draw: rich need not be imported
        yield lambda done, total, what=None: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ember.cli.render import console

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
