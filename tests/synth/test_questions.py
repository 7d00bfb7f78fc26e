"""`ember synth questions`: dedup, parsers, judge thresholds, curriculum; the whole
pipeline against a scripted teacher (a real local HTTP server answering each stage) and,
slow, the CLI against the real `transformers serve` of the embedded model."""

from __future__ import annotations

import json
import re
from collections import Counter

import jsonschema
import pytest

from ember.schemas import load_schema
from ember.llm.backends import make_backend
from ember.llm.cache import Cache
from ember.synth.dedup import near_duplicates
from ember.llm.client import LLM
from ember.synth.questions import (EXAMPLES, QuestionsConfig, below, curriculum, labelled,
                                   parse_composed, parse_judge, parse_seed, scorer_for,
                                   synth_questions)
from tests.llm.test_backends import ok, scripted_server

TASK = jsonschema.Draft202012Validator(load_schema("task"))
STAGES = ("seed", "compose", "extract", "dedup", "judge", "consistency")  # in pipeline order


def read(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


# ---------------------------------------------------------------- dedup

def test_dedup_removes_near_duplicates_and_keeps_distinct():
    texts = ["If a train travels 60 km in one hour, how far does it go in 3 hours?",
             "Who wrote the play Hamlet, and in which century was it written?",
             "if a train travels 60 km in one hour how far does it go in 3 hours",
             "Which planet is the largest in the solar system?",
             "Who wrote the play Hamlet and in which century was it written?"]
    dups = near_duplicates(texts, threshold=0.8)
    assert set(dups) == {2, 4}
    assert dups[2][0] == 0 and dups[4][0] == 1 and dups[2][1] >= 0.99
    assert near_duplicates(texts[:2] + texts[3:4], threshold=0.8) == {}


def test_dedup_against_earlier_rounds_and_threshold():
    keep = ["Which planet is the largest in the solar system?"]
    texts = ["Which planet is the largest in our solar system?", "How many legs has a spider?"]
    assert list(near_duplicates(texts, 0.5, keep=keep)) == [0]
    assert near_duplicates(texts, 0.5, keep=keep)[0][0] == 0  # index into keep + texts
    assert near_duplicates(texts, 0.999, keep=keep) == {}
    assert near_duplicates(["", ""], 0.8) == {}  # no words: never a duplicate


# ---------------------------------------------------------------- parsers

def test_parse_seed_is_forgiving_about_labels():
    text = ("Here is my answer.\n**Document:** Ada Lovelace wrote the first program.\n"
            "It ran on the Analytical Engine.\n\nQ1) Who wrote the first program?\n"
            "A1: **Ada Lovelace.**\nQuestion 2: On which machine did it run?\n"
            "Answer 2: The Analytical Engine\nQ3: unanswered")
    doc, pairs = parse_seed(text, k=3, need_document=True)
    assert doc == "Ada Lovelace wrote the first program.\nIt ran on the Analytical Engine."
    assert pairs == [{"question": "Who wrote the first program?", "answer": "Ada Lovelace"},
                     {"question": "On which machine did it run?",
                      "answer": "The Analytical Engine"}]
    # no Document label: the opening paragraph is the document
    doc, _ = parse_seed("Rome was founded in 753 BC.\nQ1: When?\nA1: 753 BC\nQ2: Where?\n"
                        "A2: Italy", 2, True)
    assert doc == "Rome was founded in 753 BC."
    with pytest.raises(ValueError, match="too-few-questions"):
        parse_seed("Document: x\nQ1: a?\nA1: b", 2, True)
    with pytest.raises(ValueError, match="no-document"):
        parse_seed("Q1: a?\nA1: b\nQ2: c?\nA2: d", 2, True)
    assert parse_seed("Q1: a?\nA1: b\nQ2: c?\nA2: d", 2, False)[1][1]["answer"] == "d"


def test_parse_composed_takes_the_last_question():
    text = ("Q1: Where was she born?\nA1: Warsaw\nThinking: She was born in Warsaw, which "
            "lies on the Vistula.\nQuestion: On which river lies her birthplace?\n"
            "Answer: The Vistula.\nAnd more chatter")
    assert parse_composed(text) == {"question": "On which river lies her birthplace?",
                                    "answer": "The Vistula",
                                    "thinking": "She was born in Warsaw, which lies on the "
                                                "Vistula."}
    assert parse_composed("Question: no answer given") is None
    assert parse_composed("Just prose.") is None
    assert [label for label, _ in labelled("intro\nThinking: t\nQuestion: q\nAnswer: a")] == \
        ["", "thinking", "q", "a"]


def test_parse_judge_json_lines_and_failures():
    assert parse_judge('Sure! {"clarity": 4, "answerability": 5, "multi_hop_depth": 2, '
                       '"correctness": 3.5} done') == \
        {"clarity": 4, "answerability": 5, "multi_hop_depth": 2, "correctness": 3.5}
    lines = "Clarity: 4\nAnswerability - 3\nMulti-hop depth: 5/5\n**Correctness**: 2"
    assert parse_judge(lines) == {"clarity": 4, "answerability": 3, "multi_hop_depth": 5,
                                  "correctness": 2}
    # a JSON object missing one dimension is completed from the lines
    assert parse_judge('{"clarity": 5, "answerability": 5, "correctness": 5}\n'
                       'multi_hop_depth: 1')["multi_hop_depth"] == 1
    assert parse_judge('{"clarity": 4, "answerability": 5, "correctness": 3}') is None
    assert parse_judge("clarity 9, answerability 5, multi_hop_depth 5, correctness 5") is None
    assert parse_judge("") is None


def test_judge_thresholds():
    scores = {"clarity": 4, "answerability": 3, "multi_hop_depth": 2.5, "correctness": 5}
    assert below(scores, 3) == ["multi_hop_depth"]
    assert below(scores, 2.5) == []
    assert below(scores, 5) == ["clarity", "answerability", "multi_hop_depth"]


# ---------------------------------------------------------------- records

def test_scorer_for():
    assert scorer_for("math", "165") == "math"
    assert scorer_for("math", "3/4") == "math"
    assert scorer_for("math", "$1,200") == "math"
    assert scorer_for("math", "Paris") == "qa"
    assert scorer_for("history", "1440") == "qa"


def test_curriculum_formats():
    task = {"id": "mg-1", "prompt": "Which river is longer, the Nile or the Amazon?",
            "answer": "The Nile", "scorer": "qa", "thinking": "6650 km is more than 6400 km."}
    rows = curriculum(task)
    assert [r["curriculum"] for r in rows] == ["answer", "thinking-given", "thinking-and-answer"]
    assert [r["stage"] for r in rows] == [1, 2, 3]
    asked = rows[0]["messages"][0]["content"]
    assert asked.startswith("Question: Which river is longer") and "Answer: <answer>" in asked
    assert rows[0]["messages"][1] == {"role": "assistant", "content": "Answer: The Nile"}
    assert rows[1]["messages"][0]["content"].endswith("Reasoning:\n6650 km is more than 6400 km.")
    assert rows[2]["messages"][1]["content"] == "6650 km is more than 6400 km.\n\nAnswer: The Nile"
    assert all(r["task_id"] == "mg-1" and len({x["id"] for x in rows}) == 3 for r in rows)
    math_task = {"id": "m", "prompt": "2+3?", "answer": "5", "scorer": "math"}
    (only,) = curriculum(math_task)  # no thinking: only the first step
    assert only["messages"][1]["content"] == "The answer is \\boxed{5}."
    assert "\\boxed{}" in only["messages"][0]["content"]


# ---------------------------------------------------------------- pipeline, scripted teacher

def teacher(k, path, body, headers):
    """A scripted teacher: a reply per stage, recognised from the last user message."""
    ask = body["messages"][-1]["content"]
    if "Write a short background document" in ask:
        topic = re.search(r"topic: ([^)]*)\)", ask).group(1)
        if "ages of people" in topic:  # one unusable seed reply
            return 200, ok(path, body, "I like turtles."), 0
        text = (f"Document: Facts about {topic}. Item A has 7 parts and item B has 5.\n"
                f"Q1: How many parts has item A in {topic}?\nA1: 7\n"
                f"Q2: How many parts has item B in {topic}?\nA2: 5")
    elif "Combine these questions" in ask:
        found = re.search(r"Facts about ([^.]*)\.", ask)
        topic = found.group(1) if found else "general things"
        if "sharing" in topic:  # labels missing: the extraction stage gets it
            text = "I think the combined question asks about sharing."
        else:
            text = (f"Thinking: A has 7, B has 5, together 12.\nQuestion: How many parts do "
                    f"items A and B of {topic} have together?\nAnswer: 12")
    elif "Return them as one JSON object" in ask:
        text = ('```json\n{"question": "How many cookies does each of 3 friends get from 12?",'
                ' "answer": "4", "thinking": "12 / 3 = 4"}\n```')
    elif "strict reviewer" in ask:
        low = "speed" in ask  # the judge dislikes one question
        text = json.dumps({"clarity": 2 if low else 4, "answerability": 5,
                           "multi_hop_depth": 4, "correctness": 5})
    else:  # re-solving: right for every question but the one about rooms
        text = "7 + 5 = 12, so the answer is \\boxed{13}." if "rooms" in ask else \
            ("so the answer is \\boxed{4}." if "cookies" in ask else
             "7 + 5 = 12, so the answer is \\boxed{12}.")
    return 200, ok(path, body, text), 0


def test_pipeline_with_scripted_teacher(tmp_path):
    out = tmp_path / "tasks.jsonl"
    cfg = QuestionsConfig(out=str(out), count=6, categories=["math"], relations=["bridging"],
                          oversample=1.0, max_rounds=1)
    with scripted_server(teacher) as (url, seen, _):
        with LLM(make_backend("openai", "teacher", base_url=url, max_retries=0), model="teacher",
                 cache=Cache(tmp_path / "cache.sqlite")) as llm:
            summary = synth_questions(cfg, llm)
        sent = len(seen)
    # slots 0..5: math topics prices, speed, ages, rooms, sharing, savings in turn
    rows = read(out)
    assert summary["produced"] == len(rows) == 3  # prices, sharing (via extraction), savings
    for row in rows:
        TASK.validate(row)
        assert row["scorer"] == "math" and row["category"] == "math" and row["scores"]
        assert set(row["scores"]) >= {"clarity", "answerability", "multi_hop_depth",
                                      "correctness", "consistency"}
    assert {r["answer"] for r in rows} == {"12", "4"}
    rejects = read(tmp_path / "tasks.rejects.jsonl")
    assert sorted((r["stage"], r["reason"]) for r in rejects) == [
        ("consistency", "answer-mismatch"), ("judge", "low-score"), ("seed", "too-few-questions")]
    assert all(r["detail"] for r in rejects)
    assert summary["rejected_by_reason"] == {"consistency: answer-mismatch": 1,
                                             "judge: low-score": 1, "seed: too-few-questions": 1}
    assert summary["extracted_by"] == {"rule": 4, "llm": 1}
    assert summary["judge_histogram"]["clarity"] == {"1": 0, "2": 1, "3": 0, "4": 4, "5": 0}
    saved = json.loads((tmp_path / "tasks.jsonl.summary.json").read_text())
    assert saved["produced"] == 3 and saved["llm"]["calls"] == sent

    # rerun: every call comes from the cache, same output; then the curriculum format
    first = out.read_text()
    cfg.format, cfg.out = "sft", str(tmp_path / "sft.jsonl")
    with scripted_server(teacher) as (url, seen, _):
        with LLM(make_backend("openai", "teacher", base_url=url, max_retries=0), model="teacher",
                 cache=Cache(tmp_path / "cache.sqlite")) as llm:
            cfg2 = QuestionsConfig(out=str(out), count=6, categories=["math"],
                                   relations=["bridging"], oversample=1.0, max_rounds=1)
            again = synth_questions(cfg2, llm)
            sft = synth_questions(cfg, llm)
        assert seen == []
    assert out.read_text() == first and again["llm"]["calls"] == 0
    sft_rows = read(tmp_path / "sft.jsonl")
    assert sft["records"] == len(sft_rows) == 9
    assert all(len(r["messages"]) == 2 and r["messages"][1]["role"] == "assistant"
               for r in sft_rows)


def test_rounds_top_up_and_example_copies_are_rejected(tmp_path):
    def copier(k, path, body, headers):
        ask = body["messages"][-1]["content"]
        if "Combine these questions" in ask and "prices" in ask:  # parrots the example
            ex = EXAMPLES["bridging"]
            return 200, ok(path, body, f"Question: {ex['question']}\nAnswer: {ex['answer']}"), 0
        return teacher(k, path, body, headers)

    out = tmp_path / "t.jsonl"
    cfg = QuestionsConfig(out=str(out), count=2, categories=["math"], relations=["bridging"],
                          oversample=1.0, max_rounds=3, judge=False, consistency=False)
    with scripted_server(copier) as (url, _, _):
        with LLM(make_backend("openai", "t", base_url=url, max_retries=0), model="t") as llm:
            summary = synth_questions(cfg, llm)
    # round 1: prices (copied example), speed -> 1 kept; round 2: ages (no questions),
    # round 3: rooms -> 2 kept
    assert summary["produced"] == 2 and summary["rounds"] == 3 and summary["read"] == 4
    assert summary["rejected_by_reason"] == {"dedup: copied-example": 1,
                                             "seed: too-few-questions": 1}
    for row in read(out):
        TASK.validate(row)


def test_seeds_file_and_bad_lines(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"text": "Facts about bridges. Item A has 7 parts and item B has 5."}\n'
                     'not json\n{"question": "2+2?"}\n[1]\n'
                     '{"question": "What is 3+4?", "answer": 7, "category": "math"}\n')

    def reply(k, path, body, headers):
        ask = body["messages"][-1]["content"]
        if "Write 2 questions" in ask:
            return 200, ok(path, body, "Q1: First?\nA1: 7\nQ2: Second?\nA2: 5"), 0
        return teacher(k, path, body, headers)

    out = tmp_path / "t.jsonl"
    cfg = QuestionsConfig(out=str(out), count=2, seeds=str(seeds), oversample=1.0, max_rounds=1,
                          judge=False, consistency=False, rejects=str(tmp_path / "bad.jsonl"))
    with scripted_server(reply) as (url, seen, _):
        with LLM(make_backend("openai", "t", base_url=url, max_retries=0), model="t") as llm:
            summary = synth_questions(cfg, llm)
    bad = read(tmp_path / "bad.jsonl")
    assert [(r["stage"], r["reason"], r["line"]) for r in bad if r["stage"] == "seeds"] == [
        ("seeds", "invalid-json", 2), ("seeds", "missing-field", 3), ("seeds", "not-an-object", 4)]
    # the user's document reached the model, and the records name their source line
    asked = [r["body"]["messages"][-1]["content"] for r in seen]
    assert any(a.startswith("Facts about bridges") for a in asked)
    assert any(a.startswith("Question: What is 3+4?\nAnswer: 7") for a in asked)
    rows = read(out)
    assert rows and all(r["source"].endswith((":1", ":5")) for r in rows)
    assert summary["rejects"] == str(tmp_path / "bad.jsonl")


# ---------------------------------------------------------------- CLI, real served model

@pytest.mark.slow
def test_cli_against_served_model(ember, served_model, tmp_path):
    out = tmp_path / "tasks.jsonl"
    args = ["synth", "questions", "--backend", "openai", "--base-url", served_model.base_url,
            "--model", served_model.model, "--concurrency", "1", "--timeout", "600", "--count", "2",
            "--oversample", "1", "--max-rounds", "1", "--max-new-tokens", "64",
            "--categories", "science,history", "-o", out, "--json"]
    proc = ember(*args, check=False)
    summary = json.loads(proc.stdout)
    rows = read(out)
    rejects = read(summary["rejects"])
    print(f"served-model yield: {len(rows)}/{summary['read']} candidates, "
          f"rejects {summary['rejected_by_reason']}")
    # nothing produced is an unsuccessful run that says why, not a quiet success
    if rows:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode != 0 and summary["exit_code"] == proc.returncode, proc.stderr
        assert summary["rejects"] in summary["error"]
    for row in rows:
        TASK.validate(row)

    # every candidate is kept (or surplus) or rejected, once, with a stage and a reason
    assert summary["read"] == 2 and summary["produced"] == len(rows)
    assert summary["rejected"] == len(rejects) == 2 - len(rows) - summary["surplus"]
    slots = [r["slot"] for r in rejects]
    assert sorted(set(slots)) == sorted(slots) and set(slots) <= {0, 1}
    for r in rejects:
        assert r["stage"] in STAGES and re.fullmatch(r"[a-z]+(-[a-z]+)*", r["reason"]), r
        assert r["detail"], r
    assert summary["rejected_by_reason"] == dict(Counter(f"{r['stage']}: {r['reason']}"
                                                         for r in rejects))
    # each stage passes on what it does not reject: in = out + rejected, out = next in
    flow, by_stage = summary["stages"], Counter(r["stage"] for r in rejects)
    passed = summary["read"]
    for stage in STAGES:
        got = {k: flow[stage].get(k, 0) for k in ("in", "out", "rejected")}
        assert got == {"in": passed, "out": passed - by_stage[stage],
                       "rejected": by_stage[stage]}, (stage, flow)
        passed = got["out"]
    assert passed == len(rows) + summary["surplus"]
    # what the tiny model reliably does (it serves greedily): a seed reply that parses
    composed = flow["compose"].get("in", 0)
    assert composed >= 1, flow
    assert summary["llm"]["calls"] >= 2 + composed  # a seed call each, then a composition

    # rerun with the same cache and a dead endpoint: nothing is sent, same output
    first = out.read_text()
    dead = ["--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0"]
    again_proc = ember(*[a for a in args if a != served_model.base_url and a != "--base-url"],
                       *dead, check=False)
    assert again_proc.returncode == proc.returncode, again_proc.stderr
    again = json.loads(again_proc.stdout)
    assert again["llm"]["calls"] == 0 and again["llm"]["failed"] == 0
    assert out.read_text() == first and read(again["rejects"]) == rejects


def test_cli_bad_options_fail_before_any_model_loads(ember, tmp_path):
    proc = ember("synth", "questions", "--relations", "bridging,causal", "-o",
                 tmp_path / "t.jsonl", check=False)
    assert proc.returncode == 2 and "unknown relation(s) ['causal']" in proc.stderr
    proc = ember("synth", "questions", "--seeds", tmp_path / "missing.jsonl", "-o",
                 tmp_path / "t.jsonl", check=False)
    assert proc.returncode == 2 and "missing.jsonl: no such file" in proc.stderr
    assert not (tmp_path / "t.jsonl").exists()
