"""What every `ember synth` command shares: the LLM options and a progress bar.

    from ember.cli.synth_options import llm_options, progress_bar
    from ember.llm.client import LLMConfig, make_llm

    @app.command("questions")
    @llm_options
    def questions(out: Path = typer.Option(..., "--out", "-o"), *, llm: LLMConfig):
        engine = make_llm(llm, out=out)
        with progress_bar("questions") as progress:
            results = engine.generate(prompts, params, on_progress=progress)

`@llm_options` adds one option per LLMConfig field (--model/-m, --backend, --base-url,
--api-key-env, --concurrency, --batch-size, --max-retries, --timeout, --cache; help text
from the field's metadata) and hands them to the command as a single `llm: LLMConfig`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from contextlib import contextmanager
from typing import Optional

import typer

from ember.cli.render import console
from ember.llm.client import LLMConfig

SHORT = {"model": "-m"}
MIN = {"concurrency": 1, "batch_size": 1, "max_retries": 0, "timeout": 0.001}


def _options() -> list[inspect.Parameter]:
    hints = typing.get_type_hints(LLMConfig)
    params = []
    for f in dataclasses.fields(LLMConfig):
        flags = [f"--{f.name.replace('_', '-')}", *([SHORT[f.name]] if f.name in SHORT else [])]
        kind = Optional[str] if hints[f.name] == Optional[str] else hints[f.name]
        option = typer.Option(f.default, *flags, help=f.metadata["help"], min=MIN.get(f.name),
                              rich_help_panel="LLM")
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=kind))
    return params


def llm_options(command):
    """Decorate a typer command that takes `*, llm: LLMConfig`: adds the LLM options."""
    sig = inspect.signature(command, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "llm"]
    names = [f.name for f in dataclasses.fields(LLMConfig)]
    clash = set(names) & {p.name for p in own}
    assert not clash, f"{command.__name__} already has parameters {clash}"

    @functools.wraps(command)
    def wrapper(**kwargs):
        cfg = LLMConfig(**{name: kwargs.pop(name) for name in names})
        return command(**kwargs, llm=cfg)

    params = own + _options()
    # typer reads the signature and the type hints; give it both, resolved
    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # so inspect and typer see the new signature, not the original
    return wrapper


@contextmanager
def progress_bar(description: str):
    """A transient rich bar on stderr (off when stderr is not a terminal); yields the
    `on_progress(done, total)` callback that LLM.generate takes. Safe from any thread."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
