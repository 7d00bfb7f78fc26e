"""The openai-messages shape: tool calls, outputs, finish calls, OpenHands events, errors."""

import json

import pytest

from ember.adp.mapping import ConvertError, load_converter
from ember.adp.shapes.openai_messages import Mapping, converter


def call(cid, name, **args):
    return {"id": cid, "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)}}


def record(messages, **extra):
    return {"id": "r1", "messages": messages, **extra}


SWE = Mapping(code_tools={"execute_bash": {"language": "bash", "argument": "command"}},
              finish_tools={"finish": "message"}, finish_default="Done.",
              observation_prefix=r"\s*OBSERVATION:\n*", tools="tools")


def test_parallel_calls_are_paired_with_their_outputs_in_order():
    traj = converter(SWE)(record([
        {"role": "system", "content": "be useful"},
        {"role": "user", "content": "fix it"},
        {"role": "assistant", "content": "Look first.", "tool_calls": [
            call("a", "execute_bash", command="ls"),
            call("b", "str_replace_editor", command="view", path="/x", view_range=[1, 5])]},
        # outputs arrive out of order; each must land after its own call
        {"role": "tool", "tool_call_id": "b", "name": "str_replace_editor",
         "content": "OBSERVATION:\n1 x"},
        {"role": "tool", "tool_call_id": "a", "content": "OBSERVATION:\nfile.py"},
        {"role": "assistant", "content": None, "tool_calls": [call("c", "finish")]},
    ], tools=json.dumps([{"type": "function", "function": {
        "name": "finish", "description": "stop", "parameters": None}}])))
    c = traj["content"]
    assert [e["class_"] for e in c] == ["text_observation", "code_action", "text_observation",
                                        "api_action", "text_observation", "message_action"]
    assert c[1] == {"class_": "code_action", "language": "bash", "content": "ls",
                    "description": "Look first.", "tool_call_id": "a"}
    assert c[2]["content"] == "file.py" and c[2]["tool_call_id"] == "a"
    assert c[3]["kwargs"] == {"command": "view", "path": "/x", "view_range": [1, 5]}
    assert c[3]["description"] == "Look first."
    assert c[4]["content"] == "1 x" and c[4]["tool_call_id"] == "b"
    assert c[4]["source"] == "environment" and c[4]["name"] == "str_replace_editor"
    assert c[5]["final"] is True and c[5]["content"] == "Done."
    # the null `parameters` padding is dropped so the spec validates
    assert traj["tools"] == [{"type": "function",
                              "function": {"name": "finish", "description": "stop"}}]


def test_messages_may_be_a_json_string_and_user_text_is_not_tool_output():
    traj = converter(Mapping())(record(json.dumps([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [call("a", "search", q="x")]},
        {"role": "user", "content": "stop that"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    ])))
    c = traj["content"]
    assert [e["class_"] for e in c] == ["text_observation", "api_action", "text_observation",
                                        "message_action"]
    assert c[2]["source"] == "user" and "tool_call_id" not in c[2]
    assert c[3]["content"] == "ok"


def test_swe_gym_mapping_rewords_the_task_and_keeps_only_resolved_runs():
    convert = load_converter("swe-gym_openhands_sampled_trajectories")
    task = ("2. Create a script to reproduce the error and execute it with "
            "`python <filename.py>` using the BashTool, to confirm")
    raw = {"instance_id": "i1", "run_id": "r", "resolved": True, "tools": [],
           "test_result": {}, "messages": [
               {"role": "user", "content": task},
               {"role": "assistant", "content": None,
                "tool_calls": [call("f", "finish")]}]}
    traj = convert(raw)
    assert traj["content"][0]["content"] == (
        "2. Create a script to reproduce the error and execute it, to confirm")
    assert traj["content"][1]["content"] == "Task completed."
    with pytest.raises(ConvertError) as e:
        convert(dict(raw, resolved=False))
    assert e.value.reason == "filtered-out"


@pytest.mark.parametrize("raw, reason", [
    ({"id": "r1"}, "missing-field"),
    (record("not json"), "wrong-type"),
    (record([{"role": "wizard", "content": "x"}]), "unknown-role"),
    (record([{"role": "user", "content": "only a question"}]), "empty-trajectory"),
    (record([{"role": "assistant", "tool_calls": [
        {"id": "a", "function": {"name": "f", "arguments": "{not json"}}]}]),
     "unparseable-action"),
    (record([{"role": "assistant", "tool_calls": [
        {"id": "a", "function": {"name": "execute_bash", "arguments": "{}"}}]}]),
     "unparseable-action"),
    (record(["just a string"]), "wrong-type"),
])
def test_bad_records_raise_convert_error(raw, reason):
    with pytest.raises(ConvertError) as e:
        converter(SWE)(raw)
    assert e.value.reason == reason


def test_mapping_naming_a_missing_id_field():
    with pytest.raises(ConvertError) as e:
        converter(Mapping(id="uuid"))(record([{"role": "assistant", "content": "hi"}]))
    assert e.value.reason == "missing-field"


def test_openhands_events():
    convert = load_converter("openhands")
    raw = {"id": 7, "feedback": "positive", "version": "1.0", "trajectory": [
        {"action": "initialize", "source": "environment", "extras": {"AGENT": "CodeActAgent"}},
        {"action": None, "content": "ok", "source": "environment"},
        {"observation": "agent_state_changed", "source": "agent",
         "extras": {"agent_state": "running"}, "content": ""},
        {"action": "message", "source": "user", "extras": {"content": "count files"}},
        {"action": "run_ipython", "source": "agent", "id": 8, "extras": {
            "code": "print(1)", "thought": "Check.", "kernel_init_code": "from x import *",
            "is_confirmed": "confirmed"}},
        {"observation": "run_ipython", "source": "agent", "cause": 8, "content": "1",
         "extras": {"code": "print(1)"}},
        {"action": "browse_interactive", "source": "agent",
         "args": {"browser_actions": "click('12', button='right')", "thought": "Open it."}},
        {"observation": "browse", "source": "agent", "content": "page text",
         "extras": {"url": "http://x"}},
        {"action": "finish", "source": "agent", "args": {"outputs": {"content": "3"},
                                                         "thought": ""}},
    ]}
    traj = convert(raw)
    c = traj["content"]
    assert traj["id"] == "7" and traj["details"]["feedback"] == "positive"
    assert [e["class_"] for e in c] == ["text_observation", "code_action", "text_observation",
                                        "api_action", "text_observation", "api_action"]
    assert c[0] == {"class_": "text_observation", "content": "count files", "source": "user"}
    assert c[1]["language"] == "python" and c[1]["content"] == "print(1)"
    assert c[1]["description"] == "Check."
    assert c[2]["content"] == "1" and c[2]["tool_call_id"] == c[1]["tool_call_id"] == "call_0"
    assert c[3]["function"] == "click" and c[3]["kwargs"] == {"bid": "12", "button": "right"}
    assert c[4]["tool_call_id"] == c[3]["tool_call_id"] == "call_1"
    assert c[5]["function"] == "finish" and c[5]["kwargs"] == {"outputs": {"content": "3"}}


def test_openhands_multi_line_browser_actions_stay_one_call():
    convert = load_converter("openhands")
    traj = convert({"id": 1, "trajectory": [
        {"action": "browse_interactive", "source": "agent",
         "args": {"browser_actions": "fill('a', 'x')\nclick('b')"}}]})
    event = traj["content"][0]
    assert event["function"] == "browse_interactive"
    assert event["kwargs"] == {"browser_actions": "fill('a', 'x')\nclick('b')"}


def test_unknown_events_kind_is_a_mapping_error():
    with pytest.raises(ValueError, match="events"):
        converter(Mapping(events="slack"))
