"""--from resolution: built-in names, mapping files, dotted import paths, clear errors."""

import json

import pytest

from ember.adp.mapping import builtin_names, convert_records, load_converter
from ember.adp.model import message_action, text_observation, trajectory


def convert(record: dict) -> dict:
    """A user's own converter, named on the command line as tests.adp.test_mapping:convert."""
    return trajectory(record["qid"], [text_observation(record["q"], "user"),
                                      message_action(record["a"], final=True, answer=record["a"])])


def test_dotted_path_converter_through_the_cli(ember, tmp_path):
    src = tmp_path / "qa.jsonl"
    src.write_text('{"qid": 1, "q": "2+2?", "a": "4"}\n{"qid": 2, "q": "3+3?"}\n')
    out = tmp_path / "out.jsonl"
    proc = ember("convert", src, "--from", "tests.adp.test_mapping:convert", "-o", out,
                 "--json", "--max-reject-rate", "0.5")
    summary = json.loads(proc.stdout)
    assert (summary["converted"], summary["rejected_by_reason"]) == (1, {"missing-field": 1})
    assert json.loads(out.read_text())["content"][1]["answer"] == "4"


def test_every_builtin_mapping_loads():
    names = builtin_names()
    assert len(names) == 17
    for name in names:
        assert callable(load_converter(name))


def test_unknown_from_is_a_clear_error():
    with pytest.raises(ValueError, match="not a built-in dataset"):
        load_converter("no_such_dataset")
    with pytest.raises(ValueError, match="unknown --from converter 'no.such.module:thing': "
                                         "no such module"):
        load_converter("no.such.module:thing")


def test_at_index_ids_follow_input_position(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("shape: adp\nid: '@index'\n")
    conv = load_converter(str(mapping))
    records = [{"id": "x", "content": [text_observation("hi", "user")]}] * 3
    assert [t["id"] for t in convert_records(conv, records)] == ["0", "1", "2"]
