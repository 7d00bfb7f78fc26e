"""A SQLite cache of LLM calls: a finished call is stored once and never sent again.

    from ember.llm.cache import Cache, cache_key, model_identity
    cache = Cache("tasks.jsonl.cache.sqlite")
    key = cache_key(model_identity("smollm2"), [{"role": "user", "content": "2+3?"}],
                    SamplingParams())
    cache.get(key)                      # None, or the stored completions (a list of dicts)
    cache.put(key, [{"text": "5", "tokens": 2, "finish_reason": "stop"}])

One table, key -> JSON list of completions. The database runs in WAL mode with
`synchronous=NORMAL`: every `put` is its own committed transaction, so a process killed
at any moment keeps every call it had finished (only a power cut can lose the last few).
One connection is shared by all threads behind a lock: the openai backend finishes calls
on an asyncio loop that may run in a helper thread, and other threads may read meanwhile.

The key is a sha256 of a canonical JSON of the model's identity, the prompt and every
sampling field (n, seed, stop included); nothing else goes in, so API keys and endpoint
URLs never reach the file. The identity (`model_identity`) is what the model *is*, not
what it is called: for a local model directory (the embedded `smollm2` resolves to one) a
sha256 over the names, sizes and contents of its model files, so a directory retrained in
place is another model and its old completions are never replayed; for anything else (a
served model's name, a hub id) the name itself. Hashing reads every byte (about 0.7 s per
500 MB), so compute the identity once and key every prompt with it, as
`ember.llm.client.LLM` does (once per object, on its first cached call).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time

KEY_VERSION = 2  # bump when the key recipe changes, so old rows are simply never hit

# The files of a model directory that make up the model: weights, configs, tokenizer, chat
# template, remote code. Other files (a README, logs, outputs or this very cache written
# next to the model) are left out, and so are the optimizer/scheduler/RNG state of a
# training checkpoint: none changes what the model answers.
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".model",
                       ".txt", ".jinja", ".tiktoken", ".py")
TRAINING_STATE_PREFIXES = ("optimizer", "scheduler", "rng_state")


def model_identity(model: str, *, embedded: bool = True) -> str:
    """What cache keys call `model`: "files:<sha256>" of its model files when `model` is a
    local file or directory (an embedded name resolves to its materialised directory when
    `embedded`; a served model's name does not), else `model` itself.

    The sha256 covers each model file's name, size and sha256 content; the path itself is
    left out, so a copy of the same model shares its cache. Reading every byte costs about
    0.7 s per 500 MB (less than loading the model does), so compute it once and reuse it.
    """
    if embedded:
        from ember.llm.models import EMBEDDED, resolve_model

        if model in EMBEDDED:
            model = resolve_model(model)
    path = os.path.expanduser(model)
    if os.path.isfile(path):
        files = [path]
    elif os.path.isdir(path):
        files = sorted(entry.path for entry in os.scandir(path)
                       if entry.is_file() and entry.name.endswith(MODEL_FILE_SUFFIXES)
                       and not entry.name.startswith(TRAINING_STATE_PREFIXES))
    else:
        files = []
    if not files:  # not local (or nothing in it a loader would read): the name is all we know
        return model
    entries = [[os.path.basename(f), os.path.getsize(f), _sha256_file(f)] for f in files]
    blob = json.dumps(entries, separators=(",", ":")).encode()
    return "files:" + hashlib.sha256(blob).hexdigest()


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(model: str, prompt: list[dict] | str, params) -> str:
    """sha256 hex of (model, prompt, all fields of `params`) in canonical JSON; `model` is
    the model's identity, `model_identity(name)` (a plain name stands for itself)."""
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
