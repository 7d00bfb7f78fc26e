"""--from resolution: built-in names, mapping files, dotted import paths, clear errors."""

import json

import pytest

from ember.adp.mapping import (MAPPINGS_DIR, SHAPES, builtin_names, convert_records,
                               load_converter, load_mapping)
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
    assert len(names) == 22
    for name in names:
        assert callable(load_converter(name))


def test_builtin_mappings_use_only_the_mapping_language():
    # a built-in is a YAML mapping onto a shape: no dotted path to dataset-specific code
    for name in builtin_names():
        shape, mapping = load_mapping(MAPPINGS_DIR / f"{name}.yaml")
        assert shape in SHAPES and type(mapping).__module__ == SHAPES[shape]


def write(tmp_path, text: str) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, key, cause", [
    ("shape: react\nturn: ['(?P<action>']\n", "turn[0]", "missing ), unterminated subpattern"),
    ("shape: react\nactions: [{match: '[a', api: go}]\n", "actions[0].match",
     "unterminated character set"),
    ("shape: react\nprompt_rewrites: [['(x', y]]\n", "prompt_rewrites[0][0]", "missing )"),
    ("shape: codeact\nobservation_prefix: '*'\n", "observation_prefix", "nothing to repeat"),
    ("shape: openai-messages\nreplace: {'a(': b}\n", "replace.a(", "missing )"),
    ("shape: browsergym\nstrip_phrases: ['+x']\naction: a\naxtree: p\ngoal: g\n",
     "strip_phrases[0]", "nothing to repeat"),
    ("shape: sharegpt\nextract: {task: '(?P<a>'}\n", "extract.task", "missing )"),
])
def test_an_invalid_regex_names_the_file_the_key_and_the_cause(tmp_path, text, key, cause):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as e:
        load_converter(path)
    message = str(e.value)
    assert message.startswith(f"mapping {path}: key '{key}': invalid regex ")
    assert cause in message


@pytest.mark.parametrize("text, key, expected", [
    ("shape: react\nmessages: [a, b]\n", "messages", "should be str, got a list"),
    ("shape: sharegpt\nfinal_last: 'yes'\n", "final_last", "should be bool, got a string"),
    ("shape: browsergym\nmin_reward: high\n", "min_reward", "should be float, got a string"),
    ("shape: openai-messages\ncode_tools: {bash: bash}\n", "code_tools",
     "should be dict[str, dict], got a mapping"),
    ("shape: react\nturn: 'Act: (?P<action>.*)'\n", "turn", "should be list[str]"),
    ("shape: sharegpt\ndetails: {model: [a]}\n", "details", "should be dict[str, str]"),
    ("shape: browsergym\nviewport_size: [1280, wide]\n", "viewport_size",
     "should be list[int] | null"),
])
def test_a_wrong_typed_value_is_rejected_when_the_mapping_loads(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as e:
        load_mapping(path)
    assert str(e.value).startswith(f"mapping {path}: key '{key}' {expected}")


def test_a_bad_mapping_is_one_line_on_the_command_line(ember, tmp_path):
    path = write(tmp_path, "shape: react\nturn: ['(?P<action>']\n")
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1, "conversations": []}\n')
    proc = ember("convert", src, "--from", path, "-o", tmp_path / "o.jsonl", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"mapping {path}: key 'turn[0]': invalid regex" in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_a_shapes_own_check_names_the_file_too(tmp_path):
    path = write(tmp_path, "shape: react\nunparsed: shout\n")
    with pytest.raises(ValueError, match=f"^mapping {path}: unparsed must be"):
        load_mapping(path)


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
