"""`ember synth trajectories`: judge output parsing, keep policies and statistics, the
whole command against a scripted OpenAI-compatible server (teacher and judge with fixed
replies: exact counts, ADP validity, sft-chat export, resume), and one slow run against
the real `transformers serve` behind a request-counting proxy."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from ember.adp.model import details_of

from ember.llm.client import parse_json_object
from ember.synth.trajectories import (BEHAVIOURS, JUDGE_SCHEMA, POLICIES, labels_of, select,
                                      statistics)
from tests.served_model import counting_proxy
from tests.evaluate.test_agent import turn_and_question
from tests.llm.test_backends import ok, scripted_server

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "data" / "search" / "corpus.jsonl"
JUDGE_MARK = "You review the work of a research agent"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).open() if line.strip()]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    from ember.evaluate.search import build_index

    out = tmp_path_factory.mktemp("traj") / "index"
    build_index(CORPUS, out)
    return out


# ---------------------------------------------------------------- judge output

def _judge(text: str):
    obj, reason = parse_json_object(text)
    if obj is None:
        return None, reason
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(JUDGE_SCHEMA).iter_errors(obj))
    return (None, error.message) if error else (labels_of(obj), None)


ALL_YES = {b: "yes" for b in BEHAVIOURS}


def test_judge_json_parses_strictly():
    labels, _ = _judge(json.dumps(ALL_YES))
    assert labels == {b: True for b in BEHAVIOURS}
    mixed = dict(ALL_YES, error_recovery="no")
    labels, _ = _judge(f"Here you go:\n```json\n{json.dumps(mixed)}\n```")
    assert labels["error_recovery"] is False and labels["adaptive_search"] is True
    for bad in (json.dumps(dict(ALL_YES, adaptive_search="maybe")),
                json.dumps(dict(ALL_YES, adaptive_search=True)),
                json.dumps({b: "yes" for b in BEHAVIOURS[:3]}),
                json.dumps(dict(ALL_YES, reason="looks fine")),
                "yes, yes, no, yes", "{'information_verification': 'yes'}"):
        labels, reason = _judge(bad)
        assert labels is None and reason


def test_judge_reads_steps_results_and_violations_but_no_gold():
    from ember.evaluate.agent import Rollout
    from ember.synth.trajectories import judge_prompt

    info = "<information>\nDoc 1 (Title: A) " + "a" * 1000 + "\n</information>"
    rollout = Rollout("Who is A?", 0, [], status="answered", answer="B", steps=[
        {"turn": 1, "text": "no tags", "violation": "no action: add one"},
        {"turn": 2, "think": "look", "action": "search", "query": "A", "information": info},
        {"turn": 3, "think": "done", "action": "answer", "answer": "B"}])
    text = judge_prompt("Who is A?", rollout)[0]["content"]
    assert "Step 1 (badly formatted; the agent was told: no action: add one):\nno tags" in text
    assert "Search: A\nResults:\nDoc 1 (Title: A) aaa" in text and "a" * 400 not in text
    assert "Answer: B" in text and "<information>" not in text
    assert "Question: Who is A?" in text and "{transcript}" not in text


# ---------------------------------------------------------------- policies and statistics

def _record(answered, correct, *labels):
    return {"answered": answered, "correct": correct,
            "behaviours": dict(zip(BEHAVIOURS, labels))}


RECORDS = [
    _record(True, True, True, True, True, True),       # 0: all four, right
    _record(True, False, True, True, True, True),      # 1: all four, wrong
    _record(True, True, True, False, True, False),     # 2: right, two behaviours
    _record(False, False, True, True, True, True),     # 3: all four, never answered
    _record(True, False, False, False, False, False),  # 4: nothing
    _record(True, None, True, True, True, True),       # 5: all four, no gold
]


def test_keep_policies():
    assert select(RECORDS, "all-behaviours") == [0, 1, 5]  # right or wrong; answered only
    assert select(RECORDS, "correct-only") == [0, 2]
    assert select(RECORDS, "any") == list(range(6))
    picked = select(RECORDS, "random", seed=3)
    assert len(picked) == 3 and set(picked) <= {0, 1, 2, 4, 5} and picked == sorted(picked)
    assert select(RECORDS, "random", seed=3) == picked  # seeded
    assert {tuple(select(RECORDS, "random", seed=s)) for s in range(20)} != {tuple(picked)}
    with pytest.raises(ValueError, match="unknown keep policy"):
        select(RECORDS, "best")


def test_statistics_split_by_correctness():
    stats = statistics(RECORDS)
    table = stats["behaviours"]
    assert [table[g]["n"] for g in ("all", "correct", "incorrect")] == [6, 2, 3]
    assert table["all"]["information_verification"] == 5 and table["all"]["all_four"] == 4
    assert table["correct"]["authority_evaluation"] == 1 and table["correct"]["all_four"] == 1
    assert table["incorrect"]["all_four"] == 2 and table["incorrect"]["adaptive_search"] == 2
    assert stats["policies"] == {"all-behaviours": 3, "correct-only": 2, "random": 3, "any": 6}
    assert set(stats["policies"]) == set(POLICIES)


# ---------------------------------------------------------------- the command, scripted

QUESTIONS = [
    {"id": "q1", "question": "Were Scott Derrickson and Ed Wood of the same nationality?",
     "answer": "yes"},
    "{broken json",
    {"id": "q2", "question": "What government position was held by the woman who portrayed "
                             "Corliss Archer in the film Kiss and Tell?",
     "answer": "Chief of Protocol"},
    {"id": "q3", "question": "Loop: which page mentions zzyzx?", "answer": "Zzyzx Road"},
    {"id": "q1", "question": "A repeated id", "answer": "x"},
    {"id": "q4", "answer": "no question"},
]

# (question keyword, seed) -> step texts in turn order
TEACHER = {
    ("Derrickson", 0): ["<think>First him.</think><search>Scott Derrickson</search>",
                        "<think>Now Ed Wood.</think><search>Ed Wood filmmaker</search>",
                        "<think>Both American.</think><answer>yes</answer>"],
    ("Derrickson", 1): ["<think>Only Ed Wood.</think><search>Ed Wood filmmaker</search>",
                        "<think>Guess.</think><answer>no</answer>"],
    ("Corliss", 0): ["I will not use the format."] * 5,
    ("Corliss", 1): ["<think>Find the film.</think><search>Kiss and Tell 1945 film</search>",
                     "<think>Shirley Temple became Chief of Protocol.</think>"
                     "<answer>Chief of Protocol</answer>"],
    ("zzyzx", 0): ["<think>Look.</think><search>qwzxv zzyzx</search>"] * 5,
    ("zzyzx", 1): ["<think>Look.</think><search>qwzxv zzyzx again</search>"] * 5,
}


def _judge_reply(prompt: str, seed: int) -> str:
    if "Search: Scott Derrickson" in prompt:
        return json.dumps(ALL_YES)
    if "Answer: no" in prompt:
        return json.dumps({b: "yes" if b == BEHAVIOURS[0] else "no" for b in BEHAVIOURS})
    if "Kiss and Tell" in prompt:  # garbage on the first attempt, a fenced object on the retry
        return "Sure! All yes." if seed == 0 else f"```json\n{json.dumps(ALL_YES)}\n```"
    if "zzyzx again" in prompt:
        return json.dumps({b: "no" for b in BEHAVIOURS})
    return "I cannot judge this."  # q3 rollout 0: never valid, rejected after 3 attempts


def _reply(k, path, body, headers):
    prompt = body["messages"][0]["content"]
    if JUDGE_MARK in prompt:
        return 200, ok(path, body, _judge_reply(prompt, body["seed"])), 0
    turn, question = turn_and_question(body)
    key = next(key for key in ("Derrickson", "Corliss", "zzyzx") if key in question)
    return 200, ok(path, body, TEACHER[key, body["seed"]][turn]), 0


def _write_questions(path: Path) -> Path:
    path.write_text("".join((q if isinstance(q, str) else json.dumps(q)) + "\n"
                            for q in QUESTIONS))
    return path


def _run(ember, url, questions, index_dir, out, *extra, protocol="tags"):
    proc = ember("synth", "trajectories", "--backend", "openai", "--base-url", url,
                 "--model", "scripted", "--max-retries", "0", "-q", questions,
                 "--search-index", index_dir, "--samples", "2", "--max-turns", "3", "-o", out,
                 "--json", "--protocol", protocol, *extra)
    return json.loads(proc.stdout)


def test_trajectories_scripted_end_to_end(ember, tmp_path, index_dir):
    """The tags protocol (Search-R1), every count exact."""
    questions = _write_questions(tmp_path / "q.jsonl")
    out = tmp_path / "trajs.jsonl"
    with scripted_server(_reply) as (url, seen, _):
        summary = _run(ember, url, questions, index_dir, out, "--keep", "any")
        judge_prompts = [r["body"]["messages"][0]["content"] for r in seen
                         if JUDGE_MARK in r["body"]["messages"][0]["content"]]
        assert len(seen) == 16 + 8  # teacher steps 3+2+3+2+3+3; judge 1+1+2+3+1
        assert len(judge_prompts) == 8
        assert not any("Zzyzx Road" in p for p in judge_prompts)  # never shown the gold

        assert summary["questions"] == 3 and summary["rollouts"] == 6
        assert summary["answered"] == 3 and summary["turn_limit"] == 3
        assert summary["judged"] == 4 and summary["correct"] == 2
        assert summary["rejected_by_reason"] == {"bad-json": 1, "duplicate-id": 1,
                                             "missing-question": 1, "no-valid-step": 1,
                                             "judge-failed": 1}
        assert summary["rejected"] == 5 and summary["kept"] == 4
        table = summary["behaviours"]
        assert [table[g]["n"] for g in ("all", "correct", "incorrect")] == [4, 2, 2]
        assert table["all"]["information_verification"] == 3
        assert table["all"]["all_four"] == 2 and table["incorrect"]["all_four"] == 0
        assert summary["policies"] == {"all-behaviours": 2, "correct-only": 2, "random": 2,
                                       "any": 4}
        assert summary["usage"]["teacher"]["calls"] == 16
        assert summary["usage"]["judge"]["calls"] == 8
        assert json.loads(Path(f"{out}.summary.json").read_text()) == summary

        trajs = _rows(out)
        assert [t["id"] for t in trajs] == ["q1-r0", "q1-r1", "q2-r1", "q3-r1"]
        first = trajs[0]
        assert [e["class_"] for e in first["content"]] == [
            "text_observation", "api_action", "text_observation", "api_action",
            "text_observation", "message_action"]
        search, result = first["content"][1:3]
        assert search["function"] == "search" and search["kwargs"] == {"query": "Scott Derrickson"}
        assert search["description"] == "First him."
        assert result["source"] == "environment" and result["tool_call_id"] == search["tool_call_id"]
        assert result["content"].startswith("Doc 1 (Title: Scott Derrickson)")
        final = first["content"][-1]
        assert final["answer"] == "yes" and final["final"] is True
        d = details_of(first)
        assert d["behaviours"] == {b: True for b in BEHAVIOURS} and d["correct"] is True
        assert d["gold"] == "yes" and d["seed"] == 0 and d["turns"] == 3
        assert details_of(trajs[1])["correct"] is False and details_of(trajs[1])["f1"] == 0.0
        assert details_of(trajs[3])["status"] == "turn-limit"
        assert trajs[3]["content"][-1]["class_"] == "text_observation"

        rejects = _rows(tmp_path / "trajs.rejects.jsonl")
        assert [r["line"] for r in rejects if r["line"] is not None] == [2, 5, 6]
        by_reason = {r["reason"].split(":")[0]: r for r in rejects if "rollout" in r}
        assert by_reason["no-valid-step"]["question_id"] == "q2"
        assert "no action" in by_reason["no-valid-step"]["detail"]
        assert by_reason["judge-failed"]["question_id"] == "q3"
        assert "after 3 attempts" in by_reason["judge-failed"]["detail"]

        # valid ADP, and SFT data through `ember convert`
        report = json.loads(ember("validate", out, "--json").stdout)
        assert report["files"][0]["records"] == 4 and report["files"][0]["issues"] == []
        sft = tmp_path / "sft.jsonl"
        ember("convert", out, "--to", "sft-chat", "-o", sft)
        chats = _rows(sft)
        assert len(chats) == 4
        msgs = chats[0]["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant", "tool",
                                             "assistant"]
        call = msgs[1]["tool_calls"][0]
        assert call["function"]["name"] == "search"
        assert json.loads(call["function"]["arguments"]) == {"query": "Scott Derrickson"}
        assert msgs[2]["tool_call_id"] == call["id"] and "Scott Derrickson" in msgs[2]["content"]
        assert "<solution> yes </solution>" in msgs[-1]["content"]
        tools = chats[0]["tools"]  # the JSON text of the list (TRL decodes it), or the list
        tools = json.loads(tools) if isinstance(tools, str) else tools
        assert tools[0]["function"]["name"] == "search"

        # rerun: everything comes from the cache, and the output is the same bytes
        before, written = len(seen), out.read_bytes()
        again = _run(ember, url, questions, index_dir, out, "--keep", "any")
        assert len(seen) == before
        assert again["usage"]["teacher"]["calls"] == 0 == again["usage"]["judge"]["calls"]
        assert again["usage"]["teacher"]["cached"] == 16
        assert out.read_bytes() == written
        # other policies reuse the same calls
        kept = _run(ember, url, questions, index_dir, out, "--keep", "all-behaviours")
        assert len(seen) == before and kept["kept"] == 2
        assert [t["id"] for t in _rows(out)] == ["q1-r0", "q2-r1"]
        kept = _run(ember, url, questions, index_dir, out, "--keep", "correct-only")
        assert [t["id"] for t in _rows(out)] == ["q1-r0", "q2-r1"]


def test_trajectories_bad_arguments(ember, tmp_path, index_dir):
    questions = _write_questions(tmp_path / "q.jsonl")
    proc = ember("synth", "trajectories", "-q", questions, "--search-index", index_dir, "-o",
                 tmp_path / "t.jsonl", "--keep", "best", check=False)
    assert proc.returncode == 2 and "unknown --keep 'best'" in proc.stderr
    proc = ember("synth", "trajectories", "-q", questions, "--search-index", index_dir, "-o",
                 tmp_path / "t.jsonl", "--protocol", "xml", check=False)
    assert proc.returncode == 2 and "unknown --protocol 'xml'; choose one of native, tags" \
        in proc.stderr
    proc = ember("synth", "trajectories", "-q", questions, "--search-index", tmp_path / "nowhere",
                 "-o", tmp_path / "t.jsonl", "--backend", "openai", "--base-url",
                 "http://127.0.0.1:9/v1", check=False)
    assert proc.returncode == 2 and "is not a search index" in proc.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"id": 1}\n')
    proc = ember("synth", "trajectories", "-q", empty, "--search-index", index_dir, "-o",
                 tmp_path / "t.jsonl", "--backend", "openai", "--base-url",
                 "http://127.0.0.1:9/v1", check=False)
    assert proc.returncode == 2 and "no usable question" in proc.stderr


# ---------------------------------------------------------------- the real model

@pytest.mark.slow
def test_trajectories_with_served_model(ember, tmp_path, index_dir, served_model):
    """The embedded model as teacher and judge, native protocol. It serves greedily (its
    generation config does not sample), so what it writes is fixed: it answers without
    searching, in one step. `transformers serve` ignores response_format, so the judge's
    JSON is parsed and retried (the hf backend constrains it: the demo). Every rollout
    must be kept or rejected with a reason, exactly once, and the summary must agree with
    the files."""
    questions = tmp_path / "q.jsonl"
    asked = QUESTIONS[:1]  # q1 (yes/no)
    questions.write_text("".join(json.dumps(q) + "\n" for q in asked))
    out = tmp_path / "trajs.jsonl"
    with counting_proxy(served_model.base_url) as (url, count):
        args = ("synth", "trajectories", "--backend", "openai", "--base-url", url,
                "--model", served_model.model, "--timeout", "600", "-q", questions,
                "--search-index", index_dir, "--samples", "2", "--max-turns", "2",
                "--max-new-tokens", "64", "--judge-max-new-tokens", "64",
                "--judge-attempts", "2", "--keep", "any", "-o", out, "--json")
        proc = ember(*args, check=False)
        summary = json.loads(proc.stdout)
        sent = count["n"]
        usage = summary["usage"]
        assert sent == usage["teacher"]["calls"] + usage["judge"]["calls"] > 0
        trajs, rejects = _rows(out), _rows(summary["rejects"])
        print(f"served-model trajectories: {summary['answered']}/2 answered, "
              f"{len(trajs)} kept, rejects {summary['rejected_by_reason']}")
        # nothing kept is an unsuccessful run that says why (the tiny judge often fails)
        if trajs:
            assert proc.returncode == 0, proc.stderr
        else:
            assert proc.returncode != 0 and summary["exit_code"] == proc.returncode, proc.stderr
            assert summary["rejects"] in summary["error"]

        # every rollout is kept or rejected, once, and nothing else was rejected
        assert summary["rollouts"] == 2
        every = {(q["id"], k) for q in asked for k in range(2)}
        kept = [(details_of(t)["question_id"], details_of(t)["rollout"]) for t in trajs]
        dropped = [(r["question_id"], r["rollout"]) for r in rejects]
        assert sorted(kept + dropped) == sorted(every)
        assert all(r["line"] is None for r in rejects)  # the question was usable
        for r in rejects:  # a known reason, a sentence, and the rollout's own log
            assert r["reason"] in ("backend-error", "no-valid-step", "judge-failed"), r
            assert r["detail"] and isinstance(r["steps"], list)
            wrote_a_step = any("action" in s for s in r["steps"])
            if r["reason"] != "backend-error":  # judged only with a well-formed step
                assert wrote_a_step == (r["reason"] == "judge-failed"), r

        # the model did something worth checking: q1 was answered, in a well-formed step
        assert summary["answered"] >= 1
        assert summary["answered"] + summary["turn_limit"] + summary["rejected_by_reason"].get(
            "backend-error", 0) == 2
        judged_steps = [s for t in trajs for s in details_of(t)["steps"]] + \
            [s for r in rejects if r["reason"] == "judge-failed" for s in r["steps"]]
        assert any(s.get("action") == "answer" and s["answer"].strip() for s in judged_steps)
        for t in trajs:  # an answered rollout ends in its final answer
            d = details_of(t)
            assert d["status"] in ("answered", "turn-limit")
            if d["status"] == "answered":
                assert t["content"][-1]["class_"] == "message_action"
                # native: the reply as written, whose Answer: line (or whole text) is it
                assert d["prediction"] and d["prediction"] in t["content"][-1]["content"]
            assert set(d["behaviours"]) == set(BEHAVIOURS)

        # the summary says what the files hold
        assert summary["produced"] == summary["kept"] == summary["judged"] == len(trajs)
        assert summary["policies"]["any"] == len(trajs)
        assert summary["rejected"] == len(rejects)
        assert summary["rejected_by_reason"] == dict(Counter(r["reason"] for r in rejects))
        ember("validate", out)  # exits non-zero on any invalid record

        again_proc = ember(*args, check=False)
        assert again_proc.returncode == proc.returncode, again_proc.stderr
        assert count["n"] == sent  # the rerun sent nothing
        again = json.loads(again_proc.stdout)
        assert again["usage"]["teacher"]["calls"] == 0 == again["usage"]["judge"]["calls"]
        assert {k: again[k] for k in ("judged", "kept", "rejected")} == \
            {k: summary[k] for k in ("judged", "kept", "rejected")}
        assert _rows(out) == trajs


# ---------------------------------------------------------------- the native protocol

NATIVE_CALL = '<tool_call>{{"name": "search", "arguments": {{"query": "{}"}}}}</tool_call>'
NATIVE_TEACHER = {  # question keyword -> replies in turn order (any seed)
    "Derrickson": ["First him.\n" + NATIVE_CALL.format("Scott Derrickson"),
                   "Both are American.\nAnswer: yes"],
    "Corliss": ["Shirley Temple played her.\nAnswer: Chief of Protocol"],
}


def _native_reply(k, path, body, headers):
    prompt = body["messages"][0]["content"]
    if JUDGE_MARK in prompt:
        return 200, ok(path, body, json.dumps(ALL_YES)), 0
    turn, question = turn_and_question(body)
    return 200, ok(path, body, next(v for key, v in NATIVE_TEACHER.items()
                                    if key in question)[turn]), 0


def test_native_trajectory_exports_to_the_tokens_rft_and_eval_see(ember, tmp_path, index_dir,
                                                                  tiny_model):
    """One protocol end to end: a trajectory synthesized with native tool calls, exported
    by `ember convert --to sft-chat` and rendered by the chat template, is token for token
    (a) what the teacher was sent at each turn, and (b) what TRL builds at RFT time from
    `--env search` (tools from SearchEnvironment.search, arguments as parsed dicts)."""
    from transformers import AutoTokenizer

    from ember.adp.export.sft_chat import tools_of
    from ember.evaluate.search import SearchIndex
    from ember.evaluate.search_tool import SearchEnvironment, question_prompt

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS[:3:2]))
    out = tmp_path / "trajs.jsonl"
    with scripted_server(_native_reply) as (url, seen, _):
        summary = _run(ember, url, questions, index_dir, out, "--keep", "any",
                       protocol="native")
    assert summary["answered"] == 4 and summary["kept"] == 4 and summary["correct"] == 4
    teacher = [r["body"] for r in seen if "tools" in r["body"]]
    assert all(b["tools"][0]["function"]["name"] == "search" and "stop" not in b
               for b in teacher)
    [traj] = [t for t in _rows(out) if t["id"] == "q1-r0"]
    assert [e["class_"] for e in traj["content"]] == [
        "text_observation", "api_action", "text_observation", "message_action"]
    assert traj["content"][-1]["content"] == "Both are American.\nAnswer: yes"
    assert details_of(traj)["protocol"] == "native"

    sft = tmp_path / "sft.jsonl"
    ember("convert", out, "--to", "sft-chat", "-o", sft)
    record = next(r for r in _rows(sft) if r["id"] == "q1-r0")
    tok = AutoTokenizer.from_pretrained(tiny_model)
    exported = tok.apply_chat_template(record["messages"], tools=tools_of(record),
                                       tokenize=True)["input_ids"]
    # (a) each teacher request of this rollout is a prefix of the exported chat
    asked = [b for b in teacher if "Derrickson" in b["messages"][0]["content"]
             and b["seed"] == 0]
    assert len(asked) == 2
    for body in asked:
        prompt = tok.apply_chat_template(body["messages"], tools=body["tools"],
                                         add_generation_prompt=True, tokenize=True)["input_ids"]
        assert exported[:len(prompt)] == prompt
    # (b) the same conversation as TRL renders it for RFT (max_turns 3: 2 searches)
    env = SearchEnvironment(SearchIndex(index_dir), topk=3, max_calls=2)
    env.reset()
    question = QUESTIONS[0]["question"]
    rft = [{"role": "user", "content": question_prompt(question, 2)},
           {"role": "assistant", "content": "First him.", "tool_calls": [{
               "type": "function",
               "function": {"name": "search", "arguments": {"query": "Scott Derrickson"}}}]},
           {"role": "tool", "name": "search", "content": env.search("Scott Derrickson")},
           {"role": "assistant", "content": "Both are American.\nAnswer: yes"}]
    assert exported == tok.apply_chat_template(rft, tools=[env.search], tokenize=True)["input_ids"]
