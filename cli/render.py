"""Shared output helpers: rich tables to stderr-safe consoles, JSON to stdout."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings

import orjson


def __getattr__(name: str):
    """``console``, rich's console on stderr, made on first use: a command that prints no
    table (``--json``, not on a terminal) need not import rich."""
    if name == "console":
        from rich.console import Console

        globals()["console"] = Console(stderr=True)
        return globals()["console"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def print_json(data) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


@contextlib.contextmanager
def training_output():
    """Around a run that trains with TRL: its log lines go to stderr (TRL prints them on
    stdout, which --json keeps for the summary alone), and its known noise is quiet."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # TRL still passes transformers' renamed gradient_checkpointing options: noise to a user.
    warnings.filterwarnings("ignore", message=".*checkpointing.* is deprecated",
                            category=FutureWarning)
    for noisy in ("httpx", "urllib3", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):
        yield
