"""One question as a model is asked it, and what counts as its right answer.

    from ember.evaluate.item import Item
    Item(id="q1", messages=[{"role": "user", "content": "What is 3 + 4?"}], gold="7")

Benchmarks (ember.evaluate.benchmarks) and task records (ember.evaluate.tasks) both
become Items; scorers (ember.evaluate.scoring) judge a response against one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Item:
    """``messages`` is the chat prompt (``prompt`` the raw text for completion-style
    benchmarks such as humaneval); ``gold`` is what the scorer compares with: a string, a
    list of acceptable strings, or for code a dict of tests. ``meta`` carries per-item
    scoring options (``extract``, ``timeout``) and whatever a report should keep."""

    id: str
    messages: list[dict]
    gold: Any
    prompt: str | None = None
    meta: dict = field(default_factory=dict)
