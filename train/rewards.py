"""Reward functions for GRPO, by name: the eval scorers turned into TRL reward functions.

    from ember.train.rewards import load_rewards
    funcs = load_rewards("math,format")     # TRL calls f(prompts, completions, **task columns)

- `math`: 1.0 when the completion's final answer (\\boxed{} or last number) equals the
  task's `answer` by math-verify, else 0.0 (evaluate/scoring.py, the same as `ember eval`).
- `qa`: token F1 of the extracted answer ("Answer: ...") against `answer` (SQuAD style).
- `code`: 1.0 when the code passes the task's `tests` in the sandbox.
- `auto`: each task by its own `scorer` field (math, qa or code), for mixed task files.
- `format`: 1.0 when the completion gives its answer in the form the prompt asked for
  (\\boxed{} for math tasks, an "Answer:" line for qa, a ```python block for code).
- a dotted path `pkg.mod:fn` to any TRL-style reward function.

Each task's own `scorer` field picks the prompt wording (`task_item`); the reward names
pick how completions are scored, so `--reward qa` on math tasks scores them as QA.
"""

from __future__ import annotations

import json
import re
from typing import Callable

from ember.adp.dotted import load_function
from ember.evaluate.item import Item
from ember.evaluate.scoring import get_scorer


def _text(completion) -> str:
    """The policy's final message. Conversational completions are a list of messages: one
    assistant turn, or (with --env search) assistant turns with tool calls, the tool
    messages, and the last assistant turn. Only that last turn is scored: tool messages
    hold search results, which may contain the gold answer the policy did not give."""
    if isinstance(completion, list):
        said = [m for m in completion if isinstance(m, dict) and m.get("role", "assistant") == "assistant"]
        return (said[-1].get("content") or "") if said else ""
    return str(completion)


def _item(answer, tests=None) -> Item:
    # Tests travel as JSON text: a datasets column can't hold dicts of differing shapes.
    return Item(id="", messages=[], gold=json.loads(tests) if tests else answer)


def scorer_reward(name: str) -> Callable:
    """The eval scorer `name` as a reward function (qa returns F1, the rest `score`)."""
    score = get_scorer(name)
    key = "f1" if name == "qa" else "score"

    def reward(prompts, completions, answer=None, tests=None, **_) -> list[float]:
        golds = answer if answer is not None else [None] * len(completions)
        tests = tests if tests is not None else [None] * len(completions)
        return [float(score(_text(c), _item(g, t)).get(key, 0.0)) if g is not None or t else 0.0
                for c, g, t in zip(completions, golds, tests)]

    reward.__name__ = name
    return reward


_FORMATS = {
    "math": re.compile(r"\\boxed\{.+?\}", re.S),
    "qa": re.compile(r"^\s*\**answer\**\s*:\s*\S", re.I | re.M),
    "code": re.compile(r"```(?:python|py)?\s*\n.+?```", re.S),
}


def auto_reward(prompts, completions, scorer=None, **columns) -> list[float]:
    """Each task scored by its own `scorer` field (math when absent): for mixed task files."""
    kinds = scorer if scorer is not None else ["math"] * len(completions)
    out = [0.0] * len(completions)
    for kind in set(k or "math" for k in kinds):
        rows = [i for i, k in enumerate(kinds) if (k or "math") == kind]
        got = _SCORER_REWARDS.setdefault(kind, scorer_reward(kind))(
            [prompts[i] for i in rows] if len(prompts) == len(completions) else prompts,
            [completions[i] for i in rows],
            **{c: [v[i] for i in rows] for c, v in columns.items()
               if isinstance(v, list) and len(v) == len(completions)})
        for i, r in zip(rows, got):
            out[i] = r
    return out


_SCORER_REWARDS: dict[str, Callable] = {}
auto_reward.__name__ = "auto"


def format_reward(prompts, completions, scorer=None, **_) -> list[float]:
    """1.0 when the answer comes in the form the task's prompt asked for."""
    kinds = scorer if scorer is not None else ["math"] * len(completions)
    return [float(bool(_FORMATS.get(k or "math", _FORMATS["math"]).search(_text(c))))
            for c, k in zip(completions, kinds)]


format_reward.__name__ = "format"


def load_reward(name: str) -> Callable:
    if name in ("math", "qa", "code"):
        return scorer_reward(name)
    if name == "format":
        return format_reward
    if name == "auto":
        return auto_reward
    return load_function(name, what="reward", builtins=["math", "qa", "code", "auto", "format"])


def load_rewards(names: str) -> list[Callable]:
    funcs = [load_reward(n.strip()) for n in names.split(",") if n.strip()]
    if not funcs:
        raise ValueError("--reward names no reward function")
    return funcs
