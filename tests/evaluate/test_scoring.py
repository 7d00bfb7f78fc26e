"""Math and QA scorers: equivalent forms agree, wrong answers fail, golden EM/F1 values,
and math scoring works off the main thread (where math-verify's signal timeout cannot)."""

import concurrent.futures as cf

import pytest

from ember.evaluate.item import Item
from ember.evaluate.scoring import (SCORERS, extract, get_scorer, last_boxed, last_number,
                                    normalize_answer, score_math, score_qa)


def item(gold, **meta):
    return Item(id="x", messages=[], gold=gold, meta=meta)


@pytest.mark.parametrize("response, gold", [
    ("Half of it: \\boxed{\\frac{1}{2}}", "0.5"),
    ("so it is \\boxed{0.5}.", "\\frac{1}{2}"),
    ("\\boxed{72}", "72"),
    ("She pays 1,000 dollars in total.", "1000"),          # last number, separators dropped
    ("\\boxed{1,000}", "1000"),
    ("\\boxed{10000}", "10,\\!000"),
    ("\\boxed{\\$18}", "18"),
    ("\\boxed{(3, \\pi/2)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\boxed{x = 5}", "5"),
    ("first \\boxed{3}, then correcting myself \\boxed{4}", "4"),   # the last box counts
    ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}"),
    ("\\boxed{7}", ["6", "7"]),                              # any acceptable gold
])
def test_math_accepts_equivalent_forms(response, gold):
    assert score_math(response, item(gold))["score"] == 1.0


@pytest.mark.parametrize("response, gold", [
    ("\\boxed{73}", "72"),
    ("\\boxed{0.49}", "\\frac{1}{2}"),
    ("\\boxed{(\\pi/2, 3)}", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("The answer is 72 apples, I think, or maybe 71", "72"),   # the last number is read
    ("I cannot solve this.", "72"),
])
def test_math_rejects_wrong_answers(response, gold):
    assert score_math(response, item(gold))["score"] == 0.0


def test_math_reports_what_it_extracted():
    assert score_math("so \\boxed{\\frac{a}{b}} done", item("1"))["extracted"] == "\\frac{a}{b}"
    assert score_math("no answer here", item("1")) == {"score": 0.0, "extracted": None}
    # a box cut off by the token limit is no box: the last number is read instead
    assert score_math("so 3 + 4 = 7, \\boxed{7", item("7")) == {"score": 1.0, "extracted": "7"}


def test_math_scores_from_worker_threads():
    # math-verify's timeout uses signal.alarm, which raises ValueError off the main thread
    # unless it is disabled; the sympy path (not the string shortcut) must run here.
    cases = [("\\boxed{0.5}", "\\frac{1}{2}", 1.0), ("\\boxed{18.0}", "18", 1.0),
             ("\\boxed{19}", "18", 0.0), ("\\boxed{\\sqrt{4}}", "2", 1.0)] * 10
    with cf.ThreadPoolExecutor(4) as pool:
        scores = list(pool.map(lambda c: score_math(c[0], item(c[1]))["score"], cases))
    assert scores == [c[2] for c in cases]


def test_extractors():
    assert last_boxed("x \\boxed{\\frac{1}{\\sqrt{2}}} y") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("no box") is None
    assert last_number("from 3 to -2,500.5 units") == "-2500.5"
    assert extract("Result: 42 (final)", {"regex": r"Result:\s*(\d+)"}) == "42"
    assert extract("**Answer:** Paris.\n", "answer") == "Paris"
    # a custom benchmark's extractor overrides the scorer's default
    assert score_math("\\boxed{1} ... FINAL=2", item("2", extract={"regex": r"FINAL=(\d+)"}))[
        "score"] == 1.0


def test_normalize_answer():
    assert normalize_answer("  The  Eiffel-Tower, Paris! ") == "eiffeltower paris"
    assert normalize_answer("An apple a day") == "apple day"


@pytest.mark.parametrize("response, gold, em, f1", [
    ("Answer: The Eiffel Tower", "Eiffel Tower", 1.0, 1.0),
    ("Reasoning...\nAnswer: Paris, France\n", "Paris", 0.0, 2 / 3),
    ("Answer: Barton Hazlewood", "Barton Lee Hazlewood", 0.0, 0.8),
    ("Answer: no", "yes", 0.0, 0.0),
    ("Answer: no way", "no", 0.0, 0.0),                 # yes/no: no partial credit
    ("Answer: 3,677 seated.", "3,677 seated", 1.0, 1.0),
    ("new york city", ["NYC", "New York City"], 1.0, 1.0),   # no "Answer:": whole text
    ("Answer: Ed Wood", "Scott Derrickson", 0.0, 0.0),
])
def test_qa_em_f1(response, gold, em, f1):
    result = score_qa(response, item(gold))
    assert result["em"] == result["score"] == em
    assert result["f1"] == pytest.approx(f1)


def test_qa_extracts_after_last_answer():
    r = score_qa("Answer: maybe London\nOn reflection...\nAnswer: Paris", item("Paris"))
    assert r["extracted"] == "Paris" and r["score"] == 1.0


def test_get_scorer():
    assert get_scorer("math") is SCORERS["math"] is score_math
    assert get_scorer("ember.evaluate.scoring:score_qa") is score_qa
    assert get_scorer("ember.evaluate.scoring.score_qa") is score_qa
    assert set(SCORERS) >= {"math", "qa", "code"}
    with pytest.raises(ValueError, match="unknown scorer 'maths'.*code"):
        get_scorer("maths")
    with pytest.raises(ValueError, match="has no 'nope'"):
        get_scorer("ember.evaluate.scoring:nope")
