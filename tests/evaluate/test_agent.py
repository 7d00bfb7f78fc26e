"""The search agent: the strict step-format check, and the loop against a scripted
OpenAI-compatible HTTP server (fixed step texts) and the real BM25 index of the shipped
HotpotQA corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ember.evaluate.agent import (NO_RESULTS, STOP, check_reply, check_step, close_action,
                                  first_messages, information, run_agent)
from ember.evaluate.search_tool import question_prompt, tool_specs
from ember.llm.backends import SamplingParams, make_backend
from ember.llm.cache import Cache
from ember.llm.client import LLM
from ember.evaluate.search import Hit, SearchIndex, build_index
from tests.llm.test_backends import ok, scripted_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> SearchIndex:
    out = tmp_path_factory.mktemp("agent") / "index"
    build_index(ROOT / "examples" / "data" / "search" / "corpus.jsonl", out)
    return SearchIndex(out)


# ---------------------------------------------------------------- the format check

GOOD = [
    ("<think>I need his birthplace.</think><search>Scott Derrickson</search>",
     "search", "Scott Derrickson"),
    ("<think>\nTwo steps.\n</think>\n\n<search> Ed Wood nationality </search>\n",
     "search", "Ed Wood nationality"),
    ("  <think>Both are American.</think> <answer>yes</answer>", "answer", "yes"),
    ("<think>a < b and c > d</think><answer>Chief of Protocol</answer>",
     "answer", "Chief of Protocol"),
]


@pytest.mark.parametrize("text,action,argument", GOOD)
def test_well_formed_steps_parse(text, action, argument):
    parsed, reason = check_step(text)
    assert reason is None
    assert parsed["action"] == action and parsed["argument"] == argument
    assert parsed["think"] and "<" not in parsed["think"][:1]


BAD = [
    ("The answer is yes.", "no action"),
    ("<think>hmm</think>", "no action"),
    ("<search>Ed Wood</search>", "missing <think>"),
    ("<think>x</think><search>a</search><search>b</search>", "2 actions"),
    ("<think>x</think><search>a</search><answer>b</answer>", "2 actions"),
    ("<think>x</think><search>a", "unpaired <search>"),
    ("<think>x<search>a</search>", "unpaired <think>"),
    ("<think>x</think></answer>", "unpaired <answer>"),
    ("<think>x</think><search>a</search><information>Doc 1</information>", "<information>"),
    ("<think>x</think><information>fake</information><answer>y</answer>", "<information>"),
    ("<think>x</think>So I will search.<search>a</search>", "no text outside"),
    ("<think>x</think><search>a</search> and then more", "no text outside"),
    ("<search>a</search><think>x</think>", "no text outside"),
    ("<think>x</think><think>y</think><answer>z</answer>", "more than one <think>"),
    ("<think>  </think><answer>z</answer>", "empty <think>"),
    ("<think>x</think><search>   </search>", "empty <search>"),
    ("<think>x <answer>y</answer></think><search>q</search>", "2 actions"),
    ("<think>x <answer>y</answer> z</think>", "no text outside"),
]


@pytest.mark.parametrize("text,why", BAD)
def test_ill_formed_steps_are_rejected_with_a_reason(text, why):
    parsed, reason = check_step(text)
    assert parsed is None
    assert why in reason


def test_truncated_step_says_so():
    parsed, reason = check_step("<think>I am still thinking about", "length")
    assert parsed is None and reason.startswith("truncated at max_new_tokens")


def test_close_action_puts_back_the_stop_string():
    assert close_action("<think>a</think><search>q", "stop") == \
        "<think>a</think><search>q</search>"
    assert close_action("<think>a</think><answer>x", "stop").endswith("<answer>x</answer>")
    # cut at max tokens: nothing is added (the step is truncated, and says so)
    assert close_action("<think>a</think><search>q", "length") == "<think>a</think><search>q"
    # already closed, or no action at all: unchanged
    assert close_action("<think>a</think><answer>x</answer>", "stop").count("</answer>") == 1
    assert close_action("just text", "stop") == "just text"
    # the last opened action is the one closed
    assert close_action("<think>a <search>x</search></think><answer>y", "stop").endswith(
        "<answer>y</answer>")


def test_information_block():
    hits = [Hit("1", "Ed Wood", "Ed Wood was a filmmaker.", 3.0), Hit("2", "B", "b.", 1.0)]
    text = information(hits)
    assert text.startswith("<information>") and text.endswith("</information>")
    assert "Doc 1 (Title: Ed Wood) Ed Wood was a filmmaker." in text and "Doc 2 (Title: B)" in text
    assert information([]) == f"<information>{NO_RESULTS}</information>"


def test_first_messages_split_the_template_into_turns():
    messages = first_messages("Who is Ed Wood?", max_turns=5, topk=2)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert "at most 5 steps" in messages[0]["content"] and "top 2 paragraphs" in messages[0]["content"]
    assert all(check_step(m["content"])[0] for m in messages if m["role"] == "assistant")
    assert messages[-1]["content"] == "Question: Who is Ed Wood?"
    assert first_messages("Q", template="Answer {question}") == [
        {"role": "user", "content": "Answer Q"}]


# ---------------------------------------------------------------- the loop, tags protocol


def run_tags(*args, **kw):
    return run_agent(*args, protocol="tags", **kw)


# Step texts per question keyword, in turn order. Some end with the stop string and more
# text after it, as servers that ignore `stop` send: the backend cuts it, the agent closes.
SCRIPTS = {
    "Derrickson": ["<think>Find out about Scott Derrickson.</think><search>Scott Derrickson"
                   "</search> and more text the server kept",
                   "<think>He is American.</think><answer>American"],
    "Corliss": ["<think>I know it.</think><information>made up</information><answer>x</answer>",
                "<think>Answer directly.</think><answer>Shirley Temple</answer>"],
    "Loop": ["<think>Keep looking.</think><search>qwzxv zzyzx</search>"] * 9,
    "Broken": ["I refuse to use tags."] * 9,
}


START = len(first_messages("?"))  # the instructions and the worked example come first


def turn_and_question(body) -> tuple[int, str]:
    """(0-based turn, question) of an agent request. Native (the request offers tools):
    the question ends the first user turn; tags: it is the last turn of the template.
    Each later assistant message is one step."""
    messages = body["messages"]
    start = 1 if body.get("tools") else START
    question = messages[start - 1]["content"].split("Question: ", 1)[1]
    return sum(m["role"] == "assistant" for m in messages[start:]), question


def _reply(k, path, body, headers):
    turn, question = turn_and_question(body)
    key = next(key for key in SCRIPTS if key in question)
    return 200, ok(path, body, SCRIPTS[key][turn]), 0


def _llm(url, cache=None) -> LLM:
    return LLM(make_backend("openai", "scripted", base_url=url, max_retries=0),
               model="scripted", cache=cache)


def test_loop_search_information_answer(index):
    with scripted_server(_reply) as (url, seen, _):
        [r] = run_tags(_llm(url), ["Who is Scott Derrickson?"], index,
                        SamplingParams(max_new_tokens=64), max_turns=4, topk=2)
    assert r.status == "answered" and r.answer == "American"
    first, second = r.steps
    assert first["action"] == "search" and first["query"] == "Scott Derrickson"
    assert first["text"].endswith("<search>Scott Derrickson</search>")  # cut, then closed
    assert first["results"][0]["title"] == "Scott Derrickson" and len(first["results"]) == 2
    assert second["action"] == "answer" and second["text"].endswith("</answer>")
    # what the model saw on its second turn: its step, then the paragraphs
    assert len(seen) == 2
    sent = seen[1]["body"]
    assert sent["stop"] == STOP
    assert sent["messages"][:START] == first_messages("Who is Scott Derrickson?", topk=2)
    assert [m["role"] for m in sent["messages"][START - 1:]] == ["user", "assistant", "user"]
    assert sent["messages"][-1]["content"].startswith("<information>")
    assert "Doc 1 (Title: Scott Derrickson)" in sent["messages"][-1]["content"]
    assert sent["messages"][START - 1]["content"] == "Question: Who is Scott Derrickson?"


def test_violation_gets_a_corrective_message(index):
    with scripted_server(_reply) as (url, seen, _):
        [r] = run_tags(_llm(url), ["Who played Corliss Archer?"], index,
                        SamplingParams(max_new_tokens=64), max_turns=4)
    assert r.status == "answered" and r.answer == "Shirley Temple"
    bad, good = r.steps
    assert "self-written <information>" in bad["violation"] and "results" not in bad
    assert good["action"] == "answer" and "violation" not in good
    correction = seen[1]["body"]["messages"][-1]
    assert correction["role"] == "user" and "broke the format" in correction["content"]
    assert "<information>" in correction["content"]


def test_turn_limit_and_empty_results(index):
    with scripted_server(_reply) as (url, seen, _):
        [r] = run_tags(_llm(url), ["Loop forever"], index, SamplingParams(), max_turns=3)
    assert r.status == "turn-limit" and r.answer is None
    assert len(r.steps) == 3 == len(seen)
    assert all(s["results"] == [] and NO_RESULTS in s["information"] for s in r.steps)
    assert r.messages[-1]["content"].startswith("<information>")  # the last search answered


class CountingLLM(LLM):
    """The real LLM, recording how many prompts each generate call carried."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.calls: list[int] = []

    def generate(self, prompts, params, on_progress=None, **kw):
        self.calls.append(len(prompts))
        return super().generate(prompts, params, on_progress, **kw)


def test_many_rollouts_step_together_with_their_own_seeds(index):
    questions = ["Who is Scott Derrickson?", "Loop forever", "Broken one",
                 "Who played Corliss Archer?"]
    with scripted_server(_reply) as (url, seen, _):
        llm = CountingLLM(make_backend("openai", "scripted", base_url=url, max_retries=0),
                          model="scripted")
        rollouts = run_tags(llm, questions * 2, index, SamplingParams(max_new_tokens=32),
                             seeds=[0, 0, 0, 0, 1, 1, 1, 1], max_turns=3)
    # one generate call per turn for every running rollout, whatever its seed
    assert llm.calls == [8, 8, 4]
    assert [r.status for r in rollouts] == ["answered", "turn-limit", "turn-limit",
                                            "answered"] * 2
    broken = rollouts[2]
    assert all("no action" in s["violation"] for s in broken.steps)
    # 2 + 3 + 3 + 2 requests per seed; every request carries its rollout's seed
    assert len(seen) == 20
    assert sorted(req["body"]["seed"] for req in seen) == [0] * 10 + [1] * 10
    # steps are synchronous: all turn-1 requests come before any turn-2 request
    turns = [turn_and_question(req["body"])[0] for req in seen]
    assert turns == sorted(turns)


def test_backend_failure_ends_the_rollout_with_the_reason(index):
    def reply(k, path, body, headers):
        if "Fail" in turn_and_question(body)[1]:
            return 400, {"error": {"message": "context too long"}}, 0
        return _reply(k, path, body, headers)

    with scripted_server(reply) as (url, seen, _):
        bad, good = run_tags(_llm(url), ["Fail now", "Who is Scott Derrickson?"], index,
                              SamplingParams())
    assert bad.status == "error" and "HTTP 400" in bad.error
    assert bad.steps == [{"turn": 1, "error": bad.error}]
    assert good.status == "answered"


def test_rerun_replays_from_the_cache(index, tmp_path):
    questions = ["Who is Scott Derrickson?", "Who played Corliss Archer?", "Loop forever"]
    with scripted_server(_reply) as (url, seen, _):
        with Cache(tmp_path / "c.sqlite") as cache:
            first = run_tags(_llm(url, cache), questions, index, SamplingParams(), max_turns=3)
        sent = len(seen)
        with Cache(tmp_path / "c.sqlite") as cache:
            llm = _llm(url, cache)
            again = run_tags(llm, questions, index, SamplingParams(), max_turns=3)
    assert sent == 7 and len(seen) == sent  # nothing sent the second time
    assert llm.usage["calls"] == 0 and llm.usage["cached"] == 7
    assert [r.steps for r in again] == [r.steps for r in first]


# ---------------------------------------------------------------- the native protocol

def _call(args) -> str:
    return f'<tool_call>{{"name": "search", "arguments": {args}}}</tool_call>'


NATIVE_GOOD = [
    ("I need his birthplace.\n" + _call('{"query": "Scott Derrickson"}'), "search",
     "Scott Derrickson", "I need his birthplace."),
    (_call('{"query": " Ed Wood "}'), "search", "Ed Wood", ""),
    ("Both are American.\nAnswer: yes", "answer", "yes", "Both are American."),
    ("answer: no\nActually, **Answer:** Chief of Protocol", "answer", "Chief of Protocol",
     "answer: no\nActually,"),
    ("Shirley Temple", "answer", "Shirley Temple", ""),  # no Answer: line: the whole reply
]


@pytest.mark.parametrize("text,action,argument,think", NATIVE_GOOD)
def test_native_replies_parse(text, action, argument, think):
    parsed, reason = check_reply(text)
    assert reason is None, reason
    assert (parsed["action"], parsed["argument"], parsed["think"]) == (action, argument, think)


NATIVE_BAD = [
    ("Let me search <tool_call>{\"name\": \"search\"", "stop", "unclosed <tool_call>"),
    (_call("{query: Ed Wood}"), "stop", "not JSON"),
    ('<tool_call>["search"]</tool_call>', "stop", "not a JSON object"),
    ('<tool_call>{"name": "browse", "arguments": {"url": "x"}}</tool_call>', "stop",
     "unknown tool 'browse'"),
    (_call('{"q": "Ed Wood"}'), "stop", 'non-empty string "query"'),
    (_call('{"query": "  "}'), "stop", 'non-empty string "query"'),
    (_call('{"query": "a"}') + _call('{"query": "b"}'), "stop", "2 tool calls"),
    ("   ", "stop", "empty reply"),
    ("The answer might be", "length", "cut at max_new_tokens"),
    ("<tool_call>{\"name\": \"search\", \"argu", "length", "truncated at max_new_tokens: unclosed"),
]


@pytest.mark.parametrize("text,finish,why", NATIVE_BAD)
def test_native_violations_say_why(text, finish, why):
    parsed, reason = check_reply(text, finish)
    assert parsed is None and why in reason


def test_native_reads_calls_a_server_parsed():
    calls = [{"name": "search", "arguments": '{"query": "Ed Wood"}'}]
    parsed, _ = check_reply("Looking.", "stop", calls)
    assert (parsed["action"], parsed["argument"], parsed["think"]) == ("search", "Ed Wood", "Looking.")
    assert "not JSON" in check_reply("", "stop", [{"name": "search", "arguments": "{"}])[1]


def _native_reply(structured):
    """Scripted native steps: calls in the text (transformers serve, raw templates) or,
    with `structured`, as OpenAI tool_calls (a server with a tool parser)."""
    script = {"Derrickson": [("Find him.", {"query": "Scott Derrickson"}), "He is American.\nAnswer: American"],
              "Broken": ["<tool_call>{oops</tool_call>", "Answer: x"]}

    def reply(k, path, body, headers):
        turn, question = turn_and_question(body)
        step = next(v for key, v in script.items() if key in question)[turn]
        if not isinstance(step, tuple):
            return 200, ok(path, body, step), 0
        text, args = step
        if not structured:
            return 200, ok(path, body, f"{text}\n{_call(json.dumps(args))}"), 0
        payload = ok(path, body, text)
        payload["choices"][0]["finish_reason"] = "tool_calls"
        payload["choices"][0]["message"]["tool_calls"] = [{
            "id": "x1", "type": "function",
            "function": {"name": "search", "arguments": json.dumps(args)}}]
        return 200, payload, 0
    return reply


@pytest.mark.parametrize("structured", [False, True])
def test_native_loop_tool_call_result_answer(index, structured):
    with scripted_server(_native_reply(structured)) as (url, seen, _):
        good, broken = run_agent(_llm(url), ["Who is Scott Derrickson?", "Broken one"], index,
                                 SamplingParams(max_new_tokens=64), max_turns=3, topk=2)
    assert good.status == "answered" and good.answer == "American"
    search, answer = good.steps
    assert search["action"] == "search" and search["query"] == "Scott Derrickson"
    assert search["think"] == "Find him." and search["finish_reason"] == "stop"
    assert search["information"].startswith("Doc 1 (Title: Scott Derrickson)")
    assert answer["action"] == "answer"
    # what the model saw on its second turn: the tool, its own call, the result as a tool turn
    body = next(r["body"] for r in seen if "Derrickson" in r["body"]["messages"][0]["content"]
                and len(r["body"]["messages"]) > 1)
    assert "stop" not in body and body["tools"] == tool_specs()
    user, said, result = body["messages"]
    assert user["content"] == question_prompt("Who is Scott Derrickson?", 2)
    assert said == {"role": "assistant", "content": "Find him.", "tool_calls": [{
        "id": "call_0", "type": "function",
        "function": {"name": "search", "arguments": '{"query": "Scott Derrickson"}'}}]}
    assert result == {"role": "tool", "tool_call_id": "call_0", "name": "search",
                      "content": search["information"]}
    # a malformed call is corrected, then the rollout answers
    assert "not JSON" in broken.steps[0]["violation"] and broken.answer == "x"
    assert broken.messages[2]["role"] == "user" and "broke the format" in broken.messages[2]["content"]
