"""lm-eval's own tasks, reproduced: the same prompts, few-shot examples, stop strings,
filters and metrics as lm-evaluation-harness, under lm-eval's task names.

    from ember.evaluate.benchmarks import load_benchmark
    bench = load_benchmark("gsm8k")             # lm-eval's gsm8k: 5-shot, strict-match
    bench.lm_eval.name, bench.lm_eval.version   # "gsm8k", 3.0

Reproduced from lm-eval 0.4.13's task YAMLs (no lm-eval import at run time):

- ``gsm8k`` (version 3.0): ``Question: {question}\\nAnswer:``; 5 shots from the train
  split drawn by lm-eval's default sampler (``random.Random(1234)``, lm-eval's default
  ``fewshot_random_seed``, one ``sample(train, 5)`` per test document in document order:
  a ``--limit N`` run asks exactly the prompts lm-eval's ``--limit N`` asks); each shot is
  ``Question: ...\\nAnswer: <full solution ending in #### N>`` and shots are joined by a
  blank line; greedy, stop at ``Question:``, ``</s>``, ``<|im_end|>``, 256 new tokens.
  ``exact_match`` with two filters: ``strict-match`` (``#### (-?[0-9.,]+)``, first match)
  and ``flexible-extract`` (``(-?[$0-9.,]{2,})|(-?[0-9]+)``, last match); before
  comparing, ``,``, ``$``, everything up to ``#### `` and a final ``.`` are removed from
  both sides and both are lowercased.
- ``gsm8k_cot`` (version 3.0): ``Q: {question}\\nA:`` after lm-eval's 8 fixed
  chain-of-thought exemplars; stop at ``Q:``; ``strict-match`` reads
  ``The answer is (-?[0-9.,]+).``; the gold is the number after ``####``.
- ``minerva_math500`` (version 3.1): ``Problem:\\n{problem}\\n\\nSolution:`` after the 4
  fixed Minerva exemplars (each solution ends "Final Answer: The final answer is $X$. I
  hope it is correct."); stop at ``Problem:``. ``exact_match``: the text between "Final
  Answer: The final answer is" and ". I hope it is correct." normalised as in Minerva
  (Lewkowycz et al. 2022, appendix D, as lm-eval 0.4.13 amends it) against the
  normalised boxed answer of the reference solution: equal strings, or sympy's LaTeX
  parser (antlr4-python3-runtime 4.11) finds the difference simplifies to 0.
  ``math_verify``: math-verify's ``verify(parse(solution), parse(response))``.

Each task's scorer returns ember's metrics (``score`` is the first filter's / metric's
value) plus lm-eval's per-filter values under lm-eval's keys (``exact_match,strict-match``)
and the filtered responses, which the lm-eval output files (ember.evaluate.lm_eval_output)
need. The few-shot exemplars ship in ``data/lm_eval_fewshot.json`` (provenance inside).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import signal
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Callable

from ember.evaluate.item import Item

LM_EVAL_VERSION = "0.4.13"  # the lm-eval whose task YAMLs these reproduce
FEWSHOT_SEED = 1234         # lm-eval's default --fewshot_random_seed
MAX_GEN_TOKS = 256          # lm-eval's default max_gen_toks for generate_until
FALLBACK = "[invalid]"      # what lm-eval's regex filter yields when nothing matches


@dataclass
class LmEvalTask:
    """What lm-eval's results file says about a task, and how ember reproduces it."""

    name: str
    version: float
    num_fewshot: int
    until: list[str]
    filters: list[str]                       # filter names, in lm-eval's order
    metrics: list[str]                       # metric names (all mean, higher is better)
    config: dict                             # lm-eval's "configs" entry (as it writes it)
    score: Callable[[str, Item], dict] = field(repr=False, default=None)

    def keys(self) -> list[tuple[str, str]]:
        """(metric, filter) pairs, as lm-eval's results keys them ("metric,filter")."""
        return [(m, f) for f in self.filters for m in self.metrics]


# --- the data ----------------------------------------------------------------------------


def _data(name: str):
    return resources.files("ember.evaluate") / "data" / name


def _rows(name: str) -> list[dict]:
    """The records of a shipped .jsonl.gz data file."""
    with _data(name).open("rb") as raw, gzip.GzipFile(fileobj=raw) as f:
        return [json.loads(line) for line in f if line.strip()]


@lru_cache(maxsize=1)
def fewshot_data() -> dict:
    return json.loads(_data("lm_eval_fewshot.json").read_text())


def _gsm8k_docs(split: str) -> list[dict]:
    return [{"question": r["question"], "answer": r["answer"]}
            for r in _rows(f"gsm8k_{split}.jsonl.gz")]


def _context(shots: list[tuple[str, str]], question: str) -> str:
    """lm-eval's plain-text context: each shot is its text, " ", its target, "\\n\\n";
    then the document's text with nothing after it."""
    return "".join(f"{q} {a}\n\n" for q, a in shots) + question


def seeded_shots(n_docs: int, pool: int, k: int, seed: int = FEWSHOT_SEED) -> list[list[int]]:
    """lm-eval's default sampler: one Random(seed), ``sample(pool, k)`` per document in
    document order (indices into the pool)."""
    rnd = random.Random(seed)
    return [rnd.sample(range(pool), k) for _ in range(n_docs)]


# --- filters and metrics -----------------------------------------------------------------


def regex_filter(text: str, pattern: str, group_select: int = 0) -> str:
    """lm-eval's ``regex`` filter then ``take_first`` on one response: the match at
    ``group_select`` of all matches (of a pattern with several groups, its first
    non-empty group), stripped; ``[invalid]`` when nothing matches."""
    found = _compiled(pattern).findall(text if isinstance(text, str) else "")
    if not found:
        return FALLBACK
    hit = found[group_select]
    if isinstance(hit, tuple):
        hit = next((g for g in hit if g), FALLBACK)
    return hit.strip()


@lru_cache(maxsize=32)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


GSM8K_IGNORE = [",", r"\$", r"(?s).*#### ", r"\.$"]


def exact_match(pred: str, ref: str, ignore: list[str], ignore_case: bool = True) -> float:
    """lm-eval's ``exact_match``: drop each ``regexes_to_ignore`` pattern from both sides
    (in order), lowercase both when ``ignore_case``, and compare."""
    for pattern in ignore:
        pred, ref = _compiled(pattern).sub("", pred), _compiled(pattern).sub("", ref)
    if ignore_case:
        pred, ref = pred.lower(), ref.lower()
    return float(pred == ref)


def _filtered_scorer(filters: dict[str, tuple[str, int]]) -> Callable[[str, Item], dict]:
    def score(response: str, item: Item) -> dict:
        filtered = {name: regex_filter(response, pattern, group)
                    for name, (pattern, group) in filters.items()}
        metrics = {f"exact_match,{name}": exact_match(value, item.gold, GSM8K_IGNORE)
                   for name, value in filtered.items()}
        first = next(iter(filters))
        return {"score": metrics[f"exact_match,{first}"], **metrics,
                "extracted": filtered[first], "filtered": filtered}
    return score


_FLEXIBLE = (r"(-?[$0-9.,]{2,})|(-?[0-9]+)", -1)
score_gsm8k = _filtered_scorer({"strict-match": (r"#### (\-?[0-9\.\,]+)", 0),
                                "flexible-extract": _FLEXIBLE})
score_gsm8k_cot = _filtered_scorer({"strict-match": (r"The answer is (\-?[0-9\.\,]+).", 0),
                                    "flexible-extract": _FLEXIBLE})
score_gsm8k.__name__, score_gsm8k_cot.__name__ = "score_gsm8k", "score_gsm8k_cot"


# --- Minerva math ------------------------------------------------------------------------

# Appendix D of Lewkowycz et al. 2022 (Minerva), as lm-eval 0.4.13 applies it.
_SUBSTITUTIONS = [("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), (r"\ ", ""), (" ", ""),
                  ("mbox", "text"), (",\\text{and}", ","), ("\\text{and}", ","),
                  ("\\text{m}", "\\text{}")]
_REMOVED = ["square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km",
            "units", "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents",
            "degrees", "cm", "gm", "pounds", "meters", "meals", "edges", "students",
            "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}",
            "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}", r"\mathrm{th}", r"^\circ",
            r"^{\circ}", r"\;", r",\!", "{,}", '"', "\\dots"]
_LATEX_COMMAND = re.compile(r"(\\[a-zA-Z]+)")
_THOUSANDS = re.compile(r"-?\d{1,3}(,\d{3})+")


def minerva_normalize(answer: str) -> str:
    """A final answer as Minerva's appendix D normalises it (lm-eval 0.4.13's version)."""
    s = answer.split("=")[-1]
    words = [w for w in _REMOVED if w.isalpha()]
    for w in words:  # unit words, while spaces still delimit them (not inside \left)
        s = re.sub(rf"(?<!\\)\b{w}\b", "", s)
    for old, new in _SUBSTITUTIONS:
        s = s.replace(old, new)
    for w in _REMOVED:
        if w.isalpha():  # glued units, outside LaTeX command names
            parts = _LATEX_COMMAND.split(s)
            s = "".join(p.replace(w, "") if i % 2 == 0 else p for i, p in enumerate(parts))
        else:
            s = s.replace(w, "")
    s = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", s)
    for command in ("text", "textbf", "overline"):
        s = re.sub(rf"(\\{command}\{{)(.*?)(\}})", "\\2", s)
    s = re.sub(r"(\\boxed\{)(.*)(\})", "\\2", s)
    s = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", s)
    s = re.sub(r"(sqrt)(\[[^\]]*\])(\w)", "\\1\\2{\\3}", s)
    s = re.sub(r"(sqrt)(?!\[)([^{])", "sqrt{\\2}", s)
    s = s.replace("$", "")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    return s


def last_boxed_raw(text: str) -> str | None:
    """The last ``\\boxed{...}`` (or ``\\boxed X`` up to a ``$``, or ``\\fbox{...}``) with
    its command, as Minerva's reference answers are read; None if there is none."""
    if "\\boxed " in text:
        return "\\boxed " + text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[start:j + 1]
    return None


def unbox(boxed: str) -> str:
    if boxed.startswith("\\boxed "):
        return boxed[len("\\boxed "):]
    if not (boxed.startswith("\\boxed{") and boxed.endswith("}")):
        raise ValueError(f"not a \\boxed{{}} answer: {boxed[:60]!r}")
    return boxed[len("\\boxed{"):-1]


_FINAL = re.compile(r"Final Answer: The final answer is(.*?). I hope it is correct.")


def minerva_answer(response: str) -> str:
    """The answer a response states in Minerva's format, or ``[invalidanswer]``."""
    m = _FINAL.search(response + "I hope it is correct.")
    return m.group(1).strip() if m else "[invalidanswer]"


def _sympy_equal(a: str, b: str) -> bool:
    import sympy
    from sympy.parsing.latex import parse_latex
    from sympy.parsing.latex.errors import LaTeXParsingError

    try:
        x, y = parse_latex(a), parse_latex(b)
    except (LaTeXParsingError, sympy.SympifyError, TypeError):
        return False
    try:
        diff = x - y
    except TypeError:
        return False
    try:
        return bool(sympy.simplify(diff) == 0)
    except ValueError:
        return False


def minerva_equiv(a: str, b: str, timeout_s: int = 5) -> bool:
    """Minerva's equivalence of two normalised answers: the same string, or sympy finds
    their LaTeX difference simplifies to 0. Any failure or a timeout (on the main thread,
    as lm-eval's signal-based one; none elsewhere) is False."""
    if a and a == b:
        return True
    on_main = threading.current_thread() is threading.main_thread()
    if on_main:
        def alarm(signum, frame):
            raise TimeoutError
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.alarm(timeout_s)
    try:
        return _sympy_equal(a, b)
    except ImportError:
        raise
    except Exception:  # noqa: BLE001 - lm-eval counts any failure as "not equal"
        return False
    finally:
        if on_main:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


def check_latex_parser() -> None:
    """ValueError unless sympy's LaTeX parser works (it needs antlr4 4.11 exactly)."""
    try:
        from sympy.parsing.latex import parse_latex

        parse_latex("1")
    except ImportError as e:
        raise ValueError("minerva_math500 scores exact_match as lm-eval does, with sympy's "
                         "LaTeX parser, which needs antlr4-python3-runtime 4.11 (math-verify "
                         "works with it too): pip install 'antlr4-python3-runtime==4.11' or "
                         f"pip install 'ember[bench]' ({e})") from None


def math_verify_score(solution: str, response: str) -> float:
    """lm-eval's ``math_verify`` metric: math-verify's default parse of the whole reference
    solution and the whole response, then verify(gold, target)."""
    from math_verify import parse, verify

    from ember.evaluate.scoring import _quiet_math_verify

    _quiet_math_verify()
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    gold = parse(solution, parsing_timeout=timeout)
    target = parse(response, parsing_timeout=timeout)
    return float(bool(verify(gold=gold, target=target, timeout_seconds=timeout)))


def score_minerva(response: str, item: Item) -> dict:
    answer = minerva_normalize(minerva_answer(response))
    em = float(minerva_equiv(answer, item.gold))
    mv = math_verify_score(item.meta["doc"]["solution"], response)
    return {"score": em, "exact_match,none": em, "math_verify,none": mv, "extracted": answer,
            "filtered": {"none": response}}


# --- the tasks ---------------------------------------------------------------------------


def _gsm8k_config(name: str, text: str, target: str, until: list[str], filters: list,
                  num_fewshot: int, fewshot: dict) -> dict:
    return {"task": name, "tag": ["math_word_problems"] if name == "gsm8k" else
            ["chain_of_thought"], "dataset_path": "openai/gsm8k", "dataset_name": "main",
            **({"training_split": "train"} if name == "gsm8k" else {}),
            "test_split": "test", **({"fewshot_split": "train"} if name == "gsm8k" else {}),
            "doc_to_text": text, "doc_to_target": target, "description": "",
            "target_delimiter": " ", "fewshot_delimiter": "\n\n", "fewshot_config": fewshot,
            "num_fewshot": num_fewshot,
            "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                             "higher_is_better": True, "ignore_case": True,
                             "ignore_punctuation": False, "regexes_to_ignore": GSM8K_IGNORE}],
            "output_type": "generate_until",
            "generation_kwargs": {"until": until, "do_sample": False, "temperature": 0.0},
            "repeats": 1, "filter_list": filters, "should_decontaminate": False,
            "metadata": {"version": 3.0}}


def _filter_list(strict: str) -> list[dict]:
    return [{"name": "strict-match", "filter": [{"function": "regex", "regex_pattern": strict},
                                                {"function": "take_first"}]},
            {"name": "flexible-extract", "filter": [
                {"function": "regex", "group_select": -1, "regex_pattern": _FLEXIBLE[0]},
                {"function": "take_first"}]}]


GSM8K = LmEvalTask(
    "gsm8k", 3.0, 5, ["Question:", "</s>", "<|im_end|>"], ["strict-match", "flexible-extract"],
    ["exact_match"], _gsm8k_config(
        "gsm8k", "Question: {{question}}\nAnswer:", "{{answer}}",
        ["Question:", "</s>", "<|im_end|>"], _filter_list(r"#### (\-?[0-9\.\,]+)"), 5,
        {"sampler": "default", "split": "train", "samples": None,
         "doc_to_text": "Question: {{question}}\nAnswer:", "doc_to_target": "{{answer}}",
         "fewshot_delimiter": "\n\n", "target_delimiter": " "}), score_gsm8k)

GSM8K_COT = LmEvalTask(
    "gsm8k_cot", 3.0, 8, ["Q:", "</s>", "<|im_end|>"], ["strict-match", "flexible-extract"],
    ["exact_match"], _gsm8k_config(
        "gsm8k_cot", "Q: {{question}}\nA:",
        "{{answer.split('####')[-1].strip() if answer is defined else target}}",
        ["Q:", "</s>", "<|im_end|>"], _filter_list(r"The answer is (\-?[0-9\.\,]+)."), 8,
        {"sampler": "first_n", "samples": "8 chain-of-thought exemplars (Wei et al. 2022)"}),
    score_gsm8k_cot)

MINERVA_MATH500 = LmEvalTask(
    "minerva_math500", 3.1, 4, ["Problem:"], ["none"], ["exact_match", "math_verify"],
    {"task": "minerva_math500", "tag": ["math_word_problems"],
     "dataset_path": "HuggingFaceH4/MATH-500", "dataset_name": "default", "test_split": "test",
     "process_docs": "minerva_math.utils.process_docs", "doc_to_text": "Problem:\n{problem}\n\n"
     "Solution:", "doc_to_target": "{{answer if few_shot is undefined else solution}}",
     "process_results": "minerva_math.utils.process_results", "description": "",
     "target_delimiter": " ", "fewshot_delimiter": "\n\n",
     "fewshot_config": {"sampler": "first_n", "samples": "4 Minerva exemplars"},
     "num_fewshot": 4,
     "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True},
                     {"metric": "math_verify", "aggregation": "mean", "higher_is_better": True}],
     "output_type": "generate_until",
     "generation_kwargs": {"until": ["Problem:"], "do_sample": False, "temperature": 0},
     "repeats": 1, "should_decontaminate": False, "metadata": {"version": 3.1}},
    score_minerva)


def gsm8k_items() -> list[Item]:
    train, test = _gsm8k_docs("train"), _gsm8k_docs("test")
    picks = seeded_shots(len(test), len(train), GSM8K.num_fewshot)
    items = []
    for i, (doc, shots) in enumerate(zip(test, picks)):
        context = _context([(f"Question: {train[j]['question']}\nAnswer:", train[j]["answer"])
                            for j in shots], f"Question: {doc['question']}\nAnswer:")
        items.append(_item(i, doc, context, doc["answer"]))
    return items


def gsm8k_cot_items() -> list[Item]:
    shots = [(f"Q: {s['question']}\nA:", s["target"]) for s in fewshot_data()["gsm8k_cot"]]
    return [_item(i, doc, _context(shots, f"Q: {doc['question']}\nA:"),
                  doc["answer"].split("####")[-1].strip())
            for i, doc in enumerate(_gsm8k_docs("test"))]


def minerva_math500_items() -> list[Item]:
    shots = [(f"Problem:\n{s['problem']}\n\nSolution:", s["solution"])
             for s in fewshot_data()["minerva_math"]]
    items = []
    for i, r in enumerate(_rows("math500.jsonl.gz")):
        # lm-eval's process_docs replaces the answer by the normalised boxed one
        answer = minerva_normalize(unbox(last_boxed_raw(r["solution"])))
        doc = {**r, "answer": answer}
        items.append(_item(i, doc, _context(shots, f"Problem:\n{r['problem']}\n\nSolution:"),
                           answer))
    return items


def _item(i: int, doc: dict, context: str, target: str) -> Item:
    return Item(id=str(i), messages=[{"role": "user", "content": context}], gold=target,
                prompt=context, meta={"doc": doc, "doc_id": i})


TASKS = {"gsm8k": (GSM8K, gsm8k_items), "gsm8k_cot": (GSM8K_COT, gsm8k_cot_items),
         "minerva_math500": (MINERVA_MATH500, minerva_math500_items)}
