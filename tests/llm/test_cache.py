"""The SQLite call cache: round trip, key recipe, WAL mode, many threads writing, and the
model identity in the key (a model directory retrained in place is asked again)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import os
import shutil
import threading

import pytest

import ember.llm.cache as cache_module
from ember.llm.backends import Completion, SamplingParams, make_backend
from ember.llm.cache import Cache, cache_key, model_identity
from ember.llm.client import LLM

CHAT = [{"role": "user", "content": "What is 2+3?"}]


def test_round_trip_persists_and_counts(tmp_path):
    path = tmp_path / "c.sqlite"
    done = [{"text": "5 — fünf", "tokens": 3, "finish_reason": "stop"}]
    with Cache(path) as cache:
        assert cache.get("k") is None
        cache.put("k", done)
        assert cache.get("k") == done
        assert cache.stats == {"hits": 1, "misses": 1}
    with Cache(path) as again:  # a new process would see the same
        assert again.get("k") == done and len(again) == 1


def test_key_is_stable_across_processes_and_ignores_dict_order():
    params = SamplingParams(n=2, temperature=0.7, stop=["\n"])
    key = cache_key("smollm2", CHAT, params)
    assert len(key) == 64 and key == cache_key("smollm2", CHAT, params)
    assert key == cache_key("smollm2", [{"content": "What is 2+3?", "role": "user"}], params)
    code = ("from ember.llm.backends import SamplingParams; from ember.llm.cache import cache_key;"
            f"print(cache_key('smollm2', {CHAT!r}, SamplingParams(n=2, temperature=0.7, stop=['\\n'])))")
    # another interpreter, another hash seed: the same key
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert other.stdout.strip() == key


def test_key_changes_with_model_prompt_and_every_sampling_field():
    base = SamplingParams()
    variants = [
        cache_key("smollm2", CHAT, base),
        cache_key("other-model", CHAT, base),
        cache_key("smollm2", [{"role": "user", "content": "What is 2+4?"}], base),
        cache_key("smollm2", [{"role": "system", "content": "What is 2+3?"}], base),
        cache_key("smollm2", "What is 2+3?", base),  # a raw prompt is not the chat
        *(cache_key("smollm2", CHAT, SamplingParams(**{name: value})) for name, value in
          [("n", 2), ("temperature", 0.5), ("top_p", 0.9), ("max_new_tokens", 7), ("seed", 1),
           ("stop", ["\n"])]),
    ]
    assert len(set(variants)) == len(variants)


def test_wal_mode_and_normal_sync(tmp_path):
    with Cache(tmp_path / "c.sqlite") as cache:
        cache.put("k", [])
        assert cache._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        other = sqlite3.connect(tmp_path / "c.sqlite")
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert (tmp_path / "c.sqlite-wal").exists()
        other.close()


def test_many_threads_write_and_read_at_once(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    errors = []

    def work(t):
        try:
            for i in range(50):
                cache.put(f"{t}-{i}", [{"text": f"{t}:{i}", "tokens": i, "finish_reason": "stop"}])
                assert cache.get(f"{t}-{i}")[0]["text"] == f"{t}:{i}"
        except Exception as e:  # surfaced below; a thread's exception is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache.close()
    assert errors == []
    # everything committed, seen from a fresh connection
    db = sqlite3.connect(tmp_path / "c.sqlite")
    assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 400
    db.close()


# ---------------------------------------------------------------- the model's identity

class CountingBackend:
    """Answers every prompt with a fresh text (named after the model it stands for) and
    records what it was asked."""

    def __init__(self, name="v1"):
        self.name, self.asked = name, []

    def generate(self, prompts, params, on_progress=None, on_result=None):
        out = []
        for j, prompt in enumerate(prompts):
            self.asked.append(prompt)
            out.append([Completion(f"{self.name} answer {len(self.asked)}", 2, "stop")])
            if on_result:
                on_result(j, out[-1])
        return out


@pytest.fixture
def model_dir(tmp_path):
    """A stand-in model directory: a config and a weights file (the cache never loads them)."""
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "llama", "hidden_size": 8}')
    (path / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    return path


def ask(model, cache_path, name="v1", prompts=(CHAT,)):
    backend = CountingBackend(name)
    with LLM(backend, model=str(model), cache=Cache(cache_path)) as llm:
        results = llm.generate(list(prompts), SamplingParams())
    return backend, results


def test_an_unchanged_model_directory_hits_across_llm_objects(model_dir, tmp_path):
    cache = tmp_path / "c.sqlite"
    first, before = ask(model_dir, cache)
    assert len(first.asked) == 1 and not before[0].cached
    second, after = ask(model_dir, cache)
    assert second.asked == [] and after[0].cached and after[0].text == before[0].text
    # a copy of the same files elsewhere is the same model
    copy = shutil.copytree(model_dir, tmp_path / "copy")
    third, again = ask(copy, cache)
    assert third.asked == [] and again[0].text == before[0].text


@pytest.mark.parametrize("retrain", ["new bytes", "same size, other bytes",
                                     "same size and mtime, other bytes", "config"])
def test_a_model_retrained_in_place_is_asked_again(model_dir, tmp_path, retrain):
    cache = tmp_path / "c.sqlite"
    _, before = ask(model_dir, cache)
    weights = model_dir / "model.safetensors"
    old = weights.stat()
    if retrain == "new bytes":
        weights.write_bytes(b"\x01" * (old.st_size + 8))
    elif retrain.startswith("same size"):
        data = bytearray(weights.read_bytes())
        data[old.st_size // 2] ^= 0xFF  # one byte flipped
        weights.write_bytes(bytes(data))
        if "mtime" in retrain:  # as `cp -p`, `rsync -a` or a coarse-clock filesystem leave it
            os.utime(weights, ns=(old.st_atime_ns, old.st_mtime_ns))
            assert weights.stat().st_mtime_ns == old.st_mtime_ns
        assert weights.stat().st_size == old.st_size
    else:
        (model_dir / "config.json").write_text('{"model_type": "llama", "hidden_size": 16}')
    backend, after = ask(model_dir, cache, name="v2")
    assert len(backend.asked) == 1 and not after[0].cached
    assert before[0].text == "v1 answer 1" and after[0].text == "v2 answer 1"  # not replayed
    with Cache(cache) as c:
        assert len(c) == 2  # both models' answers are kept; neither replaces the other


def test_identity_is_the_model_files_not_the_rest_of_the_directory(model_dir, tmp_path):
    ident = model_identity(str(model_dir))
    assert ident.startswith("files:") and len(ident) == len("files:") + 64
    assert str(model_dir) not in ident and str(tmp_path) not in ident
    # what a run writes next to the model (its output, this cache, a README) changes nothing
    (model_dir / "tasks.jsonl").write_text("{}\n")
    Cache(model_dir / "tasks.jsonl.cache.sqlite").close()
    (model_dir / "README.md").write_text("notes")
    assert model_identity(str(model_dir)) == ident
    # a tokenizer or chat template does: it changes the prompt the model sees
    (model_dir / "chat_template.jinja").write_text("{{ messages }}")
    assert model_identity(str(model_dir)) != ident


def test_a_name_that_is_not_a_local_path_stands_for_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert model_identity("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert model_identity("gpt-4o-mini") == "gpt-4o-mini"
    # a served model called like the embedded one is not the local embedded model
    assert model_identity("smollm2", embedded=False) == "smollm2"
    served = LLM(make_backend("openai", "smollm2", base_url="http://127.0.0.1:9/v1"),
                 model="smollm2", cache=Cache(tmp_path / "c.sqlite"))
    assert served.identity == "smollm2"
    served.close()


def test_the_embedded_model_is_named_by_its_materialised_files(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBER_CACHE", str(tmp_path / "ember"))
    target = tmp_path / "ember" / "models" / "smollm2"  # already materialised: not rebuilt
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"weights v1")
    ident = model_identity("smollm2")
    assert ident.startswith("files:") and ident == model_identity(str(target))
    (target / "model.safetensors").write_bytes(b"weights v2")
    assert model_identity("smollm2") != ident


def test_identity_is_hashed_once_per_llm_and_only_with_a_cache(model_dir, tmp_path, monkeypatch):
    hashed = []
    real = cache_module._sha256_file
    monkeypatch.setattr(cache_module, "_sha256_file", lambda path: hashed.append(path) or real(path))
    backend = CountingBackend()
    with LLM(backend, model=str(model_dir), cache=Cache(tmp_path / "c.sqlite")) as llm:
        for k in range(3):
            llm.generate([[{"role": "user", "content": f"q{k}"}]], SamplingParams())
    assert len(hashed) == 2 and len(backend.asked) == 3  # config.json and the weights, once
    hashed.clear()
    LLM(backend, model=str(model_dir)).generate([CHAT], SamplingParams())
    assert hashed == []  # no cache, no identity needed
