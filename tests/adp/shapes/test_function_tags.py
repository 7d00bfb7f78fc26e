"""Shapes whose tool calls are written in the text: <function=...> tags, and (below)
SWE-agent's fenced commands."""

import pytest

from ember.adp.mapping import ConvertError, load_converter
from ember.adp.shapes import function_tags, swe_agent

SYSTEM = """You have access to the following functions:

---- BEGIN FUNCTION #1: bash ----
Description: Execute a bash command.

Parameters:
  (1) command (string, required): The command.
---- END FUNCTION #1 ----

---- BEGIN FUNCTION #2: editor ----
Description: Edit files
* keeps state

Parameters:
  (1) command (string, required): What to do.
Allowed values: [`view`, `insert`]
  (2) insert_line (integer, optional): Line to insert after.
  (3) view_range (array, optional): Lines to show,
e.g. [1, 2].
  (4) new_str (string, optional): Text to insert.
---- END FUNCTION #2 ----

---- BEGIN FUNCTION #3: submit ----
Description: Finish.
No parameters are required for this function.
---- END FUNCTION #3 ----
"""

CONVERT = load_converter("swe-smith")


def swe_smith(*turns, resolved=True):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Fix bug"}]
    for i, text in enumerate(turns):
        messages.append({"role": "assistant" if i % 2 == 0 else "user", "content": text})
    return {"id": "t1", "instance_id": "i", "resolved": resolved, "messages": messages}


def test_tools_are_read_from_the_system_prompt():
    tools = {t["function"]["name"]: t["function"]
             for t in function_tags.tools_from_prompt(SYSTEM)}
    assert list(tools) == ["bash", "editor", "submit"]
    editor = tools["editor"]
    assert editor["description"] == "Edit files\n* keeps state"
    props = editor["parameters"]["properties"]
    assert props["command"]["enum"] == ["view", "insert"]
    assert props["insert_line"]["type"] == "integer"
    assert props["view_range"]["description"] == "Lines to show,\ne.g. [1, 2]."
    assert editor["parameters"]["required"] == ["command"]
    assert tools["submit"]["parameters"]["properties"] == {}


def test_calls_are_typed_linked_and_described():
    traj = CONVERT(swe_smith(
        "Let me look.\n<function=bash>\n<parameter=command>ls</parameter>\n</function>",
        "OBSERVATION:\na.py",
        "Insert.\n<function=editor>\n<parameter=command>insert</parameter>\n"
        "<parameter=insert_line>\n5\n</parameter>\n<parameter=view_range>[1, 9]</parameter>\n"
        "<parameter=new_str>\n    indented()\n</parameter>\n</function>",
        "OBSERVATION:\ndone",
        "<function=submit>\n</function>",
        "Your command ran successfully and did not produce any output."))
    c = traj["content"]
    assert [e["class_"] for e in c] == ["text_observation", "code_action", "text_observation",
                                        "api_action", "text_observation", "api_action",
                                        "text_observation"]
    assert c[1] == {"class_": "code_action", "language": "bash", "content": "ls",
                    "description": "Let me look.", "tool_call_id": "call_0"}
    assert c[2] == {"class_": "text_observation", "content": "a.py", "source": "environment",
                    "tool_call_id": "call_0"}
    # typed by the prompt's specs; the framing newline goes, the indentation stays
    assert c[3]["kwargs"] == {"command": "insert", "insert_line": 5, "view_range": [1, 9],
                              "new_str": "    indented()"}
    assert c[5]["function"] == "submit" and c[5]["kwargs"] == {}
    assert c[6]["source"] == "environment" and c[6]["tool_call_id"] == "call_2"
    assert [t["function"]["name"] for t in traj["tools"]] == ["bash", "editor", "submit"]


def test_two_calls_in_one_turn_keep_their_own_descriptions():
    text, calls = function_tags.parse_calls(
        "First.<function=a><parameter=x>1</parameter></function>"
        " Then.<function=b></function>", {})
    assert [(c.name, c.args, c.thought.strip()) for c in calls] == [
        ("a", {"x": 1}, "First."), ("b", {}, "Then.")]


def test_a_plain_turn_is_a_message():
    traj = CONVERT(swe_smith("I need more information."))
    assert traj["content"][-1] == {"class_": "message_action",
                                   "content": "I need more information."}


@pytest.mark.parametrize("raw, reason", [
    (swe_smith("<function=submit></function>", resolved=False), "filtered-out"),
    ({"instance_id": "i", "resolved": True, "messages": []}, "missing-field"),
    ({"id": "t", "resolved": True, "messages": {"role": "user"}}, "wrong-type"),
])
def test_bad_records(raw, reason):
    with pytest.raises(ConvertError) as e:
        CONVERT(raw)
    assert e.value.reason == reason


def test_a_last_call_without_its_closing_tags_runs_to_the_end_of_the_turn():
    traj = CONVERT(swe_smith(
        "Run it.\n<function=bash>\n<parameter=command>ls</parameter>\n</function>",
        "OBSERVATION:\na.py",
        "All done.\n<function=editor>\n<parameter=command>insert</parameter>\n"
        "<parameter=new_str>\nlast line\n"))
    *_, editor = traj["content"]
    assert editor["function"] == "editor" and editor["description"] == "All done."
    assert editor["kwargs"] == {"command": "insert", "new_str": "last line"}


def test_unclosed_last_call_false_rejects_the_record():
    strict = function_tags.converter(function_tags.Mapping(id="id", unclosed_last_call=False))
    with pytest.raises(ConvertError) as e:
        strict(swe_smith("Run it.\n<function=bash>\n<parameter=command>ls</parameter>"))
    assert e.value.reason == "unparseable-action"
    assert "without its closing </function>" in e.value.detail


# --- SWE-agent fenced commands ------------------------------------------------------------

PROMPT = """SETTING: an editor.

COMMANDS:
open:
  docstring: opens the file
  signature: open <path> [<line_number>]
  arguments:
    - path (string) [required]: the path
    - line_number (integer) [optional]: the line

edit:
  docstring: replaces lines
  signature: edit <start_line>:<end_line>
<replacement_text>
end_of_edit
  arguments:
    - start_line (integer) [required]: first line
    - end_line (integer) [required]: last line
    - replacement_text (string) [required]: new text

submit:
  docstring: submits
  signature: submit



Please note that THE EDIT COMMAND REQUIRES PROPER INDENTATION.
"""

NEBIUS = load_converter("nebius_SWE-agent-trajectories")


def nebius(*ai_turns, target=True):
    turns = [{"role": "system", "text": None, "system_prompt": PROMPT},
             {"role": "user", "text": "Fix the issue"}]
    for text in ai_turns:
        turns += [{"role": "ai", "text": text}, {"role": "user", "text": "(Open file: n/a)"}]
    return {"instance_id": "n1", "target": target, "trajectory": turns}


def test_commands_section_is_parsed():
    commands = swe_agent.commands_from_prompt(PROMPT)
    assert list(commands) == ["open", "edit", "submit"]
    assert commands["edit"]["signature"] == [
        "edit <start_line>:<end_line>", "<replacement_text>", "end_of_edit"]
    assert commands["open"]["args"]["line_number"][0] == "integer"


def test_special_commands_become_api_actions_and_the_rest_bash():
    traj = NEBIUS(nebius(
        "DISCUSSION\nOpen it.\n```\nopen src/a.py 40\n```",
        "Fix line 5.\n```\nedit 5:6\n    x = 1\nend_of_edit\n```",
        "Run.\n```bash\npython -c \"print('hi')\"\n```",
        "Quotes do not balance.\n```\nopen 'src/a.py\n```",
        "Nothing to run here."))
    acts = [e for e in traj["content"] if e["class_"] != "text_observation"]
    assert acts[0] == {"class_": "api_action", "function": "open",
                       "kwargs": {"path": "src/a.py", "line_number": 40},
                       "description": "Open it.", "tool_call_id": "call_0"}
    assert acts[1]["kwargs"] == {"start_line": 5, "end_line": 6, "replacement_text": "    x = 1"}
    assert acts[2]["class_"] == "code_action" and acts[2]["language"] == "bash"
    assert acts[2]["content"] == "python -c \"print('hi')\""
    # a special command that cannot be split is what the shell ran: a bash command
    assert acts[3]["class_"] == "code_action" and acts[3]["content"] == "open 'src/a.py"
    assert acts[4] == {"class_": "message_action", "content": "Nothing to run here."}
    outputs = [e for e in traj["content"] if e["class_"] == "text_observation"][1:]
    assert [o["tool_call_id"] for o in outputs[:4]] == ["call_0", "call_1", "call_2", "call_3"]
    assert [t["function"]["name"] for t in traj["tools"]] == ["open", "edit", "submit"]


def test_nebius_failed_runs_are_filtered():
    with pytest.raises(ConvertError) as e:
        NEBIUS(nebius("```\nsubmit\n```", target=False))
    assert e.value.reason == "filtered-out"
