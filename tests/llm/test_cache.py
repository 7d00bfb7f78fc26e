"""The SQLite call cache: round trip, key recipe, WAL mode, many threads writing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

from ember.llm.backends import SamplingParams
from ember.llm.cache import Cache, cache_key

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
