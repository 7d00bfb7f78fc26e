"""One flag vocabulary: every command's options checked against the README glossary.

Fails when one concept has two spellings (a retired spelling comes back, or a short flag
means two long ones), or one spelling two meanings (a glossary flag whose help, in some
command, does not start with the glossary's meaning), or when a flag shared by several
commands is missing from the glossary.
"""

import collections
import re

import typer

from ember.cli.main import app
from tests.conftest import ROOT

STAGE_PREFIXES = ("--sft-", "--rft-", "--judge-")
# concepts renamed in 0.1 whose old names must not return under any stage prefix
RENAMED = {"--output", "--n", "--k", "--rollouts", "--num-generations", "--max-completion-length"}


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def glossary() -> dict[str, str]:
    """flag -> the words its help must start with, from the README's table."""
    rows = re.findall(r"^\| *`(--[a-z-]+)`(?: *`-\w`)? *\| *(.+?) *\| *(.+?) *\|$",
                      readme_section("Flag glossary"), re.M)
    return {flag: meaning.strip() for flag, _concept, meaning in rows}


def retired() -> set[str]:
    return set(re.findall(r"`(--[a-z-]+)` *→", readme_section("Flag glossary")))


def all_options():
    """(command path, long flag, other spellings, help) for every option of every command."""
    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            if path:
                yield path, cmd
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd
    for path, cmd in walk(typer.main.get_command(app), []):
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "option" and p.name != "help":
                longs = [o for o in p.opts if o.startswith("--")]
                yield (" ".join(path), longs[0], [o for o in p.opts if o != longs[0]],
                       p.help or "", getattr(p.type_descriptor.annotation, "__name__", ""))


def base(flag: str) -> str:
    for prefix in STAGE_PREFIXES:
        if flag.startswith(prefix):
            return "--" + flag[len(prefix):]
    return flag


def test_the_glossary_is_there_and_names_the_core_concepts():
    g = glossary()
    assert {"--out", "--model", "--samples", "--tasks", "--batch-size", "--config",
            "--json", "--seed", "--temperature", "--max-new-tokens"} <= set(g)
    assert {"--output", "--n", "--k", "--rollouts", "--num-generations"} <= retired()


def test_one_spelling_one_meaning():
    g = glossary()
    wrong = [f"ember {cmd} {flag}: help {help[:70]!r} does not start with {g[flag]!r}"
             for cmd, flag, _, help, _ in all_options()
             if flag in g and not help.lower().startswith(g[flag].lower())]
    assert not wrong, "\n".join(wrong)


def test_one_concept_one_spelling():
    options = list(all_options())
    # a retired spelling may not come back, nor a renamed concept under a stage prefix
    back = sorted({f"ember {cmd}: {flag}" for cmd, flag, *_ in options
                   if flag in retired() or base(flag) in RENAMED})
    assert not back, f"retired spellings in use: {back}"
    shorts = collections.defaultdict(set)
    for _, flag, others, *_ in options:
        for o in others:
            if not o.startswith("--"):
                shorts[o].add(flag)
    assert {s: f for s, f in shorts.items() if len(f) > 1} == {}
    assert shorts["-o"] == {"--out"} and shorts["-m"] == {"--model"} and shorts["-n"] == {"--samples"}


def test_every_shared_flag_is_in_the_glossary():
    g = glossary()
    commands = collections.defaultdict(set)
    for cmd, flag, *_ in all_options():
        commands[base(flag)].add(cmd)
    shared = {flag for flag, cmds in commands.items() if len(cmds) > 1}
    assert shared - set(g) == set()


def test_path_flags_are_paths_everywhere():
    # a path flag never takes a number (bench selectors counts tasks with --num-tasks)
    kinds = {(flag, kind) for _, flag, _, _, kind in all_options() if flag in ("--tasks", "--out")}
    assert kinds == {("--tasks", "str"), ("--out", "str")}
