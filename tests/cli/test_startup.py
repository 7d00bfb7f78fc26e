"""Start-up: `ember --help` imports only the standard library, `ember convert` (its help
and a real run) only what convert needs; the listing `ember --help` prints from
cli/main.py's table matches every command's own help; completion and --version work.

Which modules are imported is asserted, not how long it took (timings: docs/ and the
issue; `python -X importtime -m ember.cli.main convert --help`).
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, ROOT

# a command's module imported only when that command is used
OTHER_COMMANDS = {"ember.cli.validate", "ember.cli.eval", "ember.cli.synth", "ember.cli.train",
                  "ember.cli.bench"}
# what convert never needs: models, datasets, endpoints, and the layers above adp
HEAVY = {"torch", "transformers", "datasets", "numpy", "openai", "trl", "pyarrow",
         "ember.llm", "ember.evaluate", "ember.synth", "ember.train"}


def modules_after(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, set]:
    """Run `ember ARGS` in a fresh interpreter; the modules it had imported at the end."""
    code = ("import json, sys\n"
            f"sys.argv = ['ember', *{list(args)!r}]\n"
            "from ember.cli.main import main\n"
            "code = 0\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "sys.stdout.flush()\n"
            "sys.stderr.write('\\n@@' + json.dumps(sorted(sys.modules)))\n"
            "sys.exit(code)\n")
    import os

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, COLUMNS="100", **(env or {})))
    head, _, mods = proc.stderr.rpartition("\n@@")
    proc.stderr = head
    return proc, set(json.loads(mods))


def loaded(mods: set, names: set) -> set:
    return {m for m in mods if m in names or m.split(".")[0] in names
            or any(m.startswith(n + ".") for n in names)}


@pytest.fixture(scope="module")
def interpreter_modules() -> set:
    out = subprocess.run([sys.executable, "-c", "import sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_ember_help_imports_only_the_standard_library(interpreter_modules):
    from ember.cli.main import COMMANDS

    proc, mods = modules_after("--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "Commands:" in proc.stdout
    assert all(f"  {name} " in proc.stdout for name in COMMANDS)
    assert "--install-completion" in proc.stdout and "--version" in proc.stdout
    new = {m.split(".")[0] for m in mods - interpreter_modules}
    assert new - set(sys.stdlib_module_names) == {"ember"}, new - set(sys.stdlib_module_names)
    assert {m for m in mods if m.startswith("ember.")} == {"ember.cli", "ember.cli.main",
                                                          "ember.cli.help"}
    # no arguments: the same help, exit 2 as click does
    bare, mods = modules_after()
    assert bare.returncode == 2 and bare.stdout == proc.stdout and "typer" not in mods


@pytest.mark.parametrize("name", ["convert", "validate"])
def test_a_command_help_imports_that_command_and_no_cli_framework(name):
    """`ember convert --help` is rendered by cli/help.py from the config alone: typer,
    rich and pydantic are not imported (they were ~120 ms of its ~160 ms of imports)."""
    proc, mods = modules_after(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: ember " + name in proc.stdout and "Example" in proc.stdout
    assert {f"ember.cli.{name}", f"ember.adp.{name}"} <= mods
    assert loaded(mods, (OTHER_COMMANDS - {f"ember.cli.{name}"}) | HEAVY) == set()
    assert loaded(mods, {"typer", "rich", "click", "pydantic"}) == set()


@pytest.mark.parametrize("args", [["convert"], ["validate"], ["train"], ["eval"],
                                  ["eval", "compare"], ["synth"]])
def test_help_through_typer_is_the_same_page(args):
    """The page typer prints (a command's help after other flags, with no arguments, a
    group's help) is cli/help.py's, from the same config fields and text."""
    from typer.testing import CliRunner

    from ember.cli.help import command_help
    from ember.cli.main import app, command_help_text, load_command

    result = CliRunner().invoke(app, [*args, "--help"], prog_name="ember",
                                env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    command = load_command(args[0])
    for name in args[1:]:
        command = command.commands[name]
    if args[0] in ("convert", "validate"):  # the page main() prints without typer
        assert result.stdout == command_help_text(args[0], page=100)
    expected = command_help("ember " + " ".join(args), command.help, command.config,
                            [(n, " ".join(c.help.split("\n\n")[0].split()))
                             for n, c in getattr(command, "commands", {}).items()], page=100)
    assert result.stdout == expected
    # every option typer would parse is on the page, by every spelling
    for param in command.params:
        if getattr(param, "param_type_name", "") == "option":
            for spelling in [*param.opts, *param.secondary_opts]:
                assert spelling in result.stdout, (args, spelling)


def test_a_real_convert_run_imports_only_what_convert_needs(tmp_path):
    raw = FIXTURES / "adp" / "agenttuning_os" / "sample_raw.json"
    out = tmp_path / "os.jsonl"
    proc, mods = modules_after("convert", str(raw), "--from", "agenttuning_os", "-o", str(out),
                               "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["produced"] > 0 and out.stat().st_size > 0
    assert loaded(mods, OTHER_COMMANDS | HEAVY) == set()
    # option values are checked by cli/options.py's Coerce: typer would import pydantic
    # for them, the largest part of a small run's time
    assert "pydantic" not in mods


@pytest.mark.parametrize("args, says", [
    (["--max-reject-rate", "2"], "'--max-reject-rate': 2 is not in the range 0.0 to 1.0."),
    (["--max-reject-rate", "x"], "'--max-reject-rate': 'x' is not a valid number."),
    (["--max-reject-rate", "0.25", "--workers", "2", "--no-resume"], "--out"),
])
def test_option_values_are_checked_without_pydantic(args, says):
    """Values are typed and bounded as the config field says, with click's usage error."""
    proc, mods = modules_after("convert", "in.jsonl", *args)
    assert proc.returncode == 2 and says in " ".join(proc.stderr.replace("│", " ").split())
    assert "pydantic" not in mods


def test_validate_bounds_an_integer():
    proc, _ = modules_after("validate", "x.jsonl", "--show", "-1")
    assert proc.returncode == 2 and "'--show': -1 is not at least 0." in proc.stderr
    proc, _ = modules_after("validate", "x.jsonl", "--show", "1.5")
    assert proc.returncode == 2 and "'1.5' is not a valid integer." in proc.stderr


def test_the_listing_matches_each_commands_own_help():
    """COMMANDS's one-line help is the first paragraph of the command's real help, and
    OPTIONS are the root's real options: the table in cli/main.py cannot drift."""
    import typer.main
    from typer._click import Context

    from ember.cli.main import COMMANDS, OPTIONS, app, load_command

    for name, (_module, line) in COMMANDS.items():
        command = load_command(name)
        assert " ".join(command.help.split("\n\n")[0].split()) == line, name
    root = typer.main.get_command(app)
    assert list(root.commands) == list(COMMANDS)
    ctx = Context(root, info_name="ember")
    assert [(p.opts[0], " ".join(p.help.split())) for p in root.get_params(ctx)] == OPTIONS


def test_help_through_typer_is_the_same_listing():
    from typer.testing import CliRunner

    from ember.cli.main import app, help_text

    result = CliRunner().invoke(app, ["--help"], prog_name="ember", env={"COLUMNS": "100"})
    assert result.exit_code == 0
    assert result.stdout == help_text("ember", 100)


def test_version_and_shell_completion():
    fast, mods = modules_after("--version")
    assert fast.stdout.startswith("ember ") and "typer" not in mods
    through_typer, mods = modules_after("--version", "--help")  # eager: typer answers
    assert through_typer.stdout == fast.stdout and "typer" in mods
    # the shell asks for completions: names from the table, no command module imported ...
    words, mods = modules_after(env={"_EMBER_COMPLETE": "complete_bash",
                                     "COMP_WORDS": "ember con", "COMP_CWORD": "1"})
    assert words.stdout.split() == ["convert"], words.stderr
    assert "ember.cli.convert" not in mods
    # ... and a command's options by importing only that command
    words, mods = modules_after(env={"_EMBER_COMPLETE": "complete_bash",
                                     "COMP_WORDS": "ember convert --wor", "COMP_CWORD": "2"})
    assert words.stdout.split() == ["--workers"], words.stderr
    assert "ember.cli.convert" in mods and loaded(mods, OTHER_COMMANDS) == set()
    script, _ = modules_after("--show-completion", "bash",
                              env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0 and "_EMBER_COMPLETE=complete_bash" in script.stdout, script.stderr
