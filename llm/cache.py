"""A SQLite cache of LLM calls: a finished call is stored once and never sent again.

    from ember.llm.cache import Cache, cache_key
    cache = Cache("tasks.jsonl.cache.sqlite")
    key = cache_key("smollm2", [{"role": "user", "content": "2+3?"}], SamplingParams())
    cache.get(key)                      # None, or the stored completions (a list of dicts)
    cache.put(key, [{"text": "5", "tokens": 2, "finish_reason": "stop"}])

One table, key -> JSON list of completions. The database runs in WAL mode with
`synchronous=NORMAL`: every `put` is its own committed transaction, so a process killed
at any moment keeps every call it had finished (only a power cut can lose the last few).
One connection is shared by all threads behind a lock: the openai backend finishes calls
on an asyncio loop that may run in a helper thread, and other threads may read meanwhile.

The key is a sha256 of a canonical JSON of the model name, the prompt and every sampling
field (n, seed, stop included); nothing else goes in, so API keys and endpoint URLs never
reach the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time

KEY_VERSION = 1  # bump when the key recipe changes, so old rows are simply never hit


def cache_key(model: str, prompt: list[dict] | str, params) -> str:
    """sha256 hex of (model, prompt, all fields of `params`) in canonical JSON."""
    fields = dataclasses.asdict(params)
    fields["stop"] = list(fields.get("stop") or [])
    blob = json.dumps({"v": KEY_VERSION, "model": model, "prompt": prompt, "params": fields},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class Cache:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if os.path.dirname(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._lock = threading.Lock()
        # autocommit mode (isolation_level=None): each statement commits on its own
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, "
                         "completions TEXT NOT NULL, created REAL NOT NULL)")
        self.stats = {"hits": 0, "misses": 0}

    def get(self, key: str) -> list[dict] | None:
        with self._lock:
            row = self._db.execute("SELECT completions FROM calls WHERE key = ?", (key,)).fetchone()
            self.stats["hits" if row else "misses"] += 1
        return json.loads(row[0]) if row else None

    def put(self, key: str, completions: list[dict]) -> None:
        blob = json.dumps(completions, ensure_ascii=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?)",
                             (key, blob, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
