"""sft-chat export: valid tool-calling chats on every fixture, and the rules on small cases."""

import json

import pytest

from ember.adp.export.sft_chat import export, tools_of
from ember.adp.mapping import ConvertError
from ember.adp.model import api_action, code_action, message_action, text_observation
from tests.adp.export.sharegpt_golden import std_trajectories
from tests.conftest import FIXTURES

DATASETS = sorted(p.parent.name for p in (FIXTURES / "adp").glob("*/sample_std.json"))


# ADP's own sample of this dataset opens with the task as the agent's message
# (docs/adp-differences.md); exported as it is, its chat opens with the assistant.
OPENS_WITH_AGENT = {"android_in_the_wild"}


def check_chat(record: dict, opens_with: str = "user") -> None:
    """The structure chat templates and TRL rely on; raises AssertionError when broken."""
    # the Arrow-stable form (see ember.adp.export.sft_chat): tools as JSON text, every
    # assistant message with a reasoning_content string
    assert isinstance(record["tools"], str)
    messages, tools = record["messages"], tools_of(record)
    n_images = 0
    assert isinstance(record["id"], str) and messages
    roles = [m["role"] for m in messages]
    assert set(roles) <= {"system", "user", "assistant", "tool"}
    assert "system" not in roles[1:]
    body = roles[1:] if roles[0] == "system" else roles
    assert body[0] == opens_with, roles
    for prev, role in zip(roles, roles[1:]):
        assert not (prev == role and role in ("user", "assistant")), f"two {role} turns in a row"
    declared = {t["function"]["name"] for t in tools}
    assert all(t["type"] == "function" and t["function"]["parameters"]["type"] == "object"
               for t in tools)
    open_calls: list[str] = []
    answers: dict[str, int] = {}
    for i, m in enumerate(messages):
        if isinstance(m["content"], list):  # content parts: text and image placeholders
            assert m["role"] in ("user", "assistant", "system")
            assert all(p["type"] == "image" and set(p) == {"type"} or
                       p["type"] == "text" and isinstance(p["text"], str) for p in m["content"])
            n_images += sum(p["type"] == "image" for p in m["content"])
        else:
            assert isinstance(m["content"], str)
        if m["role"] == "assistant":
            assert isinstance(m["reasoning_content"], str)
        if m["role"] == "tool":
            assert m["tool_call_id"] in open_calls, f"message {i} answers no open call"
            open_calls.remove(m["tool_call_id"])
            answers[m["tool_call_id"]] = answers.get(m["tool_call_id"], 0) + 1
            continue
        assert not open_calls, f"message {i} ({m['role']}) comes before {open_calls} are answered"
        for call in m.get("tool_calls", ()):
            assert m["role"] == "assistant" and call["type"] == "function"
            assert call["function"]["name"] in declared
            assert isinstance(json.loads(call["function"]["arguments"]), dict)
            open_calls.append(call["id"])
    # calls in the last message may stay open (a next-action example); none is answered twice
    last_calls = {c["id"] for c in messages[-1].get("tool_calls", ())}
    assert set(open_calls) <= last_calls
    assert all(n == 1 for n in answers.values())
    # one path per image placeholder, in order; no images key without images
    assert record.get("images", None) is None if not n_images else \
        len(record["images"]) == n_images and all(isinstance(p, str) for p in record["images"])


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_fixture_exports_a_valid_chat(dataset):
    for traj in std_trajectories(dataset):
        record = export(traj)
        check_chat(record, "assistant" if dataset in OPENS_WITH_AGENT else "user")
        assert record["id"] == traj["id"]
        n_calls = sum(e["class_"] in ("api_action", "code_action") for e in traj["content"])
        assert sum(len(m.get("tool_calls", ())) for m in record["messages"]) == n_calls


def test_cli_to_sft_chat(ember, tmp_path):
    out = tmp_path / "kg.sft.jsonl"
    ember("convert", FIXTURES / "adp" / "agenttuning_kg" / "sample_std.json", "--from", "adp",
          "--to", "sft-chat", "-o", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 5
    for record in records:
        check_chat(record)
    first_call = next(m for m in records[0]["messages"] if m.get("tool_calls"))["tool_calls"][0]
    # v1's quoted kwarg "'Gas-generator cycle'" becomes a typed string argument
    assert json.loads(first_call["function"]["arguments"]) == {"variable": "Gas-generator cycle"}
    spec = next(t for t in tools_of(records[0]) if t["function"]["name"] == "get_relations")
    assert spec["function"]["parameters"] == {"type": "object", "required": ["variable"],
                                              "properties": {"variable": {"type": "string"}}}


def _traj(*events, **extra):
    return {"id": "x", "content": list(events), "details": {}, **extra}


USER = text_observation("task", "user")


def env(content, call_id):
    return text_observation(content, "environment", tool_call_id=call_id)


def test_code_actions_call_named_code_tools_and_outputs_answer_them():
    record = export(_traj(
        USER,
        {"class_": "code_action", "language": "sh", "content": "ls", "description": "Look.",
         "reasoning_content": "hidden", "tool_call_id": "t1"},
        env("a b", "t1"),
        code_action("python3", "print(1)", tool_call_id="t2"),
        env("1", "t2"),
        message_action("2", "So:", final=True, answer="2")))
    check_chat(record)
    user, a1, t1, a2, t2, final = record["messages"]
    assert a1 == {"role": "assistant", "content": "Look.", "reasoning_content": "hidden",
                  "tool_calls": [{"id": "t1", "type": "function", "function": {
                      "name": "execute_bash", "arguments": '{"command": "ls"}'}}]}
    assert t1 == {"role": "tool", "tool_call_id": "t1", "content": "a b"}
    assert a2["tool_calls"][0]["function"] == {"name": "execute_ipython_cell",
                                               "arguments": '{"code": "print(1)"}'}
    assert final == {"role": "assistant", "content": "So:\n\n<solution> 2 </solution>",
                     "reasoning_content": ""}
    assert [t["function"]["name"] for t in tools_of(record)] == ["execute_bash",
                                                                "execute_ipython_cell"]


def test_parallel_calls_share_one_assistant_message():
    record = export(_traj(
        USER,
        api_action("f", {"a": 1}, tool_call_id="p"),
        api_action("f", {"a": 2.5, "b": True}, tool_call_id="q"),
        env("P", "p"),
        env("Q", "q")))
    check_chat(record)
    assert [m["role"] for m in record["messages"]] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in record["messages"][1]["tool_calls"]] == ["p", "q"]
    params = tools_of(record)[0]["function"]["parameters"]
    assert params["properties"] == {"a": {"type": "number"}, "b": {"type": "boolean"}}
    assert params["required"] == ["a"]


def test_declared_tools_are_kept_and_missing_ones_derived():
    params = {"type": "object", "properties": {}}
    declared = [{"type": "function", "function": {"name": "f", "description": "F.",
                                                  "parameters": params}}]
    record = export(_traj(USER, api_action("f", {}, tool_call_id="1"),
                          api_action("g", {"k": "v"}, tool_call_id="2"), tools=declared))
    assert tools_of(record)[0] == declared[0]
    assert tools_of(record)[1]["function"]["name"] == "g"


def test_unanswered_call_gets_an_empty_answer_before_the_chat_moves_on():
    record = export(_traj(
        USER,
        api_action("f", {}, tool_call_id="1"),
        text_observation("stop", "user"),
        api_action("f", {}, tool_call_id="2")))
    check_chat(record)
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["user", "assistant", "tool", "user", "assistant"]
    assert record["messages"][2] == {"role": "tool", "tool_call_id": "1", "content": ""}


def test_web_page_is_user_text_before_the_first_action_and_a_tool_answer_after():
    record = export(_traj(
        USER,
        {"class_": "web_observation", "axtree": "[1] link 'a'", "url": "http://a"},
        {"class_": "api_action", "function": "click", "kwargs": {"bid": "1"}, "tool_call_id": "c"},
        {"class_": "web_observation", "axtree": "[2] text", "url": "http://b",
         "tool_call_id": "c"}))
    check_chat(record)
    assert record["messages"][0]["content"] == "task\n\nURL: http://a\n\n[1] link 'a'"
    assert record["messages"][2] == {"role": "tool", "tool_call_id": "c",
                                     "content": "URL: http://b\n\n[2] text"}


def test_v1_spelling_tags_and_positional_pairing():
    record = export(_traj(
        USER,
        {"class_": "api_action", "function": "go", "kwargs": {"to": '"x"'}},
        {"class_": "text_observation", "content": "ok", "source": "user"},
        {"class_": "message_action", "content": "<finish> <solution> 4 </solution> </finish>"}))
    check_chat(record)
    call = record["messages"][1]["tool_calls"][0]
    assert call["id"] == "call_0" and json.loads(call["function"]["arguments"]) == {"to": "x"}
    assert record["messages"][2] == {"role": "tool", "tool_call_id": "call_0", "content": "ok"}
    assert record["messages"][3]["content"] == "<solution> 4 </solution>"


@pytest.mark.parametrize("traj, reason", [
    ({"id": "x"}, "missing-field"),
    ({"id": "x", "content": {}}, "wrong-type"),
    ({"id": "x", "content": []}, "empty-trajectory"),
    ({"id": "x", "content": [{"class_": "thought", "content": "hm"}]}, "unknown-event"),
    ({"id": "x", "content": [USER, {"class_": "api_action", "kwargs": {}}]}, "missing-field"),
])
def test_bad_trajectories_are_rejected_with_a_reason(traj, reason):
    with pytest.raises(ConvertError) as err:
        export(traj)
    assert err.value.reason == reason


def _converted(dataset: str) -> list[dict]:
    from ember.adp.mapping import convert_records, load_converter
    raw = json.loads((FIXTURES / "adp" / dataset / "sample_raw.json").read_text())
    return convert_records(load_converter(dataset), raw)


def test_images_are_content_parts_as_trl_reads_them():
    data_utils = pytest.importorskip("trl.data_utils")
    folder = FIXTURES / "adp" / "llava_plus"
    for traj in _converted("llava_plus"):
        record = export(traj)
        check_chat(record)
        first = record["messages"][0]
        assert first["role"] == "user" and first["content"][0] == {"type": "image"}
        assert all(isinstance(m["content"], list) for m in record["messages"]
                   if m["role"] != "tool")
        text = first["content"][1]
        assert text["type"] == "text" and "<image>" not in text["text"]
        # paths stay relative to the file that was converted, and lead to the images
        assert all((folder / path).is_file() for path in record["images"])
        filled = data_utils.prepare_multimodal_messages(record["messages"], record["images"])
        shown = [p["image"] for m in filled for p in m["content"] if p["type"] == "image"]
        assert shown == record["images"]


def test_an_image_returned_by_a_call_answers_it_in_text_and_shows_after_it():
    data_utils = pytest.importorskip("trl.data_utils")
    (traj,) = _converted("android_in_the_wild")
    record = export(traj)
    check_chat(record)
    roles = [m["role"] for m in record["messages"]]
    assert roles[:5] == ["user", "assistant", "tool", "user", "assistant"]
    screen = traj["content"][3]["content"]
    assert record["messages"][2]["content"].startswith(f"[Image: {screen}]\nElements detected:")
    assert record["messages"][3]["content"] == [{"type": "image"}]
    assert record["images"] == [e["content"] for e in traj["content"]
                                if e["class_"] == "image_observation"]
    data_utils.prepare_multimodal_messages(record["messages"], record["images"])


def test_code_tool_arguments_beyond_the_code_are_kept():
    record = export(_traj(USER, code_action("bash", "sleep 9", tool_call_id="t",
                                            kwargs={"timeout": 5})))
    args = json.loads(record["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert args == {"command": "sleep 9", "timeout": 5}


# Exports without a single tool call (their messages alone would load as a narrow struct),
# with images, and with reasoning_content: the cases where files used to disagree.
NO_CALLS = "agenttuning_db"
WITH_IMAGES = "llava_plus"


def test_files_of_different_datasets_load_together_with_datasets(tmp_path):
    """sft-chat files of different datasets load in one `datasets.load_dataset("json", ...)`
    (the first file, whose first rows set the schema, a call-free one or one with images),
    and every record comes back exactly as written."""
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    files = {}
    for dataset in (NO_CALLS, WITH_IMAGES, "agenttuning_os", "orca_agentinstruct",
                    "android_in_the_wild", "swe-gym_openhands_sampled_trajectories"):
        files[dataset] = tmp_path / f"{dataset}.sft.jsonl"
        files[dataset].write_text("".join(json.dumps(export(traj)) + "\n"
                                          for traj in std_trajectories(dataset)))
    assert not any(m.get("tool_calls") for line in files[NO_CALLS].open()
                   for m in json.loads(line)["messages"])
    # none of the fixtures thinks aloud or calls in parallel: one trajectory that does
    nested = {"type": "object", "properties": {"q": {"type": "array", "items": {
        "type": "object", "properties": {"k": {"type": "integer"}}}}}, "required": ["q"]}
    made = _traj(USER, api_action("f", {"q": [{"k": 1}]}, tool_call_id="a",
                                  reasoning_content="think"),
                 api_action("g", {"x": None}, tool_call_id="b"), env("A", "a"), env("B", "b"),
                 message_action("done"),
                 tools=[{"type": "function", "function": {"name": "f", "parameters": nested}}])
    files["made"] = tmp_path / "made.sft.jsonl"
    files["made"].write_text(json.dumps(export(made)) + "\n")
    images = {d for d in files if '"images"' in files[d].read_text()}
    assert WITH_IMAGES in images and NO_CALLS not in images
    # a call-free file first, then files with calls, parallel calls and reasoning_content
    mixes = {"text, call-free first": [files[d] for d in (NO_CALLS, "agenttuning_os",
                                                          "made", "orca_agentinstruct")],
             "all, images first": [files[WITH_IMAGES]] +
             [f for d, f in files.items() if d != WITH_IMAGES]}
    for name, order in mixes.items():
        ds = datasets.load_dataset("json", data_files=[str(f) for f in order], split="train",
                                   cache_dir=str(tmp_path / "cache" / name))
        assert ds.features["tools"] == datasets.Value("string"), name
        written = [json.loads(line) for f in order for line in f.open()]
        assert len(ds) == len(written)
        for row, record in zip(ds, written):
            assert row["id"] == record["id"]
            assert row["messages"] == record["messages"], (name, row["id"])  # no null padding
            assert tools_of(row) == tools_of(record)
            assert row.get("images") == record.get("images")
