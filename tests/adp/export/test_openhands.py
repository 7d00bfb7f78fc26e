"""OpenHands ShareGPT export: golden against ADP's sample_sft_openhands.json, and unit cases."""

import json
import re

import pytest

from ember.adp.export.openhands import export
from tests.adp.export.sharegpt_golden import compare, datasets, unescape
from tests.conftest import FIXTURES

_FOREIGN_CODE = re.compile(r'(\w+)\("""(.*?)"""\)(?=\n</parameter>)', re.S)


def undo_escaping(value: str) -> str:
    """ADP writes other languages as ``javascript("<code>")`` with the code unescaped, which
    is not valid Python; we write ``javascript(\"\"\"<escaped code>\"\"\")``. Back to ADP's."""
    return _FOREIGN_CODE.sub(lambda m: f'{m[1]}("{unescape(m[2])}")', value)


@pytest.mark.parametrize("dataset", datasets("openhands"))
def test_matches_adp_sft_openhands(dataset):
    diffs, ours = compare(dataset, "openhands", export, undo=undo_escaping)
    assert not diffs, "\n".join(diffs)
    assert all(isinstance(r, dict) for r in ours.values())  # ADP exports every sample; so do we


def undo_older_format(value: str) -> str:
    """ADP's older SFT format (llava_plus) runs pre-defined functions in execute_bash and
    writes string arguments unquoted (``inpainting(prompt=A pan ...)``, not valid Python);
    it shows an image as its bare path. Ours, back to that."""
    value = value.replace("<function=execute_ipython_cell>\n<parameter=code>",
                          "<function=execute_bash>\n<parameter=command>").replace(
        "EXECUTION RESULT of [execute_ipython_cell]", "EXECUTION RESULT of [execute_bash]")
    value = re.sub(r'(\w+)="((?:[^"\\]|\\.)*)"',
                   lambda m: f"{m[1]}={json.loads(chr(34) + m[2] + chr(34))}", value)
    return re.sub(r"\[Image: ([^\]]*)\]", r"\1", value)


@pytest.mark.parametrize("dataset", ["llava_plus", "screenagent"])
def test_matches_adps_older_sft_file(dataset):
    diffs, ours = compare(dataset, "", export, undo=undo_older_format)
    assert not diffs, "\n".join(diffs)


def test_cli_writes_the_same_records(ember, tmp_path):
    std = FIXTURES / "adp" / "agenttuning_os" / "sample_std.json"
    out = tmp_path / "os.openhands.jsonl"
    ember("convert", std, "--from", "adp", "--to", "openhands", "-o", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [str(t["id"]) for t in json.loads(std.read_text())]
    first = records[0]["conversations"]
    assert [t["from"] for t in first[:3]] == ["human", "gpt", "human"]
    assert first[1]["value"].endswith("<function=execute_bash>\n<parameter=command>\nls /etc\n"
                                      "</parameter>\n</function>")
    assert first[2]["value"].startswith("EXECUTION RESULT of [execute_bash]:\n")
    assert "execute_bash" in records[0]["system"]


def _ember_traj(*events, tools=None):
    traj = {"id": "t1", "content": list(events), "details": {}}
    if tools:
        traj["tools"] = tools
    return traj


def test_ember_spelling_typed_kwargs_final_answer_and_declared_tool_docs():
    traj = _ember_traj(
        {"class_": "text_observation", "content": "Find the shelf.", "source": "user"},
        {"class_": "api_action", "function": "go", "kwargs": {"location": "shelf 1", "n": 2},
         "description": "Go there.", "tool_call_id": "a"},
        {"class_": "text_observation", "content": "You arrive.", "source": "environment",
         "tool_call_id": "a"},
        {"class_": "message_action", "content": "3", "final": True, "answer": "3"},
        tools=[{"type": "function", "function": {
            "name": "go", "description": "Walk somewhere.",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"},
                                                            "n": {"type": "integer"}}}}}])
    turns = export(traj)["conversations"]
    assert [t["from"] for t in turns] == ["human", "gpt", "human", "gpt"]
    assert turns[0]["value"].startswith(
        "The following pre-defined functions are available in execute_ipython_cell:\n\n"
        "go(location: str, n: int)\n    Walk somewhere.\n\nFind the shelf.")
    assert 'go(location="shelf 1", n=2)' in turns[1]["value"]
    assert turns[2]["value"] == "EXECUTION RESULT of [execute_ipython_cell]:\nYou arrive."
    assert "<parameter=message>\n<solution> 3 </solution>\n</parameter>" in turns[3]["value"]


def test_native_tool_and_browser_routing_and_focused_bid():
    traj = _ember_traj(
        {"class_": "text_observation", "content": "Edit then browse.", "source": "user"},
        {"class_": "api_action", "function": "str_replace_editor", "tool_call_id": "1",
         "kwargs": {"command": "view", "path": "/a.py", "view_range": [1, 5]}},
        {"class_": "text_observation", "content": "ok", "source": "environment",
         "tool_call_id": "1"},
        {"class_": "api_action", "function": "click", "kwargs": {"bid": "12"}, "tool_call_id": "2"},
        {"class_": "web_observation", "axtree": "[12] button 'Go'", "url": "http://x",
         "tool_call_id": "2"})
    turns = export(traj)["conversations"]
    assert ("<function=str_replace_editor>\n<parameter=command>\nview\n</parameter>\n"
            "<parameter=path>\n/a.py\n</parameter>\n<parameter=view_range>\n[1, 5]\n"
            in turns[1]["value"])
    assert '<function=browser>\n<parameter=code>\nclick(bid="12")\n' in turns[3]["value"]
    assert turns[4]["value"].startswith('[Current URL: http://x]\n[Focused element bid: "12"]')
    assert "pre-defined functions" not in turns[0]["value"]  # nothing beyond native tools


def test_other_languages_are_valid_python_strings():
    code = 'console.log("a\\n"); s = """'
    traj = _ember_traj({"class_": "text_observation", "content": "Run it.", "source": "user"},
                       {"class_": "code_action", "language": "js", "content": code})
    turns = export(traj)["conversations"]
    call = re.search(r"<parameter=code>\n(.*)\n</parameter>", turns[1]["value"], re.S)[1]
    assert call.startswith("javascript(")
    assert eval(call[len("javascript("):-1]) == code  # a literal: nothing is executed
    assert turns[0]["value"].startswith("javascript code runs in execute_ipython_cell")


def test_same_speaker_turns_are_joined():
    traj = _ember_traj({"class_": "text_observation", "content": "a", "source": "user"},
                       {"class_": "text_observation", "content": "b", "source": "user"},
                       {"class_": "message_action", "content": "c"})
    assert export(traj)["conversations"] == [{"from": "human", "value": "a\n\nb"},
                                             {"from": "gpt", "value": "c"}]
