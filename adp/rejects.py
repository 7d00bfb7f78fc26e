"""Rejects: the one shape of "this input could not be used, and why", and where it goes.

    from ember.adp.rejects import reject, default_rejects_path, write_rejects
    bad = [reject("missing-field", "needs a non-empty 'question'", source="q.jsonl", line=3)]
    write_rejects(default_rejects_path("out.jsonl"), bad)      # -> out.rejects.jsonl

Every command that reads user data writes its rejects as JSONL lines of this shape::

    {"source": "raw.jsonl", "line": 12, "reason": "missing-field",
     "detail": "field 'id' is missing", ...context}

``reason`` is a short kebab-case code (what summaries count), ``detail`` the sentence a
person reads; ``source``/``line`` say where the input was (null when a reject is not about
one input line, e.g. a model call that failed), and any further keys are context
(``stage``, ``id``, the raw record). The rule for the default path is the same
everywhere: beside a file output ``OUT.jsonl`` it is ``OUT.rejects.jsonl``; inside a
directory output it is ``OUT/rejects.jsonl``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from ember.adp.io import atomic_writer


def reject(reason: str, detail: str, *, source: str | None = None, line: int | None = None,
           **context) -> dict:
    """One reject record (see the module docstring)."""
    return {"source": None if source is None else str(source), "line": line,
            "reason": reason, "detail": " ".join(str(detail).split())[:2000], **context}


def default_rejects_path(out: str | Path, directory: bool = False) -> str:
    """Where rejects go for output ``out``: ``OUT.rejects.jsonl`` beside a file (a trailing
    ``.jsonl`` dropped first), ``OUT/rejects.jsonl`` inside a directory output."""
    if directory:
        return str(Path(out) / "rejects.jsonl")
    if str(out) == "-":
        return "rejects.jsonl"
    p = Path(out)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return str(p.with_name(stem + ".rejects.jsonl"))


def write_rejects(path: str | Path, rejects: list[dict]) -> None:
    """Write the rejects file atomically (an empty file when there are none)."""
    with atomic_writer(path) as f:
        f.write(b"".join(orjson.dumps(r, default=str) + b"\n" for r in rejects))


def count_reasons(rejects: list[dict]) -> dict[str, int]:
    """Rejects per reason, most common first (a summary's ``rejected_by_reason``)."""
    return dict(Counter(r["reason"] for r in rejects).most_common())
