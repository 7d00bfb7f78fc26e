"""The ReAct shape: thought/action text turns -> ADP events, and its rejects."""

import pytest

from ember.adp.mapping import ConvertError, load_converter
from ember.adp.shapes.react import Mapping, converter

OS_LIKE = dict(
    turn=[r"(?s)Think:\s*(?P<thought>.*?)\n\s*Act:\s*(?P<action>.*)"],
    actions=[{"match": r"(?s)bash\s*```[a-z]*\n(?P<code>.*)\n```", "code": "sh"},
             {"match": r"(?s)answer\((?P<answer>.*)\)", "answer": True},
             {"match": "finish", "finish": True}],
    observation_prefix=r"Output:\s*",
)

KG_LIKE = dict(
    turn=[r"(?s)Thought:\s*(?P<thought>.*?)\nAction:\s*(?P<action>.*)"],
    actions=[{"match": r"(?P<function>\w+)\((?P<args>.*)\)", "api": True}],
    tools={"get_neighbors": {"description": "Follow a relation.",
                             "parameters": {"variable": "entity or #id", "relation": ""}},
           "count": {"parameters": ["variable"]}},
)


def chat(*turns):
    roles = ["user", "assistant"]
    return {"id": 7, "conversations": [{"role": roles[i % 2], "content": t}
                                       for i, t in enumerate(turns)]}


def test_code_action_linked_to_its_output_and_final_answer():
    convert = converter(Mapping(**OS_LIKE))
    traj = convert(chat("How many files?",
                        "Think: list them\n\nAct: bash\n\n```bash\nls | wc -l\n```",
                        "Output: 3",
                        "Think: done\n\nAct: answer(3)"))
    assert traj["id"] == "7"
    prompt, act, obs, answer = traj["content"]
    assert prompt == {"class_": "text_observation", "content": "How many files?",
                      "source": "user"}
    assert act["class_"] == "code_action" and act["language"] == "bash"
    assert act["content"] == "ls | wc -l" and act["description"] == "list them"
    assert act["tool_call_id"] == obs["tool_call_id"] == "call_0"
    assert obs["content"] == "3" and obs["source"] == "environment"
    assert answer == {"class_": "message_action", "content": "3", "description": "done",
                      "answer": "3", "final": True}


def test_positional_call_named_from_tools_keeps_commas_in_first_argument():
    convert = converter(Mapping(**KG_LIKE))
    traj = convert(chat("Q?", "Thought: follow it\nAction: get_neighbors(Washington, D.C., "
                              "location.location.contains)", "Observation: variable #0",
                        "Thought: count\nAction: count(#0)"))
    first, second = traj["content"][1], traj["content"][3]
    assert first["function"] == "get_neighbors"
    assert first["kwargs"] == {"variable": "Washington, D.C.",
                               "relation": "location.location.contains"}
    assert second["kwargs"] == {"variable": "#0"} and second["tool_call_id"] == "call_1"
    assert [t["function"]["name"] for t in traj["tools"]] == ["get_neighbors", "count"]
    assert traj["tools"][0]["function"]["parameters"]["required"] == ["variable", "relation"]
    assert "final" not in second  # ends on an action: nothing is marked final


def test_unknown_tool_and_wrong_argument_count_are_rejected():
    convert = converter(Mapping(**KG_LIKE))
    with pytest.raises(ConvertError) as e:
        convert(chat("Q?", "Thought: t\nAction: get_everything(#0)"))
    assert e.value.reason == "unknown-tool"
    with pytest.raises(ConvertError) as e:
        convert(chat("Q?", "Thought: t\nAction: get_neighbors(#0)"))
    assert e.value.reason == "bad-arguments"


def test_action_no_rule_reads_is_unparseable():
    convert = converter(Mapping(**OS_LIKE))
    with pytest.raises(ConvertError) as e:
        convert(chat("Q?", "Think: hmm\n\nAct: python\n\nprint(1)"))
    assert e.value.reason == "unparseable-action"


def test_turn_without_action_follows_the_unparsed_option():
    record = chat("Q?", "I have no idea.")
    assert converter(Mapping(**OS_LIKE))(record)["content"][1] == {
        "class_": "message_action", "content": "I have no idea.", "final": True}
    obs = converter(Mapping(**OS_LIKE, unparsed="observation"))(record)["content"][1]
    assert obs == {"class_": "text_observation", "content": "I have no idea.", "source": "agent"}
    with pytest.raises(ConvertError) as e:
        converter(Mapping(**OS_LIKE, unparsed="error"))(record)
    assert e.value.reason == "unparseable-action"


def test_bad_records_raise_convert_errors():
    convert = converter(Mapping(**OS_LIKE))
    cases = [({"id": 1}, "missing-field"),
             ({"id": 1, "conversations": "text"}, "wrong-type"),
             ({"id": 1, "conversations": ["text"]}, "wrong-type"),
             ({"id": 1, "conversations": [{"role": "user"}]}, "missing-field"),
             ({"id": 1, "conversations": [{"role": "user", "content": 5}]}, "wrong-type"),
             ({"id": 1, "conversations": [{"role": "user", "content": "only a question"}]},
              "empty-trajectory"),
             ({"conversations": []}, "missing-field")]
    for record, reason in cases:
        with pytest.raises(ConvertError) as e:
            convert(record)
        assert e.value.reason == reason, record


def test_bad_mappings_fail_when_loaded():
    with pytest.raises(ValueError):
        Mapping(actions=[{"match": "x"}])  # no kind
    with pytest.raises(ValueError):
        Mapping(actions=[{"match": "x", "api": "a", "code": "bash"}])  # two kinds
    with pytest.raises(ValueError):
        Mapping(turn=["Think: (.*)"])  # no `action` group
    with pytest.raises(ValueError):
        Mapping(unparsed="drop")


def test_agenttuning_db_sql_operation_and_answer():
    convert = load_converter("agenttuning_db")
    traj = convert(chat("I will ask you a question, then you should help me.\nAction: Operation\n"
                        "```sql\nSELECT * FROM t;\n```\nLast line.",
                        "Ok.", "How many rows?",
                        "Count them.\nAction: Operation\n```sql\nSELECT COUNT(*) FROM t;\n```",
                        "[(4,)]",
                        "There are 4.\nAction: Answer\nFinal Answer: [\"4\"]"))
    prompt, ok, question, sql, out, answer = traj["content"]
    assert "<execute_mysql>\nSELECT * FROM t;\n</excute_mysql>" in prompt["content"]
    assert "Last line" not in prompt["content"] and "Action:" not in prompt["content"]
    assert ok == {"class_": "message_action", "content": "Ok."}
    assert sql["language"] == "sql" and sql["content"] == "SELECT COUNT(*) FROM t;"
    assert out["tool_call_id"] == sql["tool_call_id"] == "call_0"
    assert answer["answer"] == '["4"]' and answer["final"] is True


def test_agenttuning_alfworld_lowercases_actions_and_keeps_give_ups_as_agent_text():
    convert = load_converter("agenttuning_alfworld")
    traj = convert(chat("Here is your task.",
                        "THOUGHT: find it\n ACTION: Take Apple 1 from Table 1",
                        "You pick up the apple 1.", "THOUGHT: stuck\nACTION: end the task"))
    take, _, give_up = traj["content"][1:]
    assert take["function"] == "take"
    assert take["kwargs"] == {"item": "apple 1", "source": "table 1"}
    assert give_up == {"class_": "text_observation", "content": "stuck", "source": "agent"}


def test_code_rules_with_and_without_a_code_group_in_one_alternation():
    """Both spellings of a code rule, read straight from the combined rules' match: the
    `code` group, or all the rule matched when it has none."""
    convert = converter(Mapping(turn=[r"(?s)Act:\s*(?P<action>.*)"], actions=[
        {"match": r"(?s)run\n(?P<code>.*)", "code": "python3"},
        {"match": r"ls( -l)?$", "code": "sh"},
        {"match": "finish", "finish": True}]))
    traj = convert(chat("Q?", "Act: run\nprint(1)", "1", "Act: ls -l", "y", "Act: finish"))
    a, out, b = traj["content"][1:4]
    assert (a["language"], a["content"], a["tool_call_id"]) == ("python", "print(1)", "call_0")
    assert (out["tool_call_id"], out["content"]) == ("call_0", "1")
    assert (b["language"], b["content"], b["tool_call_id"]) == ("bash", "ls -l", "call_1")


def test_each_task_prompt_gets_its_own_rewrite():
    """The rewrite of a prompt seen before is reused; a different prompt is rewritten anew."""
    convert = converter(Mapping(turn=[r"Act: (?P<action>.*)"], actions=[
        {"match": "finish", "finish": True}], prompt_rewrites=[[r"^Task: (.*)$", r"\1!"]]))
    prompts = [convert(chat(p, "Act: finish"))["content"][0]["content"]
               for p in ("Task: a", "Task: b", "Task: a", "no task")]
    assert prompts == ["a!", "b!", "a!", "no task"]
