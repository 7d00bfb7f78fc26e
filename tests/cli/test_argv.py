"""The quick route (cli/argv.py) reads a plain command line to exactly the values typer
would pass, and gives every other line to typer; a real run on it imports no CLI
framework, and its messages are the ones typer's route prints."""

import json
import subprocess
import sys

import pytest

from ember.cli import options as options_module
from ember.cli.argv import quick_parse
from ember.cli.main import COMMANDS, app
from tests.conftest import FIXTURES, ROOT
from tests.cli.test_startup import loaded, modules_after

RAW = str(FIXTURES / "adp" / "agenttuning_os" / "sample_raw.json")

PLAIN = {
    "convert": [
        [RAW, "--from", "agenttuning_os", "-o", "out.jsonl"],
        [RAW, "b.jsonl", "-f", "swe-smith", "--to=sft-chat", "--out", "-", "--json"],
        ["--workers", "auto", RAW, "--max-reject-rate", "0.5"],
        [RAW, "--max-reject-rate=1", "--resume", "--rejects", "r.jsonl", "-t", "adp"],
        [RAW, "--no-resume", "-c", "cfg.yaml", "-o", "o.jsonl"],
        ["--list", "--shape", "react"],
        ["--no-list", "--config=c.yaml", "--", "-odd-name.jsonl", "--json"],
        ["a.jsonl", "-o", "x.jsonl", "--workers", "0"],
    ],
    "validate": [
        ["a.jsonl"],
        ["a.jsonl", "b.jsonl", "--show", "0", "--strict", "--json"],
        ["--max-error-rate", "0.25", "a.jsonl", "--no-strict", "--show=3"],
    ],
}

NOT_PLAIN = {  # typer's to parse (help, errors, spellings the quick route leaves alone)
    "convert": [
        [], ["--help"], [RAW, "-h"], [RAW, "--frm", "x"], [RAW, "--max-reject-rate", "2"],
        [RAW, "--max-reject-rate", "x"], [RAW, "-o"], [RAW, "-o", "a", "-o", "b"],
        [RAW, "--json", "--json"], [RAW, "--resume=yes"], [RAW, "-oout.jsonl"],
        [RAW, "--from", "--to"], [RAW, "--json=1"],
    ],
    "validate": [["a.jsonl", "--show", "-1"], ["a.jsonl", "--show", "1.5"], ["--help"]],
}


def typer_values(monkeypatch, name: str, args: list[str]) -> dict:
    """What typer's route hands to ember.cli.run.invoke for ``ember NAME ARGS``."""
    from typer.testing import CliRunner

    seen = {}

    def capture(cls, run, render, kwargs, label="working"):
        seen.update(kwargs)

    monkeypatch.setattr(options_module, "invoke", capture)
    result = CliRunner().invoke(app, [name, *args], prog_name="ember")
    assert result.exit_code == 0, result.output
    return seen


@pytest.mark.parametrize("name, args", [(n, a) for n, cases in PLAIN.items() for a in cases])
def test_a_plain_line_reads_as_typer_reads_it(monkeypatch, name, args):
    import importlib

    module = importlib.import_module(COMMANDS[name][0])
    quick = quick_parse(module.CONFIG, args)
    assert quick is not None, args
    want = typer_values(monkeypatch, name, args)
    assert quick == want
    assert {k: type(v) for k, v in quick.items()} == {k: type(v) for k, v in want.items()}


@pytest.mark.parametrize("name, args", [(n, a) for n, cases in NOT_PLAIN.items() for a in cases])
def test_anything_else_goes_to_typer(name, args):
    import importlib

    module = importlib.import_module(COMMANDS[name][0])
    assert quick_parse(module.CONFIG, args) is None


def test_every_option_of_the_command_is_read(monkeypatch):
    """Each of convert's options, in each of its spellings, once: none is left to typer."""
    from ember.adp.convert import ConvertConfig
    from ember.cli.fields import options

    for o in options(ConvertConfig):
        meta = o.field.metadata
        if meta.get("argument"):
            continue
        value = {"workers": "2", "max_reject_rate": "0.5"}.get(o.field.name, "v")
        lines = ([[o.flag], [f"--no-{o.flag[2:]}"]] if o.kind is bool
                 else [[o.flag, value], [f"{o.flag}={value}"]])
        if meta.get("short"):
            lines.append([meta["short"]] + ([] if o.kind is bool else [value]))
        for line in lines:
            args = [RAW, *line]
            quick = quick_parse(ConvertConfig, args)
            assert quick is not None, line
            assert quick == typer_values(monkeypatch, "convert", args), line


def test_a_real_run_on_the_quick_route_imports_no_cli_framework(tmp_path):
    out = tmp_path / "os.jsonl"
    proc, mods = modules_after("convert", RAW, "--from", "agenttuning_os", "-o", str(out),
                               "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["produced"] == 5 and out.stat().st_size > 0
    assert loaded(mods, {"typer", "click", "rich", "pydantic"}) == set()
    # the table is rich's, as on typer's route
    proc, mods = modules_after("convert", RAW, "--from", "agenttuning_os", "-o", str(out))
    assert proc.returncode == 0 and "converted" in proc.stderr and "typer" not in mods


@pytest.mark.parametrize("args, code, says", [
    (["missing.jsonl", "--from", "agenttuning_os"], 2, "no such file"),
    ([RAW, "--from", "no_such_dataset"], 2, "no_such_dataset"),
    (["BAD", "--from", "agenttuning_os"], 3, "exceeds --max-reject-rate"),
])
def test_failures_on_the_quick_route_are_typers_words(tmp_path, args, code, says):
    """The same one line and exit code by either route; --json adds the error object."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    args = [str(bad) if a == "BAD" else a for a in args]
    quick, mods = modules_after("convert", *args, "-o", str(tmp_path / "a.jsonl"), "--json")
    assert "typer" not in mods
    code_typer = ("import sys\nsys.argv = ['ember', *sys.argv[1:]]\n"
                  "from ember.cli.main import app\napp()\n")
    via_typer = subprocess.run([sys.executable, "-c", code_typer, "convert", *args, "-o",
                                str(tmp_path / "b.jsonl"), "--json"],
                               capture_output=True, text=True, cwd=ROOT)
    assert quick.returncode == via_typer.returncode == code
    assert says in quick.stderr
    assert quick.stderr.splitlines()[-1] == via_typer.stderr.splitlines()[-1]
    assert json.loads(quick.stdout)["exit_code"] == json.loads(via_typer.stdout)["exit_code"]
