"""Code scoring: pass@k against hand-computed values, HumanEval canonical solutions pass
in the sandbox and wrong ones fail, in completion and chat form, from many threads."""

import concurrent.futures as cf
from math import comb

import pytest

from ember.evaluate.item import Item
from ember.evaluate.code_scoring import extract_code, humaneval_items, pass_at_k, score_code


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
