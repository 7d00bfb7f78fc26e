"""Behaviour-primed agentic-search trajectories (Behavior Priming, Jin et al. 2025).

    ember synth trajectories --questions q.jsonl --index index/ --rollouts 4 -o trajs.jsonl

    from ember.synth.trajectories import TrajectoryConfig, synthesize
    summary = synthesize(TrajectoryConfig(questions="q.jsonl", index="index/", out="t.jsonl"),
                         teacher, judge)        # two ember.llm.client.LLM (may be the same)

Reading top to bottom: read the questions (``{id, question, answer}``; bad lines are
rejected with reasons); the teacher rolls out N trajectories per question in the search
environment (evaluate/agent.py), rollout k with seed ``seed + k``; a judge LLM, shown the
question and the steps but never the gold answer, labels four behaviours yes/no as strict
JSON (synth/prompts/behaviour_judge.md); the QA scorer marks each final answer right or
wrong (recorded, not a filter unless asked); a keep policy selects:

- ``all-behaviours`` (default): all four behaviours present, right or wrong answer;
- ``correct-only``: the answer is right (exact match after SQuAD normalisation);
- ``random``: as many as all-behaviours keeps, drawn at random (seeded) — the ablation;
- ``any``: every judged trajectory, answered or not.

The first three keep only rollouts that reached an answer. Kept rollouts are written as
ADP trajectories: the question (user), each search an ``api_action`` ``search(query)``
with its thought as description, its results a ``text_observation`` from the environment
linked by ``tool_call_id``, the answer a final ``message_action``; labels, correctness and
the per-step log go in ``details``. Rollouts that failed in the backend, never wrote a
well-formed step, or could not be judged go to the rejects file with the reason.
Everything the LLMs answered is in the cache, so a rerun after a kill repeats no finished
rollout step or judgement; the output is written whole at the end (atomically).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ember.adp.io import atomic_writer, iter_units
from ember.adp.model import api_action, message_action, text_observation, trajectory
from ember.evaluate.agent import run_agent
from ember.evaluate.item import Item
from ember.evaluate.scoring import get_scorer
from ember.evaluate.search import open_searcher
from ember.evaluate.templates import load_prompt, render
from ember.llm.backends import SamplingParams

BEHAVIOURS = ("information_verification", "authority_evaluation", "adaptive_search",
              "error_recovery")
POLICIES = ("all-behaviours", "correct-only", "random", "any")
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {b: {"enum": ["yes", "no"]} for b in BEHAVIOURS},
    "required": list(BEHAVIOURS),
    "additionalProperties": False,
}
SEARCH_TOOL = {"type": "function", "function": {
    "name": "search",
    "description": "Search the paragraph collection; returns the best-matching paragraphs.",
    "parameters": {"type": "object", "required": ["query"], "properties": {
        "query": {"type": "string", "description": "What to look for."}}}}}
SNIPPET_CHARS = 300  # of each paragraph, in the judge's view of a search result


@dataclass
class TrajectoryConfig:
    """What `ember synth trajectories` does; each field is a CLI option of the same name."""

    questions: str = field(metadata={"help": "JSONL of {id, question, answer}"})
    index: str = field(metadata={"help": "index directory (`ember synth index`) or the URL "
                                         "of a /retrieve server"})
    out: str = field(metadata={"help": "output ADP JSONL"})
    rollouts: int = field(default=4, metadata={"help": "trajectories per question"})
    keep: str = field(default="all-behaviours", metadata={"help": " | ".join(POLICIES)})
    max_turns: int = field(default=4, metadata={"help": "steps per rollout, answer included"})
    topk: int = field(default=3, metadata={"help": "paragraphs returned per search"})
    temperature: float = field(default=0.7, metadata={"help": "teacher sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "teacher nucleus sampling"})
    max_new_tokens: int = field(default=256, metadata={"help": "teacher tokens per step"})
    seed: int = field(default=0, metadata={"help": "rollout k of a question uses seed + k"})
    judge_temperature: float = field(default=0.3, metadata={
        "help": "judge temperature (retries of unparsable JSON need some)"})
    judge_max_new_tokens: int = field(default=128, metadata={"help": "judge tokens per call"})
    judge_attempts: int = field(default=3, metadata={"help": "judge tries per trajectory"})
    limit: int | None = field(default=None, metadata={"help": "first N questions only"})
    rejects: str | None = field(default=None, metadata={
        "help": "rejects JSONL [default: OUT with .rejects.jsonl]"})


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
            bad.append({"source": str(path), "line": line, "reason": f"bad-json: {e}"})
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
            bad.append({"source": str(path), "line": line, "reason": reason})
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


def to_adp(traj_id: str, rollout, details: dict) -> dict:
    """One rollout as an ADP trajectory (well-formed steps only; the full log in details)."""
    content = [text_observation(rollout.question, "user")]
    calls = 0
    for s in rollout.steps:
        if s.get("action") == "search":
            cid = f"call_{calls}"
            calls += 1
            content.append(api_action("search", {"query": s["query"]}, s["think"] or None,
                                      tool_call_id=cid))
            content.append(text_observation(_results(s), "environment", name="search",
                                            tool_call_id=cid))
        elif s.get("action") == "answer":
            content.append(message_action(s["answer"], s["think"] or None, final=True,
                                          answer=s["answer"]))
    return trajectory(traj_id, content, details, tools=[SEARCH_TOOL])


def _score(answer: str | None, gold) -> dict:
    if gold is None:
        return {"correct": None, "em": None, "f1": None}
    m = get_scorer("qa")(answer or "", Item(id="", messages=[], gold=gold))
    return {"correct": bool(answer) and m["em"] == 1.0, "em": m["em"], "f1": m["f1"]}


def _usage_delta(llm, before: dict) -> dict:
    return {k: round(v - before[k], 3) if isinstance(v, float) else v - before[k]
            for k, v in llm.usage.items()}


def synthesize(cfg: TrajectoryConfig, teacher, judge, *, search=None, on_step=None,
               on_judge=None) -> dict:
    """Run the pipeline; writes OUT, the rejects file and OUT.summary.json; returns the
    summary. ``teacher`` and ``judge`` are ember.llm.client.LLM objects (may be one)."""
    if cfg.keep not in POLICIES:
        raise ValueError(f"unknown --keep {cfg.keep!r}; choose one of {', '.join(POLICIES)}")
    out = Path(cfg.out)
    rejects_path = Path(cfg.rejects) if cfg.rejects else out.with_name(out.name + ".rejects.jsonl")
    questions, rejects = read_questions(cfg.questions, cfg.limit)
    if not questions:
        raise ValueError(f"{cfg.questions}: no usable question ({len(rejects)} rejected)")
    search = search or open_searcher(cfg.index)

    # 1. roll out: question-major order, rollout k with seed + k
    jobs = [(q, k) for q in questions for k in range(cfg.rollouts)]
    params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p,
                            max_new_tokens=cfg.max_new_tokens)
    before = dict(teacher.usage)
    rollouts = run_agent(teacher, [q["question"] for q, _ in jobs], search, params,
                         seeds=[cfg.seed + k for _, k in jobs], max_turns=cfg.max_turns,
                         topk=cfg.topk, on_step=on_step)
    teacher_usage = _usage_delta(teacher, before)

    # 2. reject what cannot be judged, judge the rest in one batch
    to_judge = []
    for (q, k), r in zip(jobs, rollouts):
        reason = None
        if r.status == "error":
            reason = f"backend-error: {r.error}"
        elif not any("action" in s for s in r.steps):
            first = next((s["violation"] for s in r.steps if "violation" in s), "no step")
            reason = f"no-valid-step: every step broke the format (first: {first})"
        if reason:
            rejects.append({"question_id": q["id"], "rollout": k, "reason": reason,
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
            rejects.append({"question_id": q["id"], "rollout": k,
                            "reason": f"judge-failed: {why}", "status": r.status,
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
            "teacher": teacher.model, "judge": judge.model, "steps": r.steps,
        }
        trajs.append(to_adp(f"{q['id']}-r{k}", r, details))
    kept = [trajs[i] for i in select(records, cfg.keep, cfg.seed)]

    with atomic_writer(out) as f:
        f.write(b"".join(orjson.dumps(t) + b"\n" for t in kept))
    with atomic_writer(rejects_path) as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in rejects))
    reasons: dict[str, int] = {}
    for r in rejects:
        kind = r["reason"].split(":", 1)[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    summary = {
        "questions": len(questions), "rollouts": len(rollouts),
        "answered": sum(r.status == "answered" for r in rollouts),
        "turn_limit": sum(r.status == "turn-limit" for r in rollouts),
        "judged": len(records), "correct": sum(r["correct"] is True for r in records),
        "keep": cfg.keep, "kept": len(kept), "rejected": len(rejects),
        "reject_reasons": reasons, **statistics(records),
        "usage": {"teacher": teacher_usage, "judge": judge_usage},
        "config": dataclasses.asdict(cfg),
        "output": str(out), "rejects": str(rejects_path),
    }
    with atomic_writer(out.with_name(out.name + ".summary.json")) as f:
        f.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    return summary
