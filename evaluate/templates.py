"""Prompt wording: the one place prompts are loaded and filled in.

    from ember.evaluate.templates import PROMPTS, load_prompt, render
    render(PROMPTS["math"], {"question": "What is 3 + 4?"})
    render(load_prompt("search_agent"), {"question": q, "max_turns": 4, "topk": 3})
    load_prompt("judge", package="ember.synth")        # synth/prompts/judge.md

Templates use ``{name}`` placeholders (a dotted path such as ``{meta.text}`` reads a
nested field) and ``{{``/``}}`` for literal braces, so a Python format string works
unchanged, while any other brace — ``\\boxed{}``, a JSON example — is left as it is.
A placeholder with no value is a KeyError naming it, never a silently empty prompt.

Prompt files are Markdown files in a package's ``prompts/`` folder (``evaluate/prompts``
for the search agent, ``synth/prompts`` for synthesis); the wording of the built-in
benchmarks is the ``PROMPTS`` dict below.
"""

from __future__ import annotations

import re
from importlib import resources

from ember.adp.mapping import ConvertError, get_field

PROMPTS = {
    "math": "{question}\n\nSolve the problem step by step, then give the final answer "
            "inside \\boxed{}.",
    "qa": "Question: {question}\n\nThink step by step, then end with a line of the form "
          "\"Answer: <answer>\" giving only the short answer (a name, a date, a number, "
          "yes or no).",
    "qa-context": "{context}\n\nAnswer the question using the paragraphs above.\n\n"
                  "Question: {question}\n\nThink step by step, then end with a line of the "
                  "form \"Answer: <answer>\" giving only the short answer (a name, a date, "
                  "a number, yes or no).",
}

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w.]*)\}")


def render(template: str, values: dict) -> str:
    """Fill ``{name}`` (dotted paths allowed) from ``values``; ``{{``/``}}`` are braces;
    any other brace (``\\boxed{}``) is left alone. KeyError for a name without a value."""
    def fill(m: re.Match) -> str:
        if m.group(1) is None:
            return m.group(0)[0]
        try:
            return str(get_field(values, m.group(1)))
        except ConvertError as e:
            raise KeyError(e.detail) from None
    return _PLACEHOLDER.sub(fill, template)


def load_prompt(name: str, package: str = "ember.evaluate") -> str:
    """The prompt file ``prompts/<name>.md`` shipped in ``package`` (works from a wheel)."""
    return (resources.files(package) / "prompts" / f"{name}.md").read_text()
