"""Scorers: response text + item -> metrics. Shared by `ember eval` and RFT rewards.

A scorer is ``score(response: str, item: Item) -> dict`` with at least ``"score"`` (the
primary metric, 0..1) and ``"extracted"`` (the answer it read from the response); it may
add more metrics (QA adds ``"em"`` and ``"f1"``). SCORERS maps names to them:

    from ember.evaluate.scoring import get_scorer
    score = get_scorer("math")               # or "qa", "code", "my_pkg.rewards:fn"
    score("... so the answer is \\boxed{72}.", item)   # {"score": 1.0, "extracted": "72"}

- ``math``: the answer inside the last ``\\boxed{}`` (else the last number) is compared
  with the gold by math-verify, so ``\\frac{1}{2}``, ``0.5`` and ``1/2`` agree.
- ``qa``: the text after the last ``Answer:`` (else the whole response) against the
  golds with SQuAD normalisation (lowercase, no punctuation, no articles); ``score`` = EM.
- lm-eval's tasks (gsm8k, gsm8k_cot, minerva_math500) are scored by lm-eval's filters and
  metrics, reproduced in ember.evaluate.lm_eval_tasks (``score_gsm8k`` and friends, named
  by dotted path): ``score`` is the first (``exact_match`` after ``strict-match``), and
  every "metric,filter" value and the filtered responses (``filtered``) are added.
- ``code``: the tests run by a harness in the sandbox (ember.evaluate.code_scoring):
  1.0 only when the harness reports that every check ran and passed (never the exit
  status), results compared as plain values; adds ``reason`` and ``sandbox`` (the
  containment mode, which `ember eval` records in results.json).

Scorers are pure and cheap, and safe to call from worker threads: math-verify's
signal-based timeout only works on the main thread, so elsewhere it is switched off.
``item.meta["extract"]`` (set by custom benchmarks) overrides how the answer is read:
an EXTRACTORS name or ``{"regex": PATTERN}`` (its first group, else the whole match, of
the last match).
"""

from __future__ import annotations

import re
import string
import threading
from collections import Counter
from functools import lru_cache
from typing import Callable

from ember.adp.dotted import load_function
from ember.evaluate.code_scoring import score_code

# --- answer extraction -------------------------------------------------------------------

_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+")
# "Answer:" where a response states its answer (the last one counts; the search agent too)
ANSWER_LABEL = re.compile(r"answer\s*:", re.IGNORECASE)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces included."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0 or text[start:i].strip("\\boxedfb ") != "":  # "\boxed 5" or no brace at all
        return None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j].strip()
    return None  # unclosed: the response was cut off


def last_number(text: str) -> str | None:
    """The last number in the text, thousands separators removed ("1,000" -> "1000")."""
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def after_answer(text: str) -> str | None:
    """The rest of the line after the last "Answer:", without markdown bold or a final dot."""
    found = list(ANSWER_LABEL.finditer(text))
    if not found:
        return None
    line = text[found[-1].end():].strip().split("\n", 1)[0]
    return line.strip().strip("*").strip().rstrip(".").strip() or None


def boxed_or_number(text: str) -> str | None:
    return last_boxed(text) or last_number(text)


def answer_or_all(text: str) -> str:
    return after_answer(text) or text.strip()


EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "boxed": last_boxed, "last_number": last_number, "answer": after_answer,
    "boxed_or_number": boxed_or_number, "answer_or_all": answer_or_all,
    "all": lambda text: text.strip(),
}


@lru_cache(maxsize=64)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.DOTALL)


def extract(text: str, how) -> str | None:
    """Apply an extractor: an EXTRACTORS name or ``{"regex": PATTERN}``."""
    if isinstance(how, dict):
        found = list(_regex(how["regex"]).finditer(text))
        if not found:
            return None
        m = found[-1]
        return (m.group(1) if m.re.groups else m.group(0)).strip()
    return EXTRACTORS[how](text)


def _extract(response: str, item, default: str) -> str | None:
    return extract(response, (getattr(item, "meta", None) or {}).get("extract", default))


def _golds(gold) -> list[str]:
    return [str(g) for g in gold] if isinstance(gold, (list, tuple)) else [str(gold)]


# --- math --------------------------------------------------------------------------------

MAX_ANSWER_CHARS = 400  # longer "answers" are rambling, and sympy on them can be slow


def math_equal(gold: str, pred: str) -> bool:
    """True when ``pred`` is mathematically the same answer as ``gold`` (math-verify)."""
    from math_verify import parse, verify

    _quiet_math_verify()
    gold, pred = gold.strip(), pred.strip()
    if _plain(gold) == _plain(pred):  # the common case needs no sympy
        return True
    if not gold or not pred or len(pred) > MAX_ANSWER_CHARS:
        return False
    # math-verify's timeout is signal.alarm, which raises off the main thread: there it
    # must be None (no timeout); the length cap above keeps such calls short.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    # Wrapping in \boxed{} makes math-verify read the whole string as one LaTeX answer.
    g = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout)
    p = parse(f"\\boxed{{{pred}}}", parsing_timeout=timeout)
    # gold first: verify is not symmetric (e.g. "x = 5" as a prediction matches gold 5).
    return bool(g and p and verify(g, p, timeout_seconds=timeout))


@lru_cache(maxsize=1)
def _quiet_math_verify() -> None:
    """math-verify warns once per process when its timeout is off; we turn it off on
    purpose (worker threads), so drop that one message and keep its other logging."""
    import logging

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(
            lambda record: not record.getMessage().startswith("Timeout is disabled"))


def _plain(s: str) -> str:
    return s.replace(" ", "").replace("$", "").replace(",", "") if _NUMBER.fullmatch(
        s.replace(" ", "").replace("$", "")) else s


def score_math(response: str, item) -> dict:
    extracted = _extract(response, item, "boxed_or_number")
    ok = extracted is not None and any(math_equal(g, extracted) for g in _golds(item.gold))
    return {"score": float(ok), "extracted": extracted}


# --- QA ----------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, squeeze spaces."""
    return " ".join(_ARTICLES.sub(" ", s.lower().translate(_PUNCT)).split())


def qa_f1(pred: str, gold: str) -> float:
    """Token-level F1 of normalised answers. As in HotpotQA's official script, yes/no
    answers only score when they match exactly (no partial credit for "no" vs "no way")."""
    p, g = normalize_answer(pred), normalize_answer(gold)
    if (p in ("yes", "no") or g in ("yes", "no")) and p != g:
        return 0.0
    common = Counter(p.split()) & Counter(g.split())
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p.split()), same / len(g.split())
    return 2 * precision * recall / (precision + recall)


def score_qa(response: str, item) -> dict:
    extracted = _extract(response, item, "answer_or_all") or ""
    golds = _golds(item.gold)
    em = max(float(normalize_answer(extracted) == normalize_answer(g)) for g in golds)
    f1 = max(qa_f1(extracted, g) for g in golds)
    return {"score": em, "em": em, "f1": f1, "extracted": extracted}


# --- registry ----------------------------------------------------------------------------


SCORERS: dict[str, Callable] = {"math": score_math, "qa": score_qa, "code": score_code}


def get_scorer(name: str) -> Callable:
    """A SCORERS name, or a dotted path to any function: ``pkg.mod.fn`` or ``pkg.mod:fn``."""
    if name in SCORERS:
        return SCORERS[name]
    return load_function(name, what="scorer", builtins=sorted(SCORERS))
