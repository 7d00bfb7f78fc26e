"""`ember convert` output: unique ids by one rule for any --workers and across --resume,
unmapped raw fields in the summary, the catalogue (--list, --list --shape), and ADP read
back with its typed details whichever ember wrote it."""

import json

import pytest

from ember.adp import convert as convert_module
from ember.adp.convert import convert
from ember.adp.mapping import convert_records, load_converter
from ember.adp.model import details_of
from tests.conftest import FIXTURES

STD = FIXTURES / "adp" / "agenttuning_os" / "sample_std.json"


def repeated(tmp_path, n: int, name="in.jsonl"):
    """``n`` ADP records whose ids repeat (a, b, c, a, b, c, ...), plus one literal 'a#2'."""
    records = json.loads(STD.read_text())
    src = tmp_path / name
    with open(src, "w") as f:
        for i in range(n):
            f.write(json.dumps(records[i % 5] | {"id": "abc"[i % 3]}) + "\n")
            if i == 1:
                f.write(json.dumps(records[0] | {"id": "a#2"}) + "\n")
    return src


def ids_of(path, key="id"):
    return [json.loads(line)[key] for line in open(path)]


def test_repeated_ids_are_renamed_the_same_for_any_worker_count(ember, tmp_path):
    src = repeated(tmp_path, 7)
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.jsonl"
        proc = ember("convert", src, "-o", out, "--workers", workers, "--json")
        assert json.loads(proc.stdout)["renamed_ids"] == 4
        assert "repeated an earlier id and were renamed" in proc.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    # the literal 'a#2' came first, so the second 'a' takes the next free number
    assert ids_of(tmp_path / "w1.jsonl") == ["a", "b", "a#2", "c", "a#3", "b#2", "c#2", "a#4"]


def test_exports_get_unique_ids_in_their_own_id_field(ember, tmp_path):
    src = repeated(tmp_path, 4)
    ember("convert", src, "--to", "atif", "-o", tmp_path / "a.jsonl")
    assert ids_of(tmp_path / "a.jsonl", "session_id") == ["a", "b", "a#2", "c", "a#3"]
    ember("convert", src, "--to", "sft-chat", "-o", tmp_path / "s.jsonl")
    assert ids_of(tmp_path / "s.jsonl") == ["a", "b", "a#2", "c", "a#3"]


def test_a_resumed_run_renames_ids_as_an_uninterrupted_one(tmp_path, monkeypatch):
    monkeypatch.setattr(convert_module, "BATCH_RECORDS", 40)  # several batches, small input
    src = repeated(tmp_path, 150)
    straight = tmp_path / "straight.jsonl"
    convert([src], straight)

    out = tmp_path / "out.jsonl"
    batches = []

    def stop_after_two(n):
        batches.append(n)
        if len(batches) == 2:
            raise KeyboardInterrupt  # a kill after the second batch's checkpoint

    with pytest.raises(KeyboardInterrupt):
        convert([src], out, progress=stop_after_two)
    assert not out.exists()
    tally = convert([src], out, resume=True)
    assert tally.resumed and out.read_bytes() == straight.read_bytes()
    ids = ids_of(out)
    assert len(set(ids)) == len(ids) == 151


def test_unmapped_raw_fields_are_in_the_summary(ember, tmp_path):
    out = tmp_path / "s.jsonl"
    proc = ember("convert", FIXTURES / "adp" / "screenagent" / "sample_raw.json", "--from",
                 "screenagent", "-o", out, "--json")
    summary = json.loads(proc.stdout)
    assert summary["produced"] == 57
    unmapped = summary["unmapped_fields"]
    assert unmapped["saved_image_name"] == 5 and unmapped["send_prompt_en"] == 5
    assert "task_prompt_en" not in unmapped and "LLM_response_editer_en" not in unmapped
    assert "raw fields that hold content but that no mapping option reads" in proc.stderr
    # a dataset whose every field is read reports none
    proc = ember("convert", FIXTURES / "adp" / "agenttuning_os" / "sample_raw.json", "--from",
                 "agenttuning_os", "-o", tmp_path / "os.jsonl", "--json")
    assert json.loads(proc.stdout)["unmapped_fields"] == {}
    assert "no mapping option reads" not in proc.stderr


def test_list_has_22_datasets_and_each_shapes_options(ember):
    listing = json.loads(ember("convert", "--list", "--json").stdout)
    assert len(listing["datasets"]) == 22
    shape = json.loads(ember("convert", "--list", "--shape", "browsergym", "--json").stdout)
    options = {o["name"]: o for o in shape["options"]}
    assert options["screenshot"]["type"] == "str | null"
    assert options["final_last"]["default"] == "true"
    assert options["action_map"]["help"].startswith("Structured actions by name")
    text = ember("convert", "--list", "--shape", "react").stderr  # tables go to stderr
    assert "observation_suffix" in text and "non_actions" in text
    proc = ember("convert", "--list", "--shape", "nope", check=False)
    assert proc.returncode == 2 and "unknown --shape 'nope'" in proc.stderr


def test_adp_read_back_has_the_same_typed_details_old_file_or_new():
    typed = {"resolved": True, "test_result": {"passed": 3}, "run": "r1"}
    old = {"id": "x", "details": dict(typed), "content": [
        {"class_": "text_observation", "content": "hi", "source": "user"},
        {"class_": "code_action", "language": "bash", "content": "ls"}]}
    read = load_converter("adp")
    (new,) = convert_records(read, [old])
    assert new["details"] == {"resolved": "true", "test_result": '{"passed":3}', "run": "r1"}
    assert new["json_details"] == ["resolved", "test_result"]
    assert new["content"][1]["description"] is None  # a key ADP's model requires, added
    (again,) = convert_records(read, [json.loads(json.dumps(new))])
    assert details_of(new) == details_of(again) == typed
    assert again == new


def test_every_raw_sample_converts_through_the_cli_without_rejects(ember, tmp_path):
    for raw in sorted((FIXTURES / "adp").glob("*/sample_raw.json")):
        name = raw.parent.name
        out = tmp_path / f"{name}.jsonl"
        summary = json.loads(ember("convert", raw, "--from", name, "-o", out, "--json").stdout)
        assert summary["rejected"] == 0, (name, summary["rejected_by_reason"])
        report = json.loads(ember("validate", out, "--strict", "--json").stdout)
        assert report["ok"] and report["rejected"] == 0, name
