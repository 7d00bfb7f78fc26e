"""Behaviour-primed agentic-search trajectories (Behavior Priming, Jin et al. 2025).

    ember synth trajectories --questions q.jsonl --search-index index/ --samples 4 -o trajs.jsonl

    from ember.synth.trajectories import TrajectoryConfig, synthesize
    summary = synthesize(TrajectoryConfig(questions="q.jsonl", search_index="index/",
                                          out="t.jsonl"),
                         teacher, judge)        # two ember.llm.client.LLM (may be the same)

Reading top to bottom: read the questions (``{id, question, answer}``; bad lines are
rejected with reasons); the teacher rolls out N trajectories per question in the search
environment (evaluate/agent.py; ``--protocol native``, the default, calls the search tool
as a chat-template tool call, exactly as RFT's ``--env search`` and ``ember eval
--benchmarks hotpotqa-search`` do; ``tags`` is Search-R1's tag protocol), rollout k with
seed ``seed + k``; a judge LLM, shown the
question and the steps but never the gold answer, labels four behaviours yes/no as strict
JSON (synth/prompts/behaviour_judge.md); the QA scorer marks each final answer right or
wrong (recorded, not a filter unless asked); a keep policy selects:

- ``all-behaviours`` (default): all four behaviours present, right or wrong answer;
- ``correct-only``: the answer is right (exact match after SQuAD normalisation);
- ``random``: as many as all-behaviours keeps, drawn at random (seeded) — the ablation;
- ``any``: every judged trajectory, answered or not.

The first three keep only rollouts that reached an answer. Kept rollouts are written as
ADP trajectories: the question (user; native: the whole prompt the teacher was shown),
each search an ``api_action`` ``search(query)`` with its thought as description, its
results a ``text_observation`` from the environment linked by ``tool_call_id``, the answer
a final ``message_action`` (native: the reply as written, "Answer: ..." line included);
the trajectory's ``tools`` is the search tool's spec (evaluate/search_tool.py). Exported
with ``ember convert --to sft-chat``, a native trajectory renders through the chat template
to the very tokens the model sees at RFT and eval time. Labels, correctness and the
per-step log go in ``details``. Rollouts that failed in the backend, never wrote a
well-formed step, or could not be judged go to the rejects file with the reason.
Everything the LLMs answered is in the cache, so a rerun after a kill repeats no finished
rollout step or judgement; the output is written whole at the end (atomically).
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from ember.adp.io import iter_units, output_lock, write_json, write_jsonl
from ember.adp.model import api_action, message_action, text_observation, trajectory
from ember.evaluate.agent import PROTOCOLS, protocol_opt, run_agent
from ember.evaluate.item import Item
from ember.evaluate.scoring import get_scorer
from ember.evaluate.search import open_searcher
from ember.evaluate.search_tool import tool_specs
from ember.evaluate.templates import load_prompt, render
from ember.adp.config import opt, section
from ember.adp.rejects import count_reasons, default_rejects_path, reject, write_rejects
from ember.adp.summary import Summary
from ember.llm.backends import SamplingParams
from ember.llm.client import (LLMConfig, make_llm, max_new_tokens_opt, samples_opt, seed_opt,
                              temperature_opt, top_p_opt)

BEHAVIOURS = ("information_verification", "authority_evaluation", "adaptive_search",
              "error_recovery")
POLICIES = ("all-behaviours", "correct-only", "random", "any")
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {b: {"enum": ["yes", "no"]} for b in BEHAVIOURS},
    "required": list(BEHAVIOURS),
    "additionalProperties": False,
}
SNIPPET_CHARS = 300  # of each paragraph, in the judge's view of a search result


@dataclass
class TrajectoryConfig:
    """`ember synth trajectories`: behaviour-primed search trajectories as ADP."""

    questions: str = opt(None, "JSONL of {id, question, answer} (answer optional).",
                         short="-q")
    search_index: str = opt(None, "Search index: an `ember synth index` directory or "
                                  "http://HOST:PORT of a /retrieve server.")
    out: str = opt(None, "Output JSONL file: ADP trajectories kept; OUT.summary.json, "
                         "OUT.rejects.jsonl and OUT.cache.sqlite beside it.", short="-o")
    samples: int = samples_opt(4, "Trajectories per question; rollout k uses seed + k.")
    keep: str = opt("all-behaviours", "all-behaviours (all four labels yes, right or wrong), "
                                      "correct-only, random (as many as all-behaviours, at "
                                      "random), any (every judged rollout).")
    protocol: str = protocol_opt()
    max_turns: int = opt(4, "Steps per rollout, the answer included (native: at most "
                            "max-turns - 1 searches).", min=1)
    topk: int = opt(3, "Paragraphs returned per search.", min=1)
    temperature: float = temperature_opt(0.7, "Of the teacher.")
    top_p: float = top_p_opt()
    max_new_tokens: int = max_new_tokens_opt(256, "Teacher tokens per step.")
    seed: int = seed_opt(0, "Rollout k of a question uses seed + k.")
    judge_model: str | None = opt(None, "Judge model [default: the teacher, --model]; same "
                                        "backend.")
    judge_base_url: str | None = opt(None, "Judge endpoint [default: --base-url].")
    judge_temperature: float = opt(0.3, "Sampling temperature of the judge (retries of "
                                        "unparsable JSON need some).", min=0.0)
    judge_max_new_tokens: int = opt(128, "Cap on generated tokens per judge call.", min=1)
    judge_attempts: int = opt(3, "Judge tries per trajectory before it is rejected.", min=1)
    limit: int | None = opt(None, "First N questions only.", min=1)
    rejects: str | None = opt(None, "Rejects JSONL file [default: OUT.rejects.jsonl].")
    min_yield: int = opt(1, "Exit 3 (partial result) when fewer than this many records are "
                            "produced; 0 accepts an empty output.", min=0)
    llm: LLMConfig = section(LLMConfig, help="LLM")


# --- inputs -------------------------------------------------------------------------------


def read_questions(path: str | Path, limit: int | None = None) -> tuple[list[dict], list[dict]]:
    """(questions, rejects): ``{id, question, gold}`` per good line; gold may be None."""
    good, bad, seen = [], [], set()
    for line, payload in iter_units(path):
        if limit is not None and len(good) >= limit:
            break
        try:
            row = orjson.loads(payload) if isinstance(payload, (bytes, bytearray)) else payload
        except orjson.JSONDecodeError as e:
            bad.append(reject("bad-json", str(e), source=path, line=line))
            continue
        reason = None
        if not isinstance(row, dict):
            reason = f"not-an-object: got {type(row).__name__}"
        elif not isinstance(row.get("question"), str) or not row["question"].strip():
            reason = "missing-question: needs a non-empty string 'question'"
        else:
            gold = row.get("answer")
            if gold is not None and not (isinstance(gold, (str, int, float)) or (
                    isinstance(gold, list) and all(isinstance(g, str) for g in gold))):
                reason = "bad-answer: 'answer' should be a string or a list of strings"
            qid = str(row.get("id", row.get("_id", line)))
            if reason is None and qid in seen:
                reason = f"duplicate-id: {qid!r}"
        if reason:
            kind, _, detail = reason.partition(": ")
            bad.append(reject(kind, detail, source=path, line=line))
            continue
        seen.add(qid)
        gold = row.get("answer")
        good.append({"id": qid, "question": row["question"].strip(),
                     "gold": gold if gold is None or isinstance(gold, list) else str(gold)})
    return good, bad


# --- the judge ------------------------------------------------------------------------------


def judge_template() -> str:
    return load_prompt("behaviour_judge", package="ember.synth")


def transcript(rollout) -> str:
    """The rollout's steps as the judge reads them (results shortened, no gold answer)."""
    lines = []
    for s in rollout.steps:
        head = f"Step {s['turn']}"
        if "error" in s:
            continue
        if "violation" in s:
            lines.append(f"{head} (badly formatted; the agent was told: {s['violation']}):\n"
                         f"{s['text'].strip()}")
            continue
        lines.append(f"{head}:\nThought: {s['think']}")
        if s["action"] == "search":
            lines.append(f"Search: {s['query']}")
            lines.append("Results:\n" + "\n".join(
                line[:SNIPPET_CHARS] for line in _results(s).splitlines()))
        else:
            lines.append(f"Answer: {s['answer']}")
    if rollout.status == "turn-limit":
        lines.append("(The agent ran out of steps without answering.)")
    return "\n".join(lines)


def _results(step: dict) -> str:
    """A search step's results without the <information> tags."""
    info = step.get("information", "")
    return info.removeprefix("<information>").removesuffix("</information>").strip()


def judge_prompt(question: str, rollout, template: str | None = None) -> list[dict]:
    return [{"role": "user", "content": render(template or judge_template(), {
        "question": question, "transcript": transcript(rollout)})}]


def labels_of(obj: dict) -> dict[str, bool]:
    """The judge's validated JSON as booleans."""
    return {b: obj[b] == "yes" for b in BEHAVIOURS}


# --- selection ------------------------------------------------------------------------------


def select(records: list[dict], policy: str, seed: int = 0) -> list[int]:
    """Indices of the judged records a policy keeps (each record has ``behaviours``,
    ``answered`` and ``correct``), in input order."""
    if policy not in POLICIES:
        raise ValueError(f"unknown keep policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if policy == "any":
        return list(range(len(records)))
    answered = [i for i, r in enumerate(records) if r["answered"]]
    full = [i for i in answered if all(records[i]["behaviours"].values())]
    if policy == "all-behaviours":
        return full
    if policy == "correct-only":
        return [i for i in answered if records[i]["correct"]]
    # random: the same number as all-behaviours keeps, so the ablation differs only in how
    return sorted(random.Random(seed).sample(answered, len(full)))


def statistics(records: list[dict]) -> dict:
    """Behaviour frequencies over all / correct / incorrect judged rollouts, and how many
    each policy keeps."""
    groups = {"all": records,
              "correct": [r for r in records if r["correct"] is True],
              "incorrect": [r for r in records if r["correct"] is False]}
    table = {}
    for name, rows in groups.items():
        row = {"n": len(rows)}
        for b in BEHAVIOURS:
            row[b] = sum(r["behaviours"][b] for r in rows)
        row["all_four"] = sum(all(r["behaviours"].values()) for r in rows)
        table[name] = row
    return {"behaviours": table,
            "policies": {p: len(select(records, p)) for p in POLICIES}}


# --- output ---------------------------------------------------------------------------------


def to_adp(traj_id: str, rollout, details: dict, protocol: str = "native") -> dict:
    """One rollout as an ADP trajectory (well-formed steps only; the full log in details)."""
    native = protocol == "native"
    content = [text_observation(rollout.messages[0]["content"] if native else rollout.question,
                                "user")]
    calls = 0
    for s in rollout.steps:
        if s.get("action") == "search":
            cid = f"call_{calls}"
            calls += 1
            content.append(api_action("search", {"query": s["query"]}, s["think"] or None,
                                      tool_call_id=cid))
            content.append(text_observation(_results(s), "environment", name="search",
                                            tool_call_id=cid))
        elif s.get("action") == "answer" and native:
            # the reply as written: an `answer` field would be exported as <solution> tags,
            # which is not what the model says in this protocol (details hold the answer)
            content.append(message_action(s["text"], final=True))
        elif s.get("action") == "answer":
            content.append(message_action(s["answer"], s["think"] or None, final=True,
                                          answer=s["answer"]))
    return trajectory(traj_id, content, details, tools=tool_specs())


def _score(answer: str | None, gold) -> dict:
    if gold is None:
        return {"correct": None, "em": None, "f1": None}
    m = get_scorer("qa")(answer or "", Item(id="", messages=[], gold=gold))
    return {"correct": bool(answer) and m["em"] == 1.0, "em": m["em"], "f1": m["f1"]}


def _usage_delta(llm, before: dict) -> dict:
    return {k: round(v - before[k], 3) if isinstance(v, float) else v - before[k]
            for k, v in llm.usage.items()}


def synthesize(cfg: TrajectoryConfig, teacher, judge, *, search=None, on_step=None,
               on_judge=None) -> Summary:
    """Run the pipeline; writes OUT, the rejects file and OUT.summary.json; returns the
    summary. ``teacher`` and ``judge`` are ember.llm.client.LLM objects (may be one)."""
    check_options(cfg)
    start = time.perf_counter()
    out = Path(cfg.out)
    rejects_path = cfg.rejects or default_rejects_path(out)
    questions, rejects = read_questions(cfg.questions, cfg.limit)
    if not questions:
        raise ValueError(f"{cfg.questions}: no usable question ({len(rejects)} rejected)")
    search = search or open_searcher(cfg.search_index)

    # 1. roll out: question-major order, rollout k with seed + k
    jobs = [(q, k) for q in questions for k in range(cfg.samples)]
    params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens)
    before = dict(teacher.usage)
    rollouts = run_agent(teacher, [q["question"] for q, _ in jobs], search, params,
                         seeds=[cfg.seed + k for _, k in jobs], max_turns=cfg.max_turns,
                         topk=cfg.topk, protocol=cfg.protocol, on_step=on_step)
    teacher_usage = _usage_delta(teacher, before)

    # 2. reject what cannot be judged, judge the rest in one batch
    to_judge = []
    for (q, k), r in zip(jobs, rollouts):
        reason = None
        if r.status == "error":
            reason = ("backend-error", r.error or "")
        elif not any("action" in s for s in r.steps):
            first = next((s["violation"] for s in r.steps if "violation" in s), "no step")
            reason = ("no-valid-step", f"every step broke the format (first: {first})")
        if reason:
            rejects.append({**reject(*reason), "question_id": q["id"], "rollout": k,
                            "status": r.status, "steps": r.steps})
        else:
            to_judge.append((q, k, r))
    judge_params = SamplingParams(temperature=cfg.judge_temperature,
                                  max_new_tokens=cfg.judge_max_new_tokens, seed=cfg.seed)
    template = judge_template()
    before = dict(judge.usage)
    verdicts = judge.generate_json([judge_prompt(q["question"], r, template)
                                    for q, _, r in to_judge],
                                   JUDGE_SCHEMA, judge_params, attempts=cfg.judge_attempts,
                                   on_progress=on_judge)
    judge_usage = _usage_delta(judge, before)

    # 3. score, label, select
    records, trajs = [], []
    for (q, k, r), (obj, why) in zip(to_judge, verdicts):
        if obj is None:
            rejects.append({**reject("judge-failed", why or ""), "question_id": q["id"],
                            "rollout": k, "status": r.status,
                            "steps": r.steps})
            continue
        score = _score(r.answer, q["gold"])
        record = {"behaviours": labels_of(obj), "answered": r.status == "answered",
                  "correct": score["correct"]}
        records.append(record)
        details = {
            "question_id": q["id"], "question": q["question"], "gold": q["gold"],
            "rollout": k, "seed": r.seed, "status": r.status, "prediction": r.answer,
            **score, "behaviours": record["behaviours"],
            "behaviour_count": sum(record["behaviours"].values()),
            "turns": len(r.steps),
            "format_violations": sum("violation" in s for s in r.steps),
            "teacher": teacher.model, "judge": judge.model, "protocol": cfg.protocol,
            "steps": r.steps,
        }
        trajs.append(to_adp(f"{q['id']}-r{k}", r, details, cfg.protocol))
    kept = [trajs[i] for i in select(records, cfg.keep, cfg.seed)]

    write_jsonl(out, kept)
    write_rejects(rejects_path, rejects)
    summary = Summary(
        "synth trajectories", read=len(questions) + sum(r["line"] is not None for r in rejects),
        produced=len(kept), rejected=len(rejects), rejected_by_reason=count_reasons(rejects),
        output=str(out), rejects=str(rejects_path), seconds=time.perf_counter() - start,
        warnings=list(dict.fromkeys(getattr(teacher, "warnings", []) +
                                    getattr(judge, "warnings", []))),
        details={
            "questions": len(questions), "rollouts": len(rollouts),
            "answered": sum(r.status == "answered" for r in rollouts),
            "turn_limit": sum(r.status == "turn-limit" for r in rollouts),
            "judged": len(records), "correct": sum(r["correct"] is True for r in records),
            "keep": cfg.keep, "kept": len(kept), **statistics(records),
            "usage": {"teacher": teacher_usage, "judge": judge_usage},
            # how the judge's JSON was constrained (None: parsed and retried only)
            "judge_structured": judge.structured() if hasattr(judge, "structured") else None,
            "config": dataclasses.asdict(cfg), "summary": f"{out}.summary.json"})
    summary.require(cfg.min_yield, "trajectories")
    write_json(summary.details["summary"], summary.to_dict())
    return summary


def check_options(cfg: TrajectoryConfig) -> None:
    """ValueError naming the option when --keep or --protocol is not one we know."""
    if cfg.keep not in POLICIES:
        raise ValueError(f"unknown --keep {cfg.keep!r}; choose one of {', '.join(POLICIES)}")
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"unknown --protocol {cfg.protocol!r}; choose one of "
                         f"{', '.join(PROTOCOLS)}")


def open_llms(cfg: TrajectoryConfig):
    """(teacher, judge): the judge is the teacher unless another model or endpoint is
    named; both cache beside OUT."""
    teacher = make_llm(cfg.llm, out=cfg.out)
    if (cfg.judge_model or cfg.llm.model) == cfg.llm.model and \
            (cfg.judge_base_url or cfg.llm.base_url) == cfg.llm.base_url:
        return teacher, teacher
    judge_cfg = dataclasses.replace(cfg.llm, model=cfg.judge_model or cfg.llm.model,
                                    base_url=cfg.judge_base_url or cfg.llm.base_url)
    return teacher, make_llm(judge_cfg, out=cfg.out)


def run(cfg: TrajectoryConfig, progress=None, on_step=None) -> Summary:
    """`ember synth trajectories`: check the inputs, open teacher and judge, synthesize."""
    for name in ("questions", "search_index", "out"):
        if not getattr(cfg, name):
            raise ValueError(f"missing --{name.replace('_', '-')}")
    check_options(cfg)
    search = open_searcher(cfg.search_index)
    with output_lock(cfg.out):
        return _with_llms(cfg, search, progress, on_step)


def _with_llms(cfg: TrajectoryConfig, search, progress, on_step) -> Summary:
    teacher, judge = open_llms(cfg)
    try:
        return synthesize(cfg, teacher, judge, search=search, on_step=on_step, on_judge=(
            lambda done, total: progress(done, total, "judging")) if progress else None)
    finally:
        teacher.close()
        if judge is not teacher:
            judge.close()
