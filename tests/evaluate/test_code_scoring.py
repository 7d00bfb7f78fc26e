"""Code scoring: pass@k against hand-computed values, HumanEval canonical solutions pass
in the sandbox and wrong ones fail, in completion and chat form, from many threads; and
the verdict cannot be forged: early exits, lying results and smuggled statements score
0 with their own reason, the same as the RFT `code` reward."""

import concurrent.futures as cf
import json
from math import comb

import pytest

from ember.evaluate.item import Item
from ember.evaluate.code_scoring import (build_program, extract_code, humaneval_items,
                                         pass_at_k, score_code)
from ember.evaluate.sandbox import isolation

LIAR = ("    class _Liar:\n        def __eq__(self, other): return True\n"
        "        def __ne__(self, other): return False\n    return _Liar()\n")


@pytest.fixture(scope="module")
def problems():
    return {item.id: item for item in humaneval_items()}


@pytest.mark.parametrize("n, c, k, expected", [
    (10, 3, 1, 0.3),
    (10, 3, 2, 1 - 21 / 45),      # 1 - C(7,2)/C(10,2)
    (5, 0, 3, 0.0),
    (5, 5, 1, 1.0),
    (4, 2, 3, 1.0),               # fewer failures than k: every 3-subset has a pass
    (200, 1, 100, 0.5),           # 1 - C(199,100)/C(200,100) = 100/200
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_exact_binomials_and_stays_finite():
    for n in range(1, 30):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - comb(n - c, k) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    assert 0.0 < pass_at_k(2000, 3, 1000) <= 1.0   # comb() of these would overflow a float
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)


def test_humaneval_items_are_complete(problems):
    assert len(problems) == 164
    item = problems["HumanEval/0"]
    assert item.prompt.startswith("from typing import List")
    assert item.gold["entry_point"] == "has_close_elements" and "def check(" in item.gold["test"]
    assert item.prompt in item.messages[0]["content"]


@pytest.mark.parametrize("task", ["HumanEval/0", "HumanEval/10", "HumanEval/32", "HumanEval/53"])
def test_canonical_completion_passes(problems, task):
    item = problems[task]
    result = score_code(item.meta["canonical_solution"], item)
    assert result["score"] == 1.0, result["reason"]


def test_chat_answer_with_whole_function_in_a_fence_passes(problems):
    item = problems["HumanEval/10"]   # its prompt defines a helper the answer relies on
    reply = ("Here is my solution:\n\n```python\ndef make_palindrome(string: str) -> str:\n"
             + item.meta["canonical_solution"] + "```\n\nIt appends the reversed prefix.")
    result = score_code(reply, item)
    assert result["score"] == 1.0, result["reason"]
    assert result["extracted"].startswith("def make_palindrome")


def test_completion_is_cut_at_the_next_top_level_statement(problems):
    item = problems["HumanEval/53"]   # add(x, y)
    result = score_code("    return x + y\n\nprint(add(1, 2))\nraise SystemExit(1)\n", item)
    assert result["score"] == 1.0, result["reason"]


def test_wrong_solution_fails(problems):
    item = problems["HumanEval/53"]
    result = score_code("    return x - y\n", item)
    assert result["score"] == 0.0 and "AssertionError" in result["reason"]


def test_mbpp_style_asserts():
    item = Item(id="sq", messages=[], gold={"tests": ["assert square(3) == 9",
                                                      "assert square(-2) == 4"]})
    assert score_code("```python\ndef square(x):\n    return x * x\n```", item)["score"] == 1.0
    assert score_code("```python\ndef square(x):\n    return 2 * x\n```", item)["score"] == 0.0


def test_extract_code_prefers_python_fences():
    text = "```bash\npip install x\n```\nthen\n```python\nprint(1)\n```\n```\nplain\n```"
    assert extract_code(text) == "print(1)\n"
    assert extract_code("```\nplain\n```") == "plain\n"
    assert extract_code("```python\ncut off") == "cut off"
    assert extract_code("    return 1\n") == "    return 1\n"


def test_twenty_programs_scored_concurrently(problems):
    item = problems["HumanEval/53"]
    responses = ["    return x + y\n" if i % 2 == 0 else "    return x * y\n" for i in range(20)]
    with cf.ThreadPoolExecutor(max_workers=20) as pool:
        scores = list(pool.map(lambda r: score_code(r, item)["score"], responses))
    assert scores == [1.0 if i % 2 == 0 else 0.0 for i in range(20)]


def _score_all(items, response_of):
    with cf.ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda it: score_code(response_of(it), it), items))


def test_every_canonical_solution_passes_and_every_lie_fails(problems):
    """All 164: the canonical solution scores 1; an object whose __eq__ always says yes
    (which passed 157 of them when the exit code decided) scores 0 on every one."""
    items = list(problems.values())
    honest = _score_all(items, lambda it: it.meta["canonical_solution"])
    assert [it.id for it, r in zip(items, honest) if r["score"] != 1.0] == []
    lies = _score_all(items, lambda it: LIAR)
    assert [it.id for it, r in zip(items, lies) if r["score"] != 0.0] == []
    assert all(r["reason"].startswith("non-plain-result") for r in lies)
    assert {r["sandbox"] for r in honest + lies} == {isolation()}


@pytest.mark.parametrize("body, reason", [
    ("    import os; os._exit(0)\n", "exited-before-checks"),
    ("    import sys; sys.exit(0)\n", "exited-before-checks"),
    ("    raise SystemExit\n", "exited-before-checks"),
    ("    import threading, os, time\n    threading.Timer(0.05, os._exit, (0,)).start()\n"
     "    time.sleep(2)\n", "exited-before-checks"),
    ("    import signal, os, time\n    signal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
     "    signal.setitimer(signal.ITIMER_REAL, 0.05)\n    time.sleep(2)\n", "exited-before-checks"),
    ("    import atexit, os\n    atexit.register(os._exit, 0)\n    return 0\n", "AssertionError"),
    ("    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n", "exited-before-checks"),
])
def test_exiting_early_never_passes(problems, body, reason):
    result = score_code(body, problems["HumanEval/53"])
    assert result["score"] == 0.0 and result["reason"].startswith(reason), result


@pytest.mark.parametrize("returned", ["type('I', (int,), {'__eq__': lambda s, o: True})(5)",
                                      "[__import__('fractions').Fraction(5)]",
                                      "(lambda: 5)"])
def test_results_must_be_plain_values(problems, returned):
    result = score_code(f"    return {returned}\n", problems["HumanEval/53"])
    assert result["score"] == 0.0 and result["reason"].startswith("non-plain-result"), result


def test_plain_values_of_every_kind_cross_intact():
    value = "(1, -0.0, 2 ** 200, 'é\\ud800', b'\\x00', None, True, {(1, 2): [3]}, {4}, frozenset(), 1j)"
    item = Item(id="kinds", messages=[], gold={
        "entry_point": "f", "test": f"def check(candidate):\n    got = candidate()\n"
                                    f"    assert got == {value}, got\n"
                                    "    assert type(got[2]) is int and str(got[1]) == '-0.0'\n"})
    assert score_code(f"```python\ndef f():\n    return {value}\n```", item)["score"] == 1.0


def test_exceptions_come_back_as_builtin_types():
    item = Item(id="raises", messages=[], gold={
        "entry_point": "root", "test": "def check(candidate):\n    assert candidate(4) == 2\n"
        "    try:\n        candidate(-1)\n    except ValueError:\n        pass\n"
        "    else:\n        raise AssertionError('no ValueError')\n"})
    good = "```python\ndef root(x):\n    if x < 0:\n        raise ValueError('negative')\n    return int(x ** 0.5)\n```"
    assert score_code(good, item)["score"] == 1.0
    bad = "```python\ndef root(x):\n    if x < 0:\n        raise KeyError('negative')\n    return int(x ** 0.5)\n```"
    result = score_code(bad, item)
    assert result["score"] == 0.0 and "KeyError" in result["reason"], result


def test_benchmark_with_objects_opts_out_of_plain_results():
    prompt = ("class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
              "    def __eq__(self, o):\n        return (self.x, self.y) == (o.x, o.y)\n\n"
              "def mid(a, b):\n    \"\"\"The midpoint.\"\"\"\n")
    gold = {"entry_point": "mid", "test": "def check(candidate):\n"
            "    assert candidate(Point(0, 0), Point(2, 4)) == Point(1, 2)\n"}
    body = "    return Point((a.x + b.x) / 2, (a.y + b.y) / 2)\n"
    plain = score_code(body, Item(id="p", messages=[], gold=gold, prompt=prompt))
    assert plain["score"] == 0.0 and plain["reason"].startswith("non-plain-argument"), plain
    opted = score_code(body, Item(id="p", messages=[], prompt=prompt,
                                  gold={**gold, "plain_results": False}))
    assert opted["score"] == 1.0, opted
    early = score_code("    import os; os._exit(0)\n", Item(
        id="p", messages=[], prompt=prompt, gold={**gold, "plain_results": False}))
    assert early["score"] == 0.0 and early["reason"].startswith("exited-before-checks"), early


def test_statements_smuggled_past_the_function_body_are_removed(problems):
    item = problems["HumanEval/53"]
    # line 0 of a completion at column 0 is a new top-level statement, not the body
    prog = build_program("import os; os._exit(0)\n", item)
    assert prog["dropped"] == 2 and "_exit" not in prog["source"]
    result = score_code("import os; os._exit(0)\n", item)
    assert result["score"] == 0.0 and "AssertionError" in result["reason"], result
    chat = ("```python\ndef add(x, y):\n    return x - y\n\nif __name__ == '__main__':\n"
            "    import os\n    os._exit(0)\n```")
    assert build_program(chat, item)["dropped"] == 1
    assert "AssertionError" in score_code(chat, item)["reason"]


def test_syntax_error_scores_zero_without_running(problems):
    result = score_code("    return x +\n", problems["HumanEval/53"])
    assert result["score"] == 0.0 and result["reason"].startswith("syntax-error"), result


def test_rft_code_reward_gives_the_same_verdict():
    from ember.train.rewards import load_reward

    reward = load_reward("code")
    tests = json.dumps({"entry_point": "add", "test": "def check(candidate):\n"
                        "    assert candidate(2, 3) == 5\n"})
    good = "```python\ndef add(x, y):\n    return x + y\n```"
    exits = "```python\ndef add(x, y):\n    import os; os._exit(0)\n```"
    liar = "```python\ndef add(x, y):\n" + LIAR + "```"
    got = reward(["p"] * 3, [good, exits, liar], tests=[tests] * 3)
    assert got == [1.0, 0.0, 0.0]
