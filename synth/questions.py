"""MindGYM-style question synthesis: an LLM writes challenging multi-hop questions, and
quality control keeps the good ones as verifiable task records.

    ember synth questions --categories math,logic --n 20 -o tasks.jsonl

Reading top to bottom, one round of the pipeline (Xu et al. 2025, "MindGYM"):

1. Thinking-process injection: every generation stage runs under a system prompt of
   cognitive objectives (prompts/cognitive_objectives.md, or --system-prompt FILE).
2. Seed single-hop synthesis: for each candidate "slot" a category, a topic and a
   relation type (bridging / comparison / temporal) are picked in turn, and the model
   writes a short background document plus a few linked single-hop questions
   (prompts/seed_category.md). With --seeds the documents come from the user (records
   with `text`, or existing QA items with `question`/`answer`) and the model only writes
   the questions (prompts/seed_document.md).
3. Multi-hop composition: the sub-questions are combined into one question, with the
   model's thinking and the answer, in a labelled plain-text format (prompts/compose.md).
4. Structured extraction: the labelled text is read by rule; where the labels are
   missing, the LLM extracts {question, answer, thinking} as schema-checked JSON
   (prompts/extract.md, `LLM.generate_json`). The result becomes a task record
   (schemas/task.schema.json) with scorer `math` for numeric math answers, else `qa`.
5. Quality control: near-duplicate removal (TF-IDF cosine, synth/dedup.py, also against
   questions kept in earlier rounds); an LLM judge scores clarity, answerability,
   multi-hop depth and correctness 1-5, and every dimension must reach --min-score
   (prompts/judge.md); the answer-consistency check re-solves the question exactly as
   `ember eval` / RFT will ask it (`task_item`) and keeps it only when the eval scorer
   agrees with the gold answer.

Rounds repeat with new slots until --n questions pass or --max-rounds is reached. Every
reject is kept with its stage and reason. Slots, prompts and seeds are deterministic, and
every LLM call goes through the cache: a rerun (or a resumed killed run) sends nothing
already answered and writes the same output.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import orjson

from ember.adp.io import iter_units, output_lock, write_json, write_jsonl
from ember.adp.rejects import default_rejects_path, reject, write_rejects
from ember.evaluate import templates
from ember.evaluate.scoring import get_scorer
from ember.evaluate.tasks import task_item
from ember.evaluate.templates import render
from ember.adp.config import opt, section
from ember.adp.summary import Summary
from ember.llm.backends import SamplingParams
from ember.llm.client import LLMConfig, make_llm, max_new_tokens_opt, seed_opt, temperature_opt
from ember.schemas import load_schema
from ember.synth.dedup import cosine, near_duplicates

DEFAULT_CATEGORIES = ["math", "science", "logic", "procedures", "history", "ethics",
                      "economics", "psychology"]

# Topics make each slot's prompt different, so greedy decoding still gives variety.
TOPICS = {
    "math": ["prices and discounts", "speed and travel time", "ages of people",
             "areas of rooms", "sharing items equally", "savings over months"],
    "science": ["the solar system", "states of matter", "the human body", "plants",
                "electricity", "animals and habitats"],
    "logic": ["who sits where", "true and false statements", "ordering people by height",
              "matching people to jobs", "days of the week", "family relations"],
    "procedures": ["baking bread", "changing a tyre", "planting a tree",
                   "making tea", "setting up a tent", "washing clothes"],
    "history": ["ancient Egypt", "the Roman Empire", "the printing press",
                "the first flights", "famous explorers", "the industrial revolution"],
    "ethics": ["honesty at work", "sharing resources", "keeping promises",
               "fairness in games", "helping strangers", "animal welfare"],
    "economics": ["supply and demand", "interest on savings", "a lemonade stand",
                  "taxes", "trade between countries", "inflation"],
    "psychology": ["memory", "habits", "motivation", "sleep", "stress", "learning"],
}

RELATIONS = {
    "bridging": "the answer to Q1 is a thing that Q2 asks about, so Q2 can only be "
                "answered after Q1.",
    "comparison": "the questions ask for the same property of different things, so that "
                  "their answers can be compared.",
    "temporal": "the questions ask when things happened, so that their order in time can "
                "be worked out.",
}

# One worked example per relation, shown to the model as an earlier turn of the chat at
# the seed and composition stages (small models follow a shown reply far better than a
# described one). A question copied from it is rejected.
EXAMPLES = {
    "bridging": dict(
        category="history", topic="famous scientists",
        document="Marie Curie was born in Warsaw in 1867. Warsaw is the capital of Poland "
                 "and lies on the Vistula river.",
        pairs=[("In which city was Marie Curie born?", "Warsaw"),
               ("On which river does Warsaw lie?", "The Vistula")],
        thinking="Marie Curie was born in Warsaw. Warsaw lies on the Vistula.",
        question="On which river lies the city where Marie Curie was born?",
        answer="The Vistula"),
    "comparison": dict(
        category="science", topic="rivers",
        document="The Nile is about 6,650 km long. The Amazon is about 6,400 km long. "
                 "Both rivers end in the sea.",
        pairs=[("How long is the Nile?", "6650 km"), ("How long is the Amazon?", "6400 km")],
        thinking="The Nile is about 6650 km long and the Amazon about 6400 km. "
                 "6650 is more than 6400.",
        question="Which river is longer, the Nile or the Amazon?", answer="The Nile"),
    "temporal": dict(
        category="history", topic="the printing press",
        document="Gutenberg built his printing press around 1440. The first printed "
                 "newspaper appeared in 1605 in Strasbourg.",
        pairs=[("When did Gutenberg build his printing press?", "1440"),
               ("When did the first printed newspaper appear?", "1605")],
        thinking="The press was built around 1440 and the first newspaper appeared in "
                 "1605. 1605 - 1440 = 165.",
        question="How many years after Gutenberg built his printing press did the first "
                 "printed newspaper appear?", answer="165"),
}

JUDGE_DIMENSIONS = ("clarity", "answerability", "multi_hop_depth", "correctness")
MAX_ANSWER_WORDS = 20  # longer "answers" cannot be checked by EM/F1 or math-verify
CONSISTENCY_F1 = 0.5   # a QA re-solve agrees when EM = 1 or token F1 reaches this


@dataclass
class QuestionsConfig:
    """`ember synth questions`: MindGYM question synthesis with quality control."""

    out: str = opt(None, "Output JSONL file: task records (or sft-chat records with "
                         "--format sft); OUT.rejects.jsonl, OUT.summary.json and "
                         "OUT.cache.sqlite beside it.", short="-o")
    count: int = opt(20, "Questions wanted after quality control.", min=1)
    categories: list[str] = opt(list(DEFAULT_CATEGORIES), "Semantic categories, taken in "
                                                          "turn; any word works.")
    relations: list[str] = opt(list(RELATIONS), "How sub-questions link (bridging, "
                                                "comparison, temporal), taken in turn.")
    seeds: str | None = opt(None, "JSONL of seed documents (`text`) or QA items (`question`, "
                                  "`answer`) instead of model-written documents.")
    system_prompt: str | None = opt(None, "File with the cognitive-objectives system prompt "
                                          "[default: built in].")
    sub_questions: int = opt(2, "Single-hop questions per seed.", min=2)
    oversample: float = opt(2.0, "Candidates per missing question in each round.", min=1.0)
    max_rounds: int = opt(3, "Rounds of candidates at most.", min=1)
    temperature: float = temperature_opt(0.7, "Used by the seed and composition stages.")
    max_new_tokens: int = max_new_tokens_opt(384)
    judge: bool = opt(True, "Run the LLM judge (every dimension must reach --min-score).")
    min_score: float = opt(3.0, "Judge threshold: clarity, answerability, multi_hop_depth and "
                                "correctness must each score at least this (1-5).",
                           min=1.0, max=5.0)
    consistency: bool = opt(True, "Re-solve each question and drop it when the answers "
                                  "disagree.")
    dedup_threshold: float = opt(0.8, "TF-IDF cosine at or above which a question is a "
                                      "near-duplicate.", min=0.0, max=1.0)
    format: str = opt("tasks", "tasks (task records) or sft (a 3-step curriculum of "
                               "sft-chat records).")
    seed: int = seed_opt(0)
    rejects: str | None = opt(None, "Rejects JSONL file [default: OUT.rejects.jsonl].")
    min_yield: int = opt(1, "Exit 3 (partial result) when fewer than this many records are "
                            "produced; 0 accepts an empty output.", min=0)
    llm: LLMConfig = section(LLMConfig, help="LLM")


# --- prompts -----------------------------------------------------------------------------


def load_prompt(name: str) -> str:
    """The template synth/prompts/<name>.md (shipped in the package)."""
    return templates.load_prompt(name, package="ember.synth")


def example_questions() -> list[str]:
    """Questions the prompts show as examples (EXAMPLES and the one in extract.md): a
    generated question that repeats one is a copy, not a new question."""
    shown = re.findall(r'"question": "([^"]+)"', load_prompt("extract"))
    return [ex["question"] for ex in EXAMPLES.values()] + shown


def qa_lines(pairs) -> str:
    return "\n".join(f"Q{i}: {q}\nA{i}: {a}" for i, (q, a) in enumerate(pairs, 1))


def chat(system: str | None, user: str, shot: tuple[str, str] | None = None) -> list[dict]:
    """A chat: optional system prompt, optional example turn (user, assistant), the ask."""
    head = [{"role": "system", "content": system}] if system else []
    if shot:
        head += [{"role": "user", "content": shot[0]}, {"role": "assistant", "content": shot[1]}]
    return head + [{"role": "user", "content": user}]


# --- forgiving parsers for the labelled plain-text replies ---------------------------------

# "Q1:", "**Answer 2.**", "Document:" ... ; without a number only a colon counts, so
# that "A. Lincoln" stays text.
_LABEL = re.compile(r"^[\s>*#_-]*(document|background|thinking|reasoning|question|answer|q|a)"
                    r"(?:\s*(\d+)\s*[*_]*\s*[:：.)]|\s*[*_]*\s*[:：])\s*[*_]*\s*(.*)$",
                    re.IGNORECASE)
_ALIASES = {"background": "document", "reasoning": "thinking", "question": "q", "answer": "a"}


def labelled(text: str) -> list[tuple[str, str]]:
    """(label, text) blocks of a reply such as ``Q1: ...\\nA1: ...``; a line without a
    label continues the block before it. Labels: document, thinking, q, a, and "" for
    text before the first label."""
    blocks: list[list] = [["", ""]]
    for line in text.splitlines():
        m = _LABEL.match(line)
        if m:
            label = m.group(1).lower()
            blocks.append([_ALIASES.get(label, label), m.group(3).strip()])
        elif line.strip():
            blocks[-1][1] = f"{blocks[-1][1]}\n{line.strip()}".strip()
    return [(label, body.strip()) for label, body in blocks if label or body.strip()]


def clean_answer(text: str) -> str:
    """First line of an answer, without markdown bold, quotes or a final full stop."""
    line = text.strip().split("\n", 1)[0]
    return line.strip().strip("*_\"' ").rstrip(".").strip()


def parse_seed(text: str, k: int, need_document: bool) -> tuple[str, list[dict]]:
    """(document, [{question, answer}] * 2..k) from a seed reply; ValueError(reason) else."""
    blocks = labelled(text)
    # an unlabelled opening paragraph is the document when the label was left out
    document = " ".join(body for label, body in blocks if label == "document").strip() or \
        " ".join(body for label, body in blocks if label == "").strip()
    pairs, question = [], None
    for label, body in blocks:
        if label == "q":
            question = body
        elif label == "a" and question:
            answer = clean_answer(body)
            if answer:
                pairs.append({"question": question.strip(), "answer": answer})
            question = None
    if need_document and not document:
        raise ValueError("no-document")
    if len(pairs) < 2:
        raise ValueError(f"too-few-questions: {len(pairs)} question/answer pairs, need 2")
    return document, pairs[:k]


def parse_composed(text: str) -> dict | None:
    """{question, answer, thinking} from a labelled composition reply, or None. The last
    question label counts (models often restate the sub-questions first)."""
    blocks = labelled(text)
    last_q = max((i for i, (label, _) in enumerate(blocks) if label == "q"), default=None)
    if last_q is None:
        return None
    answer = next((clean_answer(body) for label, body in blocks[last_q + 1:] if label == "a"), "")
    question = blocks[last_q][1].strip()
    if not question or not answer:
        return None
    thinking = "\n".join(body for label, body in blocks if label == "thinking").strip()
    return {"question": question, "answer": answer, "thinking": thinking}


_DIM_PATTERNS = {d: re.compile(d.replace("_", r"[\s_-]*") + r"\W{0,4}(\d(?:\.\d+)?)", re.I)
                 for d in JUDGE_DIMENSIONS}


def parse_judge(text: str) -> dict[str, float] | None:
    """Judge scores {dimension: 1..5} from a reply: a JSON object if there is one, else
    "clarity: 4"-style lines. None when a dimension is missing or out of range."""
    scores = {}
    m = re.search(r"\{.*?\}", text, re.S)
    if m:
        try:
            obj = orjson.loads(m.group(0))
            scores = {d: float(obj[d]) for d in JUDGE_DIMENSIONS
                      if isinstance(obj, dict) and isinstance(obj.get(d), (int, float))}
        except orjson.JSONDecodeError:
            pass
    for d in JUDGE_DIMENSIONS:
        if d not in scores and (found := _DIM_PATTERNS[d].search(text)):
            scores[d] = float(found.group(1))
    if set(scores) != set(JUDGE_DIMENSIONS) or not all(1 <= v <= 5 for v in scores.values()):
        return None
    return scores


def below(scores: dict[str, float], min_score: float) -> list[str]:
    """The dimensions scoring under the threshold."""
    return [d for d in JUDGE_DIMENSIONS if scores[d] < min_score]


# --- task records and curriculum ---------------------------------------------------------

_NUMERIC = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?")


def scorer_for(category: str, answer: str) -> str:
    """math for a math question with a numeric answer (math-verify can check it), else qa."""
    return "math" if category == "math" and _NUMERIC.fullmatch(answer.replace(" ", "")) else "qa"


def task_id(question: str, answer: str) -> str:
    return "mg-" + hashlib.sha1(f"{question}\n{answer}".encode()).hexdigest()[:12]


def final_answer(task: dict) -> str:
    """The answer written the way the task's scorer reads it."""
    if task.get("scorer", "math") == "math":
        return f"The answer is \\boxed{{{task['answer']}}}."
    return f"Answer: {task['answer']}"


def curriculum(task: dict) -> list[dict]:
    """Three sft-chat records of a task, easy to hard (MindGYM's curriculum): question ->
    answer; question + thinking -> answer; question -> thinking + answer. The question is
    worded as `ember eval` and RFT ask it, the answer as their scorer reads it."""
    asked = task_item(task).messages[0]["content"]
    answer = final_answer(task)
    thinking = (task.get("thinking") or "").strip()
    variants = [("answer", asked, answer)]
    if thinking:
        variants += [("thinking-given", f"{asked}\n\nReasoning:\n{thinking}", answer),
                     ("thinking-and-answer", asked, f"{thinking}\n\n{answer}")]
    return [{"id": f"{task['id']}-{name}", "task_id": task["id"], "curriculum": name,
             "stage": stage,
             "messages": [{"role": "user", "content": user},
                          {"role": "assistant", "content": reply}]}
            for stage, (name, user, reply) in enumerate(variants, 1)]


# --- the pipeline ------------------------------------------------------------------------

EXTRACT_SCHEMA = {
    "type": "object", "required": ["question", "answer"],
    "properties": {"question": {"type": "string", "minLength": 5},
                   "answer": {"type": ["string", "number"]},
                   "thinking": {"type": "string"}},
    "additionalProperties": False,
}
# The judge's reply: every dimension an integer score 1-5 (an enum, which every
# constrained decoder and OpenAI's strict mode take), nothing else.
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {d: {"type": "integer", "enum": [1, 2, 3, 4, 5]} for d in JUDGE_DIMENSIONS},
    "required": list(JUDGE_DIMENSIONS),
    "additionalProperties": False,
}


@dataclass
class Slot:
    """One candidate: where its seed comes from and what it should be about."""
    index: int
    category: str
    relation: str
    topic: str = ""
    document: str | None = None   # a user seed document (else the model writes one)
    source: str = "synthetic"
    seed: int = 0                 # sampling seed of its generation calls


def load_seeds(path: str, rejects: list[dict]) -> list[dict]:
    """Seed records ({text} or {question, answer}, optional category) from JSONL."""
    seeds = []
    for line, payload in iter_units(path):
        try:
            rec = orjson.loads(payload) if isinstance(payload, bytes) else payload
        except orjson.JSONDecodeError as e:
            rejects.append(reject("invalid-json", str(e), source=path, line=line,
                                  stage="seeds"))
            continue
        if not isinstance(rec, dict):
            reason, text = "not-an-object", None
        elif isinstance(rec.get("text"), str) and rec["text"].strip():
            reason, text = None, rec["text"].strip()
        elif rec.get("question") and rec.get("answer") is not None:
            reason, text = None, f"Question: {rec['question']}\nAnswer: {rec['answer']}"
        else:
            reason, text = "missing-field", None
        if reason:
            rejects.append(reject(reason, "a seed needs `text`, or `question` and `answer`",
                                  source=path, line=line, stage="seeds"))
            continue
        seeds.append({"text": text, "category": str(rec.get("category") or "general"),
                      "source": f"{path}:{line}"})
    return seeds


class QuestionSynth:
    """Runs the stages over the LLM and keeps the counts the summary reports."""

    def __init__(self, cfg: QuestionsConfig, llm, log=lambda msg: None):
        unknown = set(cfg.relations) - set(RELATIONS)
        if unknown:
            raise ValueError(f"unknown relation(s) {sorted(unknown)}: use {', '.join(RELATIONS)}")
        if cfg.format not in ("tasks", "sft"):
            raise ValueError(f"unknown format {cfg.format!r}: use tasks or sft")
        if not cfg.categories or not cfg.relations:
            raise ValueError("need at least one category and one relation")
        self.cfg, self.llm, self.log = cfg, llm, log
        self.on_progress = None  # LLM.generate's progress callback, set by the CLI
        self.system = (Path(cfg.system_prompt).read_text() if cfg.system_prompt
                       else load_prompt("cognitive_objectives")).strip()
        self.rejects: list[dict] = []
        self.seeds = load_seeds(cfg.seeds, self.rejects) if cfg.seeds else None
        if self.seeds == []:
            raise ValueError(f"{cfg.seeds}: no usable seed records")
        self.histogram = {d: Counter() for d in JUDGE_DIMENSIONS}
        self.extracted_by = Counter()
        self.stages = {s: Counter() for s in ("seed", "compose", "extract", "dedup", "judge",
                                              "consistency")}
        import jsonschema  # here, not at the top: `ember --help` need not load it

        self.validator = jsonschema.Draft202012Validator(load_schema("task"))

    def params(self, temperature: float, seed: int, max_new_tokens: int | None = None):
        return SamplingParams(temperature=temperature, seed=seed,
                              max_new_tokens=max_new_tokens or self.cfg.max_new_tokens)

    def reject(self, stage: str, reason: str, slot: Slot | None = None, detail: str = "",
               **extra) -> None:
        self.stages[stage]["rejected"] += 1
        if slot is not None:
            extra.update(slot=slot.index, category=slot.category, relation=slot.relation)
        self.rejects.append(reject(reason, detail[:500], stage=stage, **extra))

    def slot(self, i: int) -> Slot:
        """Slot i: categories (or seeds) in turn, then relations, then topics; once every
        combination has been used, the next pass samples with a new seed."""
        cfg, n_rel = self.cfg, len(self.cfg.relations)
        if self.seeds:
            s, k = self.seeds[i % len(self.seeds)], i // len(self.seeds)
            return Slot(i, s["category"], cfg.relations[k % n_rel], document=s["text"],
                        source=s["source"], seed=cfg.seed + k // n_rel)
        category, k = cfg.categories[i % len(cfg.categories)], i // len(cfg.categories)
        topics = TOPICS.get(category, ["general knowledge"])
        return Slot(i, category, cfg.relations[k % n_rel], topic=topics[(k // n_rel) % len(topics)],
                    seed=cfg.seed + k // (n_rel * len(topics)))

    def generate(self, slots: list[Slot], prompts: list, temperature: float):
        """One batched call per sampling seed (most runs have one), results in order."""
        results = [None] * len(prompts)
        for seed in sorted({s.seed for s in slots}):
            idx = [i for i, s in enumerate(slots) if s.seed == seed]
            got = self.llm.generate([prompts[i] for i in idx], self.params(temperature, seed),
                                    self.on_progress)
            for i, r in zip(idx, got):
                results[i] = r
        return results

    # -- stages --------------------------------------------------------------------------

    def seed_prompt(self, category: str, topic: str, relation: str,
                    document: str | None) -> str:
        values = dict(k=self.cfg.sub_questions, relation=relation,
                      relation_help=RELATIONS[relation])
        if document is None:
            return render(load_prompt("seed_category"), dict(category=category, topic=topic, **values))
        return render(load_prompt("seed_document"), dict(document=document, **values))

    def compose_prompt(self, category: str, document: str, relation: str, pairs) -> str:
        hint = ("Its answer must be a single number." if category == "math" else
                "Its answer must be short: a name, a number, a date, yes or no.")
        return render(load_prompt("compose"), dict(document=document, relation=relation,
                      sub_questions=qa_lines(pairs), answer_hint=hint))

    def seed_stage(self, slots: list[Slot]) -> list[tuple[Slot, str, list[dict]]]:
        prompts = []
        for s in slots:
            ex = EXAMPLES[s.relation]
            own = s.document is None
            shot = (self.seed_prompt(ex["category"], ex["topic"], s.relation,
                                     None if own else ex["document"]),
                    (f"Document: {ex['document']}\n" if own else "") + qa_lines(ex["pairs"]))
            prompts.append(chat(self.system, self.seed_prompt(s.category, s.topic, s.relation,
                                                              s.document), shot))
        results = self.generate(slots, prompts, self.cfg.temperature)
        out = []
        for s, r in zip(slots, results):
            self.stages["seed"]["in"] += 1
            if not r.ok:
                self.reject("seed", "llm-error", s, r.error or "")
                continue
            try:
                document, pairs = parse_seed(r.text, self.cfg.sub_questions, s.document is None)
            except ValueError as e:
                code, _, detail = str(e).partition(": ")
                self.reject("seed", code, s, detail, text=r.text[:500])
                continue
            document = s.document or document
            if s.document is None and cosine(document, EXAMPLES[s.relation]["document"]) >= 0.8:
                self.reject("seed", "copied-example", s, document)
                continue
            self.stages["seed"]["out"] += 1
            out.append((s, document, pairs))
        return out

    def compose_stage(self, seeds) -> list[tuple[Slot, dict, str]]:
        prompts = []
        for s, document, pairs in seeds:
            ex = EXAMPLES[s.relation]
            shot = (self.compose_prompt(ex["category"], ex["document"], s.relation, ex["pairs"]),
                    f"Thinking: {ex['thinking']}\nQuestion: {ex['question']}\n"
                    f"Answer: {ex['answer']}")
            prompts.append(chat(self.system, self.compose_prompt(
                s.category, document, s.relation,
                [(p["question"], p["answer"]) for p in pairs]), shot))
        results = self.generate([s for s, _, _ in seeds], prompts, self.cfg.temperature)
        out = []
        for (s, document, pairs), r in zip(seeds, results):
            self.stages["compose"]["in"] += 1
            if not r.ok:
                self.reject("compose", "llm-error", s, r.error or "")
                continue
            self.stages["compose"]["out"] += 1
            out.append((s, {"document": document, "sub_questions": pairs}, r.text))
        return out

    def extract_stage(self, composed) -> list[dict]:
        parsed = [parse_composed(text) for _, _, text in composed]
        todo = [i for i, p in enumerate(parsed) if p is None]
        if todo:  # labels missing: let the LLM pull the fields out as JSON
            prompts = [render(load_prompt("extract"), dict(text=composed[i][2])) for i in todo]
            answers = self.llm.generate_json([chat(None, p) for p in prompts], EXTRACT_SCHEMA,
                                             self.params(0.5, self.cfg.seed),
                                             on_progress=self.on_progress)
            for i, (obj, err) in zip(todo, answers):
                if obj is None:
                    parsed[i] = err or "no JSON"
                else:
                    parsed[i] = {"question": obj["question"].strip(),
                                 "answer": clean_answer(str(obj["answer"])),
                                 "thinking": str(obj.get("thinking") or "").strip(),
                                 "by": "llm"}
        tasks = []
        for (s, seed, text), p in zip(composed, parsed):
            self.stages["extract"]["in"] += 1
            if isinstance(p, str):
                self.reject("extract", "unparseable", s, p, text=text[:500])
                continue
            self.extracted_by[p.pop("by", "rule")] += 1
            if not p["answer"] or len(p["answer"].split()) > MAX_ANSWER_WORDS:
                self.reject("extract", "bad-answer", s,
                            f"answer must be 1..{MAX_ANSWER_WORDS} words: {p['answer']!r}")
                continue
            task = {"id": task_id(p["question"], p["answer"]), "prompt": p["question"],
                    "answer": p["answer"], "scorer": scorer_for(s.category, p["answer"]),
                    "category": s.category, "relation": s.relation,
                    "sub_questions": seed["sub_questions"], "thinking": p["thinking"],
                    "scores": {}, "document": seed["document"], "source": s.source}
            errors = sorted(self.validator.iter_errors(task), key=lambda e: e.path)
            if errors:
                self.reject("extract", "schema", s, errors[0].message, id=task["id"])
                continue
            self.stages["extract"]["out"] += 1
            task["_slot"] = s
            tasks.append(task)
        return tasks

    def dedup_stage(self, tasks: list[dict], kept: list[dict]) -> list[dict]:
        """Drop near-duplicates of each other, of earlier rounds and of the examples."""
        examples = example_questions()
        dups = near_duplicates([t["prompt"] for t in tasks], self.cfg.dedup_threshold,
                               keep=examples + [t["prompt"] for t in kept])
        earlier = examples + [t["id"] for t in kept + tasks]
        out = []
        for i, t in enumerate(tasks):
            self.stages["dedup"]["in"] += 1
            if i in dups:
                j, sim = dups[i]
                copied = j < len(examples)
                self.reject("dedup", "copied-example" if copied else "near-duplicate",
                            t["_slot"], f"cosine {sim} with {earlier[j]!r}", id=t["id"],
                            prompt=t["prompt"])
                continue
            self.stages["dedup"]["out"] += 1
            out.append(t)
        return out

    def judge_prompt(self, task: dict) -> str:
        return render(load_prompt("judge"), dict(
            question=task["prompt"], answer=task["answer"],
            thinking=task.get("thinking") or "(none)"))

    def judge_stage(self, tasks: list[dict], attempts: int = 3) -> list[dict]:
        """Scores as JSON under JUDGE_SCHEMA (constrained decoding where the backend has
        it, then strictly validated). Only where decoding is not constrained is a judged
        example shown first (as an earlier turn), since a small model otherwise rarely
        writes the object at all; a constrained judge sees none, as it would copy its
        scores."""
        shot = None
        if self.llm.structured() is None:
            ex = EXAMPLES["bridging"]
            shot = (self.judge_prompt({"prompt": ex["question"], "answer": ex["answer"],
                                       "thinking": ex["thinking"]}),
                    '{"clarity": 5, "answerability": 5, "multi_hop_depth": 4, "correctness": 5}')
        scores: list[dict | None] = [None] * len(tasks)
        replies = [""] * len(tasks)
        for attempt in range(attempts):  # greedy first, then sampled retries
            todo = [i for i, s in enumerate(scores) if s is None]
            if not todo:
                break
            prompts = [chat(None, self.judge_prompt(tasks[i]), shot) for i in todo]
            params = self.params(0.0 if attempt == 0 else 0.7, self.cfg.seed + attempt,
                                 min(self.cfg.max_new_tokens, 96))  # a short JSON object
            got = self.llm.generate_json(prompts, JUDGE_SCHEMA, params, attempts=1,
                                         on_progress=self.on_progress)
            for i, (obj, why) in zip(todo, got):
                replies[i] = why or ""
                scores[i] = {d: float(obj[d]) for d in JUDGE_DIMENSIONS} if obj else None
        out = []
        for t, sc, reply in zip(tasks, scores, replies):
            self.stages["judge"]["in"] += 1
            if sc is None:
                self.reject("judge", "unparseable", t["_slot"], reply, id=t["id"])
                continue
            for d, v in sc.items():
                self.histogram[d][int(round(v))] += 1
            t["scores"].update(sc)
            if low := below(sc, self.cfg.min_score):
                self.reject("judge", "low-score", t["_slot"],
                            ", ".join(f"{d}={sc[d]:g}" for d in low) +
                            f" (min {self.cfg.min_score:g})", id=t["id"], scores=sc)
                continue
            self.stages["judge"]["out"] += 1
            out.append(t)
        return out

    def consistency_stage(self, tasks: list[dict]) -> list[dict]:
        items = [task_item(t) for t in tasks]
        results = self.llm.generate([it.messages for it in items],
                                    self.params(0.0, self.cfg.seed), self.on_progress)
        out = []
        for t, it, r in zip(tasks, items, results):
            self.stages["consistency"]["in"] += 1
            if not r.ok:
                self.reject("consistency", "llm-error", t["_slot"], r.error or "", id=t["id"])
                continue
            got = get_scorer(t["scorer"])(r.text, it)
            agreement = max(got["score"], got.get("f1", 0.0) >= CONSISTENCY_F1)
            t["scores"]["consistency"] = float(got.get("f1", got["score"]))
            if not agreement:
                self.reject("consistency", "answer-mismatch", t["_slot"],
                            f"re-solved {got['extracted']!r}, gold {t['answer']!r}",
                            id=t["id"], response=r.text[:500])
                continue
            self.stages["consistency"]["out"] += 1
            out.append(t)
        return out

    # -- driver --------------------------------------------------------------------------

    def run(self) -> tuple[list[dict], dict]:
        cfg, start = self.cfg, time.monotonic()
        kept: list[dict] = []
        next_slot, rounds = 0, 0
        while len(kept) < cfg.count and rounds < cfg.max_rounds:
            rounds += 1
            count = math.ceil((cfg.count - len(kept)) * cfg.oversample)
            slots = [self.slot(i) for i in range(next_slot, next_slot + count)]
            next_slot += count
            self.log(f"round {rounds}: {count} candidates")
            tasks = self.extract_stage(self.compose_stage(self.seed_stage(slots)))
            tasks = self.dedup_stage(tasks, kept)
            if cfg.judge and tasks:
                tasks = self.judge_stage(tasks)
            if cfg.consistency and tasks:
                tasks = self.consistency_stage(tasks)
            kept += tasks
            self.log(f"round {rounds}: {len(kept)}/{cfg.count} questions kept")
        surplus = max(len(kept) - cfg.count, 0)
        kept = [{k: v for k, v in t.items() if k != "_slot"} for t in kept[:cfg.count]]
        reasons = Counter(f"{r['stage']}: {r['reason']}" for r in self.rejects)
        summary = {
            "requested": cfg.count, "candidates": next_slot,
            "rounds": rounds, "produced": len(kept), "surplus": surplus,
            "rejected": sum(reasons.values()), "rejected_by_reason": dict(sorted(reasons.items())),
            "stages": {s: dict(c) for s, c in self.stages.items()},
            "extracted_by": dict(self.extracted_by),
            "judge_histogram": {d: {str(k): c[k] for k in range(1, 6)}
                                for d, c in self.histogram.items()},
            "llm": dict(self.llm.usage), "seconds": round(time.monotonic() - start, 2),
        }
        return kept, summary


def synth_questions(cfg: QuestionsConfig, llm, log=lambda msg: None, on_progress=None) -> Summary:
    """Run the pipeline with ``llm`` and write OUT, the rejects and OUT.summary.json."""
    synth = QuestionSynth(cfg, llm, log)
    synth.on_progress = on_progress
    tasks, counts = synth.run()
    rows = [r for t in tasks for r in curriculum(t)] if cfg.format == "sft" else tasks
    rejects = cfg.rejects or default_rejects_path(cfg.out)
    write_jsonl(cfg.out, rows)
    write_rejects(rejects, synth.rejects)
    summary = Summary("synth questions", read=counts.pop("candidates"),
                      produced=counts.pop("produced"), rejected=counts.pop("rejected"),
                      rejected_by_reason=counts.pop("rejected_by_reason"), output=cfg.out,
                      rejects=rejects, seconds=counts.pop("seconds"),
                      warnings=list(getattr(llm, "warnings", [])),
                      details={**counts, "format": cfg.format, "records": len(rows),
                               "summary": cfg.out + ".summary.json"})
    summary.require(cfg.min_yield, "questions")
    write_json(summary.details["summary"], summary.to_dict())
    return summary


def run(cfg: QuestionsConfig, progress=None, log=lambda msg: None) -> Summary:
    """`ember synth questions`: check the options and seeds, open the LLM (cached beside
    OUT), run, summarise."""
    if not cfg.out:
        raise ValueError("missing --out / -o")
    if cfg.system_prompt and not Path(cfg.system_prompt).is_file():
        raise ValueError(f"--system-prompt {cfg.system_prompt}: file not found")
    QuestionSynth(cfg, llm=None)  # bad options and seeds fail before any model loads
    with output_lock(cfg.out), make_llm(cfg.llm, out=cfg.out) as llm:
        return synth_questions(cfg, llm, log, on_progress=(
            lambda done, total: progress(done, total, "questions")) if progress else None)
