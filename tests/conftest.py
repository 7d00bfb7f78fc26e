import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

pytest_plugins = ["tests.served_model"]


def make_tiny_llama(path: Path, max_position_embeddings: int = 1024) -> Path:
    """A 2-layer, 64-wide Llama with the embedded model's tokenizer and chat template and
    random weights (seeded), saved to ``path``: trains and generates in a fraction of a
    second per step, for tests of machinery rather than of learning."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ember.llm.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2"))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=max_position_embeddings, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def run_ember(*args, check=True, env=None, **kw):
    """Call the CLI as a user does: a subprocess running the installed `ember` entry point."""
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("COLUMNS", "200")
    proc = subprocess.run([sys.executable, "-m", "ember.cli.main", *map(str, args)],
                          capture_output=True, text=True, env=full_env, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"ember {' '.join(map(str, args))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def kill_ember_when(marker, *args, timeout=300):
    """Run `ember ARGS` in its own process group and SIGKILL the group as soon as the path
    `marker` exists: a real interruption at a known point. Fails if the run ends or the
    timeout passes first."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen([sys.executable, "-m", "ember.cli.main", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert marker.exists(), f"{marker} did not appear before the run ended or timed out"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture
def ember():
    return run_ember


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2-layer random Llama with the embedded model's tokenizer (make_tiny_llama)."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny_model"))


def pytest_collection_modifyitems(config, items):
    import importlib.util

    has_cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        has_cuda = torch.cuda.is_available()
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
