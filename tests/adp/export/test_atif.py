"""ATIF export and import: ADP -> ATIF -> ADP keeps ids, event classes and content."""

import json

import pytest

from ember.adp.export.atif import export
from ember.adp.mapping import ConvertError, load_converter
from ember.adp.model import details_of
from ember.adp.shapes.atif import Mapping, converter
from tests.adp.export.sharegpt_golden import std_trajectories
from tests.adp.golden import event_key
from tests.conftest import FIXTURES

DATASETS = sorted(p.parent.name for p in (FIXTURES / "adp").glob("*/sample_std.json"))
read_atif = converter(Mapping())
AGENT_ONLY = ("model_name", "reasoning_effort", "reasoning_content", "tool_calls", "metrics")


def check_atif(doc: dict) -> None:
    """The rules of the ATIF RFC (v1.7) that an exporter can break."""
    assert doc["schema_version"].startswith("ATIF-v1.")
    assert isinstance(doc["session_id"], str)
    assert isinstance(doc["agent"]["name"], str) and isinstance(doc["agent"]["version"], str)
    for i, step in enumerate(doc["steps"], start=1):
        assert step["step_id"] == i
        assert step["source"] in ("system", "user", "agent")
        assert isinstance(step["message"], (str, list))
        if step["source"] != "agent":
            assert not any(k in step for k in AGENT_ONLY), step
        if step["source"] == "user":
            assert "observation" not in step
        call_ids = {c["tool_call_id"] for c in step.get("tool_calls", ())}
        for call in step.get("tool_calls", ()):
            assert isinstance(call["tool_call_id"], str) and isinstance(call["function_name"], str)
            assert isinstance(call["arguments"], dict)
        for result in step.get("observation", {"results": []})["results"]:
            assert result.get("source_call_id") is None or result["source_call_id"] in call_ids
            content = result.get("content")
            assert isinstance(content, (str, list))
            for part in content if isinstance(content, list) else ():
                assert part["type"] in ("text", "image")
                if part["type"] == "image":
                    assert part["source"]["media_type"] in ("image/jpeg", "image/png",
                                                            "image/gif", "image/webp")


@pytest.mark.parametrize("dataset", DATASETS)
def test_round_trip_keeps_ids_classes_and_content(dataset):
    for traj in std_trajectories(dataset):
        doc = export(traj)
        check_atif(doc)
        back = read_atif(json.loads(json.dumps(doc)))
        assert back["id"] == traj["id"]
        # published v1 quotes string kwargs ('"shelf 1"'); the round trip types them
        assert [event_key(e) for e in back["content"]] == \
               [event_key(e, adp_side=True) for e in traj["content"]]
        assert back["details"] == traj["details"]
        # every call and the observation answering it now share an id
        calls = [e["tool_call_id"] for e in back["content"] if e["class_"].endswith("_action")
                 and e["class_"] != "message_action"]
        assert len(set(calls)) == len(calls)


EMBER = {
    "id": "e1", "details": {"source": "hand", "resolved": True, "scores": {"f1": 0.5}},
    "tools": [{"type": "function",
               "function": {"name": "search", "parameters": {"type": "object"}}}],
    "content": [
        {"class_": "text_observation", "content": "You are careful.", "source": "user",
         "name": "system"},
        {"class_": "text_observation", "content": "Find it.", "source": "user"},
        {"class_": "web_observation", "html": "<p>", "axtree": "[1] box", "url": "http://a",
         "image_observation": None, "viewport_size": [800, 600]},
        {"class_": "api_action", "function": "search", "kwargs": {"q": "x", "n": 3},
         "description": "Search.", "reasoning_content": "think", "tool_call_id": "s1"},
        {"class_": "api_action", "function": "execute_bash", "kwargs": {"command": "ls"},
         "tool_call_id": "s2"},
        {"class_": "text_observation", "content": "found", "source": "environment",
         "tool_call_id": "s1", "reward": 0.5},
        {"class_": "text_observation", "content": "a b", "source": "environment",
         "tool_call_id": "s2"},
        {"class_": "code_action", "language": "go", "content": "fmt.Println(1)",
         "description": None, "kwargs": {"timeout": 30}, "tool_call_id": "s3"},
        {"class_": "image_observation", "content": "shots/1.jpg", "source": "environment",
         "tool_call_id": "s3"},
        {"class_": "text_observation", "content": "I see.", "source": "agent"},
        {"class_": "message_action", "content": "It is x.", "description": "Done.", "final": True,
         "answer": "x", "reasoning_content": "sure", "reward": 0},
    ]}


def test_ember_spelling_round_trips_exactly():
    doc = export(json.loads(json.dumps(EMBER)))
    check_atif(doc)
    assert [s["source"] for s in doc["steps"]] == ["system", "user", "system", "agent", "agent",
                                                  "agent", "agent"]
    search = doc["steps"][3]
    assert search["message"] == "Search." and search["reasoning_content"] == "think"
    assert [c["function_name"] for c in search["tool_calls"]] == ["search", "execute_bash"]
    assert [r["source_call_id"] for r in search["observation"]["results"]] == ["s1", "s2"]
    assert doc["steps"][4]["tool_calls"][0] == {
        "tool_call_id": "s3", "function_name": "execute_go",
        "arguments": {"code": "fmt.Println(1)", "timeout": 30},
        "extra": {"adp": {"language": "go"}}}
    assert doc["steps"][4]["observation"]["results"][0]["content"] == [
        {"type": "image", "source": {"media_type": "image/jpeg", "path": "shots/1.jpg"}}]
    assert doc["agent"]["tool_definitions"] == EMBER["tools"]
    back = read_atif(json.loads(json.dumps(doc)))
    assert back["content"] == EMBER["content"]
    # typed details come back typed, written as strings (their JSON text) as ADP requires
    assert back["tools"] == EMBER["tools"] and details_of(back) == EMBER["details"]
    assert back["details"] == {"source": "hand", "resolved": "true", "scores": '{"f1":0.5}'}


def test_reads_a_foreign_atif_trajectory():
    IMAGE = {"media_type": "image/png", "path": "s.png"}
    doc = {"schema_version": "ATIF-v1.4", "session_id": "run-9",
           "agent": {"name": "other", "version": "1"},
           "steps": [
               {"step_id": 1, "source": "user", "message": "Price of GOOGL?"},
               {"step_id": 2, "source": "agent", "message": "Looking it up.",
                "tool_calls": [{"tool_call_id": "c1", "function_name": "financial_search",
                                "arguments": {"ticker": "GOOGL"}},
                               {"tool_call_id": "c2", "function_name": "execute_bash",
                                "arguments": {"command": "date"}}],
                "observation": {"results": [{"source_call_id": "c1", "content": "$185"},
                                            {"source_call_id": "c2", "content": [
                                                {"type": "text", "text": "Mon"},
                                                {"type": "image", "source": IMAGE}]}]}},
               {"step_id": 3, "source": "agent", "message": "$185.", "reasoning_content": "done"}]}
    traj = read_atif(doc)
    assert traj["id"] == "run-9"
    assert [e["class_"] for e in traj["content"]] == [
        "text_observation", "api_action", "code_action", "text_observation", "text_observation",
        "image_observation", "message_action"]
    assert traj["content"][1]["description"] == "Looking it up."
    assert traj["content"][2] == {"class_": "code_action", "language": "bash", "content": "date",
                                  "description": None, "tool_call_id": "c2"}
    assert traj["content"][4]["content"] == "Mon" and traj["content"][5]["content"] == "s.png"
    assert traj["content"][6] == {"class_": "message_action", "content": "$185.",
                                  "reasoning_content": "done"}


@pytest.mark.parametrize("doc, reason", [
    ({"session_id": "a"}, "missing-field"),
    ({"session_id": "a", "steps": {}}, "wrong-type"),
    ({"session_id": "a", "steps": []}, "empty-trajectory"),
    ({"steps": [{"step_id": 1, "source": "user", "message": "hi"}]}, "missing-field"),
    ({"session_id": "a", "steps": [{"step_id": 1, "source": "tool", "message": "hi"}]},
     "unknown-source"),
    ({"session_id": "a", "steps": [{"step_id": 1, "source": "agent", "message": "",
                                    "tool_calls": [{"tool_call_id": "1", "arguments": {}}]}]},
     "missing-field"),
    ({"session_id": "a", "steps": [{"step_id": 1, "source": "user",
                                    "message": [{"type": "audio"}]}]}, "unknown-content"),
])
def test_bad_atif_records_are_rejected_with_a_reason(doc, reason):
    with pytest.raises(ConvertError) as err:
        read_atif(doc)
    assert err.value.reason == reason


def test_id_field_is_a_mapping_option():
    doc = {"trajectory_id": "t7", "steps": [{"step_id": 1, "source": "user", "message": "hi"}]}
    assert converter(Mapping(id="trajectory_id"))(doc)["id"] == "t7"


def test_cli_round_trip(ember, tmp_path):
    std = FIXTURES / "adp" / "nnetnav-wa" / "sample_std.json"
    atif_file, adp_file = tmp_path / "t.atif.jsonl", tmp_path / "t.adp.jsonl"
    ember("convert", std, "--from", "adp", "--to", "atif", "-o", atif_file)
    ember("convert", atif_file, "--from", "atif", "-o", adp_file)
    docs = [json.loads(line) for line in atif_file.read_text().splitlines()]
    for doc in docs:
        check_atif(doc)
    back = [json.loads(line) for line in adp_file.read_text().splitlines()]
    read = load_converter("adp")
    original = [read(t) for t in json.loads(std.read_text())]
    assert [t["id"] for t in back] == [t["id"] for t in original]
    for mine, theirs in zip(back, original):
        assert [event_key(e) for e in mine["content"]] == \
               [event_key(e, adp_side=True) for e in theirs["content"]]
