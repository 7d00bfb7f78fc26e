"""Benchmarks: what to ask, what the right answer is, and which scorer judges it.

    from ember.evaluate.benchmarks import load_benchmark
    bench = load_benchmark("gsm8k-boxed")    # or "gsm8k" (lm-eval's), "custom:spec.yaml"
    items = bench.load()                     # list[Item]

Built-ins are a small dict of names (BENCHMARKS). lm-eval's tasks under lm-eval's names,
asked and scored exactly as lm-eval does (ember.evaluate.lm_eval_tasks): gsm8k (5-shot,
strict-match / flexible-extract), gsm8k_cot, minerva_math500. ember's own: gsm8k-boxed (the
GSM8K test set in one chat turn with a \\boxed{} answer; called gsm8k before lm-eval's task
took that name) and gsm8k-train (for training), math500, mawps, asdiv, hotpotqa (closed book), hotpotqa-context (its 10 paragraphs in the
prompt), hotpotqa-search (the search agent of ember.evaluate.agent over all paragraphs; the
runner calls ``run_agent`` for a Benchmark with ``agent=True``) and humaneval. Their data ships inside the package (``evaluate/data``, licences in
``data/LICENSES.md``). Each benchmark names its scorer (ember.evaluate.scoring.SCORERS),
which is also what RFT uses as a reward. All prompt wording lives in PROMPTS.

``custom:SPEC.yaml`` describes any local JSONL (paths relative to the spec file)::

    data: problems.jsonl            # .jsonl or .jsonl.gz
    fields: {id: uid, question: problem.text, answer: meta.final}   # dotted paths
    template: "{question}\\n\\nPut the final answer in \\\\boxed{}."  # {field} placeholders
    chat: true                      # false: one completion prompt (shots concatenated)
    system: You are a careful solver.         # optional
    fewshot: shots.jsonl            # or an inline list of records; mapped like the data
    fewshot_n: 4
    fewshot_answer: "{solution}"    # what a shot's reply shows [default: {answer}]
    extract: boxed                  # a scoring.EXTRACTORS name or {regex: '...'}
    scorer: math                    # math | qa | code | pkg.module:function
    max_new_tokens: 512
    stop: ["\\n\\nQuestion:"]

Templates use ``{name}`` placeholders — a mapped field (question, answer, solution, id)
or a dotted path into the record — and ``{{``/``}}`` for literal braces, so a Python
format string works unchanged and LaTeX such as ``\\boxed{}`` needs no escaping.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import orjson

from ember.adp.mapping import ConvertError, get_field
from ember.evaluate.agent import start_messages
from ember.evaluate.code_scoring import humaneval_items
from ember.evaluate.item import Item
from ember.evaluate.lm_eval_tasks import TASKS as LM_EVAL_TASKS, LmEvalTask, check_latex_parser
from ember.evaluate.scoring import EXTRACTORS, get_scorer
from ember.evaluate.templates import PROMPTS, render


@dataclass
class Benchmark:
    name: str
    scorer: str                      # a key of scoring.SCORERS or a dotted path
    load: Callable[[], list[Item]]   # reads the data; called once per run
    max_new_tokens: int = 512
    chat: bool = True                # False: send Item.prompt as a plain completion
    stop: list[str] = field(default_factory=list)
    description: str = ""
    agent: bool = False              # True: run the search agent (evaluate/agent.py) per item
    # A task reproduced from lm-eval (ember.evaluate.lm_eval_tasks): its name, version,
    # filters and metrics, for the lm-eval output files.
    lm_eval: LmEvalTask | None = None
    # How the items are asked and judged, recorded in every sample row when set: a run
    # directory never mixes samples of two protocols under one benchmark name (resume,
    # rescore and compare refuse them).
    protocol: str | None = None
    num_fewshot: int = 0


def _get(record: dict, path: str):
    """``record["a"]["b"]`` for "a.b" (the converters' field lookup), raising the KeyError
    the template code reports."""
    try:
        return get_field(record, path)
    except ConvertError as e:
        raise KeyError(e.detail) from None


# --- data --------------------------------------------------------------------------------


def data_file(name: str):
    """A data file shipped in the package (a Traversable: works from a wheel or a zip)."""
    return resources.files("ember.evaluate") / "data" / name


def read_jsonl(source) -> list[dict]:
    """Rows of a JSONL file (gzip if the name ends in .gz): a path or data_file(...). A line
    that is not JSON is a ValueError naming the file and the line."""
    rows = []
    with source.open("rb") as raw:
        f = gzip.GzipFile(fileobj=raw) if source.name.endswith(".gz") else raw
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError as e:
                raise ValueError(f"{source} line {number}: not valid JSON: {e.msg} (column "
                                 f"{e.colno})") from None
    return rows


# The types of a custom spec's keys (checked when the spec loads, not halfway through).
SPEC_TYPES = {"name": str, "description": str, "data": str, "fields": dict, "template": str,
              "system": str, "chat": bool, "fewshot": (list, str), "fewshot_n": int,
              "fewshot_answer": str, "extract": (str, dict), "scorer": str,
              "max_new_tokens": int, "stop": list}


def check_template(template: str, where: str) -> None:
    """ValueError for braces that are neither a placeholder, a ``{{``/``}}`` escape, nor a
    balanced pair such as ``\\boxed{}``: an unclosed ``{`` would send the literal text."""
    rest = _PLACEHOLDER_OR_ESCAPE.sub("", template)
    depth = 0
    for i, ch in enumerate(rest):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            raise ValueError(f"{where}: unbalanced '}}' in the template")
    if depth:
        raise ValueError(f"{where}: unclosed '{{' in the template (write {{{{ for a literal "
                         "brace)")


_PLACEHOLDER_OR_ESCAPE = re.compile(r"\{\{|\}\}|\{[A-Za-z_][\w.]*\}")


def clean_number(x) -> str:
    """43.0 -> "43", 0.72 -> "0.72": numeric golds as the plain strings a model writes."""
    x = float(x)
    return str(int(x)) if x.is_integer() else str(x)


def _chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _math_item(id: str, question: str, gold: str, **meta) -> Item:
    # prompt keeps the bare question: it becomes a task record's prompt (examples/data/tasks)
    return Item(id=id, messages=_chat(render(PROMPTS["math"], {"question": question})),
                gold=gold, prompt=question, meta=meta)


# --- built-ins ---------------------------------------------------------------------------


def _gsm8k_items(split: str) -> list[Item]:
    rows = read_jsonl(data_file(f"gsm8k_{split}.jsonl.gz"))
    return [_math_item(str(i), r["question"],
                       r["answer"].split("####")[-1].strip().replace(",", ""),
                       solution=r["answer"])
            for i, r in enumerate(rows)]


def _math500_items() -> list[Item]:
    return [_math_item(r["unique_id"], r["problem"], r["answer"], subject=r["subject"],
                       level=r["level"], solution=r["solution"])
            for r in read_jsonl(data_file("math500.jsonl.gz"))]


MAWPS_SUBSETS = ("addsub", "multiarith", "singleop")


def _mawps_items() -> list[Item]:
    return [_math_item(f"{subset}-{i}", r["input"], clean_number(r["target"]), subset=subset)
            for subset in MAWPS_SUBSETS
            for i, r in enumerate(read_jsonl(data_file(f"mawps_{subset}.jsonl.gz")))]


# "9 (apples)", "1,000 (dollars)", "5/2", "-(1/3)": a number or fraction, an optional unit.
_ASDIV_GOLD = re.compile(r"\s*(-?\(?-?[\d,]*\.?\d+(?:/\d+)?\)?)\s*(?:\([^()]*\))?\s*")


def _asdiv_items() -> list[Item]:
    items = []
    for r in read_jsonl(data_file("asdiv.jsonl.gz")):
        m = _ASDIV_GOLD.fullmatch(r["answer"])
        if m is None:  # names, times of day, ratios a:b, yes/no: not a math answer
            continue
        items.append(_math_item(str(r["idx"]), f"{r['body']} {r['question']}",
                                m.group(1).replace(",", ""), solution_type=r["solution_type"],
                                formula=r["formula"]))
    return items


def _hotpotqa_items(context: bool) -> list[Item]:
    items = []
    for r in read_jsonl(data_file("hotpotqa_dev_distractor_53.jsonl.gz")):
        values = {"question": r["question"]}
        if context:
            values["context"] = "\n\n".join(f"[{title}] {''.join(sentences).strip()}"
                                            for title, sentences in r["context"])
        text = render(PROMPTS["qa-context" if context else "qa"], values)
        items.append(Item(id=r["_id"], messages=_chat(text), gold=r["answer"],
                          meta={"type": r["type"], "level": r["level"]}))
    return items


def _hotpotqa_search_items() -> list[Item]:
    """The hotpotqa questions for the search agent: ``messages`` is the agent's first turn
    in the native protocol (shown in samples.jsonl); the runner starts the agent, in the
    protocol asked for, from ``meta["question"]``."""
    return [Item(id=r["_id"], messages=start_messages(r["question"]), gold=r["answer"],
                 prompt=r["question"], meta={"question": r["question"], "type": r["type"],
                                             "level": r["level"]})
            for r in read_jsonl(data_file("hotpotqa_dev_distractor_53.jsonl.gz"))]


def hotpotqa_paragraphs() -> list[dict]:
    """The 53 questions' context paragraphs, once per title, as ``{id, title, text}``: the
    default corpus of hotpotqa-search (as examples/data/search/build.py makes it)."""
    docs: dict[str, str] = {}
    for r in read_jsonl(data_file("hotpotqa_dev_distractor_53.jsonl.gz")):
        for title, sentences in r["context"]:
            docs.setdefault(title, "".join(sentences).strip())
    return [{"id": f"hp-{i:04d}", "title": t, "text": x} for i, (t, x) in enumerate(docs.items())]


def _humaneval() -> Benchmark:
    # Completion style, as in the original HumanEval: the model continues the function
    # body and stops where a new top-level block would begin.
    return Benchmark("humaneval", "code", humaneval_items, max_new_tokens=512, chat=False,
                     stop=["\nclass", "\ndef", "\n#", "\nif", "\nprint"],
                     description="HumanEval: 164 Python functions, sandboxed unit tests")


def _lm_eval(name: str) -> Benchmark:
    """lm-eval's task ``name``, reproduced (ember.evaluate.lm_eval_tasks)."""
    task, load = LM_EVAL_TASKS[name]
    if name.startswith("minerva"):
        check_latex_parser()  # fail before any model loads, not at the first score
    return Benchmark(name, f"ember.evaluate.lm_eval_tasks:{task.score.__name__}", load, max_new_tokens=256, chat=False,
                     stop=list(task.until), lm_eval=task, num_fewshot=task.num_fewshot,
                     protocol=f"lm-eval {name} {task.version}",
                     description=LM_EVAL_DESCRIPTIONS[name])


LM_EVAL_DESCRIPTIONS = {
    "gsm8k": "lm-eval's gsm8k: GSM8K test, 5-shot from train, exact_match (strict-match, "
             "flexible-extract)",
    "gsm8k_cot": "lm-eval's gsm8k_cot: GSM8K test, 8 fixed chain-of-thought shots, "
                 "exact_match (strict-match, flexible-extract)",
    "minerva_math500": "lm-eval's minerva_math500: MATH-500, 4 Minerva shots, exact_match "
                       "and math_verify",
}


BENCHMARKS: dict[str, Callable[[], Benchmark]] = {
    **{name: (lambda name=name: _lm_eval(name)) for name in LM_EVAL_TASKS},
    "gsm8k-boxed": lambda: Benchmark(
        "gsm8k-boxed", "math", lambda: _gsm8k_items("test"),
        description="GSM8K test (1,319), asked in one chat turn for a \\boxed{} answer "
                    "(ember's protocol; lm-eval's is gsm8k)"),
    "gsm8k-train": lambda: Benchmark("gsm8k-train", "math", lambda: _gsm8k_items("train"),
                                     description="GSM8K train (7,473): RFT tasks, not eval"),
    "math500": lambda: Benchmark("math500", "math", _math500_items, max_new_tokens=1024,
                                 description="MATH-500: competition problems, 5 levels"),
    "mawps": lambda: Benchmark("mawps", "math", _mawps_items,
                               description="MAWPS AddSub + MultiArith + SingleOp (1,557)"),
    "asdiv": lambda: Benchmark("asdiv", "math", _asdiv_items,
                               description="ASDiv problems with a numeric answer (2,093)"),
    "hotpotqa": lambda: Benchmark("hotpotqa", "qa", lambda: _hotpotqa_items(False),
                                  max_new_tokens=256,
                                  description="HotpotQA dev, 53 questions, closed book"),
    "hotpotqa-context": lambda: Benchmark(
        "hotpotqa-context", "qa", lambda: _hotpotqa_items(True), max_new_tokens=256,
        description="HotpotQA dev, 53 questions with their 10 paragraphs"),
    "hotpotqa-search": lambda: Benchmark(
        "hotpotqa-search", "qa", _hotpotqa_search_items, max_new_tokens=256, agent=True,
        description="HotpotQA dev, 53 questions, answered by the search agent over their "
                    "521 paragraphs (BM25); max_new_tokens is per step"),
    "humaneval": _humaneval,
}


def load_benchmark(name: str) -> Benchmark:
    """A built-in by name, or ``custom:SPEC.yaml``; ValueError for anything else."""
    if name.startswith("custom:"):
        return custom_benchmark(name[len("custom:"):], name=name)
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}: built-ins are "
                         f"{', '.join(BENCHMARKS)}; or custom:SPEC.yaml for a local JSONL")
    return BENCHMARKS[name]()


# --- custom:SPEC.yaml --------------------------------------------------------------------

SPEC_KEYS = {"name", "description", "data", "fields", "template", "system", "chat",
             "fewshot", "fewshot_n", "fewshot_answer", "extract", "scorer",
             "max_new_tokens", "stop"}
FIELD_KEYS = {"id", "question", "answer", "solution"}


def custom_benchmark(spec_path: str | Path, name: str | None = None) -> Benchmark:
    """Build a Benchmark from a YAML spec; every mistake in the spec is a ValueError that
    names the spec and what is wrong, raised here rather than halfway through a run."""
    import yaml

    spec_path = Path(spec_path)
    where = f"benchmark spec {spec_path}"
    if not spec_path.is_file():
        raise ValueError(f"{where}: file not found")
    try:
        spec = yaml.safe_load(spec_path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML: {e}") from e
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a mapping of keys, got {type(spec).__name__}")
    if unknown := set(spec) - SPEC_KEYS:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
    if "data" not in spec:
        raise ValueError(f"{where}: 'data' (the JSONL file) is required")
    if not isinstance(spec.get("fields") or {}, dict):
        raise ValueError(f"{where}: 'fields' must map id/question/answer/solution to paths")
    fields = {"question": "question", "answer": "answer", **(spec.get("fields") or {})}
    if unknown := set(fields) - FIELD_KEYS:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}; "
                         f"allowed: {sorted(FIELD_KEYS)}")
    data = spec_path.parent / spec["data"]
    if not data.is_file():
        raise ValueError(f"{where}: data file {data} not found")
    scorer = str(spec.get("scorer", "math"))
    get_scorer(scorer)  # raises ValueError with the choices
    extract = spec.get("extract")
    if extract is not None:
        if isinstance(extract, dict) and set(extract) == {"regex"}:
            try:
                re.compile(extract["regex"])
            except re.error as e:
                raise ValueError(f"{where}: bad extract regex: {e}") from e
        elif not (isinstance(extract, str) and extract in EXTRACTORS):
            raise ValueError(f"{where}: extract must be one of {sorted(EXTRACTORS)} "
                             "or {regex: PATTERN}")
    for key, kind in SPEC_TYPES.items():
        value = spec.get(key)
        if value is not None and (not isinstance(value, kind) or (
                kind is int and isinstance(value, bool))):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ValueError(f"{where}: '{key}' should be {want}, got {type(value).__name__} "
                             f"{value!r}")
    if not all(isinstance(s, str) for s in spec.get("stop") or []):
        raise ValueError(f"{where}: 'stop' should be a list of strings")
    template = spec.get("template", "{question}")
    shot_answer = spec.get("fewshot_answer", "{answer}")
    check_template(template, f"{where} template")
    check_template(shot_answer, f"{where} fewshot_answer")
    chat = bool(spec.get("chat", True))
    system = spec.get("system")

    def rows_of(path: Path) -> list[tuple[str, dict]]:
        return [(f"{path.name} line {i}", r) for i, r in enumerate(read_jsonl(path), 1)]

    def values(record: dict, origin: str) -> dict:
        try:
            mapped = {k: _get(record, path) for k, path in fields.items()}
        except KeyError as e:
            raise ValueError(f"{where}: {origin}: {e.args[0]}") from None
        return {**record, **mapped}

    def fill(text: str, vals: dict, origin: str) -> str:
        try:
            return render(text, vals)
        except KeyError as e:
            raise ValueError(f"{where}: {origin}: template placeholder {e.args[0]}") from None

    def load() -> list[Item]:
        shots = spec.get("fewshot") or []
        if isinstance(shots, str):
            shots = rows_of(spec_path.parent / shots)
        else:
            shots = [(f"fewshot {i}", r) for i, r in enumerate(shots, 1)]
        shots = shots[:spec["fewshot_n"]] if spec.get("fewshot_n") else shots
        turns = []  # (question text, reply text) of each shot
        for origin, record in shots:
            vals = values(record, origin)
            turns.append((fill(template, vals, origin), fill(shot_answer, vals, origin)))
        head = [{"role": "system", "content": system}] if system else []
        for q, a in turns:
            head += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        prefix = "".join(f"{q}{a}\n\n" for q, a in turns)
        items = []
        for n, (origin, record) in enumerate(rows_of(data)):
            vals = values(record, origin)
            text = fill(template, vals, origin)
            gold = vals["answer"]
            gold = [_gold(g) for g in gold] if isinstance(gold, list) else _gold(gold)
            meta = {"extract": extract} if extract is not None else {}
            items.append(Item(id=str(vals["id"]) if "id" in fields else str(n),
                              messages=head + _chat(text), gold=gold,
                              prompt=(f"{system}\n\n" if system else "") + prefix + text,
                              meta=meta))
        if len({it.id for it in items}) != len(items):
            raise ValueError(f"{where}: ids are not unique")
        return items

    # Fail here, not halfway through a run: an empty data file, or a placeholder the
    # records do not have, would otherwise score nothing or every prompt wrongly.
    rows = rows_of(data)
    if not rows:
        raise ValueError(f"{where}: data file {data} holds no records")
    fill(template, values(rows[0][1], rows[0][0]), rows[0][0])
    return Benchmark(name or f"custom:{spec_path}", scorer, load,
                     max_new_tokens=int(spec.get("max_new_tokens", 512)), chat=chat,
                     stop=list(spec.get("stop") or []),
                     description=spec.get("description", spec.get("name", spec_path.stem)))


def _gold(value) -> str:
    return clean_number(value) if isinstance(value, (int, float)) and not isinstance(
        value, bool) else str(value)
