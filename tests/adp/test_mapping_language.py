"""The mapping language, shape by shape: the options every shape shares (final_last,
system turns, tool renames, decode/extract, templates, unmapped fields, unique ids) and
the readers added for new datasets (legacy function_call, call lists, images, structured
and nested browser steps, web forms, code-tool arguments, regex prefixes and suffixes)."""

import ast
import re

import pytest

from ember.adp.export import openhands
from ember.adp.mapping import (SHAPES, ConvertError, UniqueIds, build_converter, convert_records,
                               render, shape_class)
from ember.adp.shapes.browsergym import fill_form


def converter(shape: str, **options):
    return build_converter(shape, shape_class(shape)(**options))


def one(shape: str, record, **options) -> dict:
    (traj,) = convert_records(converter(shape, **options), [record])
    return traj


# --- records, one per shape, that end with a message from the agent ---------------------

SYSTEM_PROMPT = ("---- BEGIN FUNCTION #1: bash ----\nDescription: Run.\n\nParameters:\n"
                 "  (1) command (string, required): The command.\n---- END FUNCTION #1 ----")
ENDS_WITH_MESSAGE = {
    "openai-messages": ({}, {"id": "o", "messages": [
        {"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}]}),
    "sharegpt": ({}, {"id": "s", "conversations": [
        {"from": "system", "value": "Be kind."}, {"from": "human", "value": "hi"},
        {"from": "gpt", "value": "hello"}]}),
    "react": ({"turn": [r"Act: (?P<action>.*)"], "actions": [{"match": "say (?P<message>.*)",
                                                               "finish": True}]},
              {"id": "r", "conversations": [
                  {"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"},
                  {"role": "assistant", "content": "hello"}]}),
    "function-tags": ({}, {"id": "f", "messages": [
        {"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}]}),
    "swe-agent": ({}, {"id": "w", "messages": [
        {"role": "system", "content": "COMMANDS:\n"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}]}),
    "codeact": ({"role_key": "role", "content_key": "content"}, {"id": "c", "conversations": [
        {"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}]}),
    "browsergym": ({"goal": "goal", "axtree": "page", "message": "reply"},
                   {"id": "b", "goal": "greet", "page": "[1] text", "reply": "hello"}),
    "atif": ({}, {"session_id": "a", "steps": [
        {"step_id": 1, "source": "user", "message": "hi"},
        {"step_id": 2, "source": "agent", "message": "hello"}]}),
    "adp": ({}, {"id": "d", "content": [
        {"class_": "text_observation", "content": "hi", "source": "user"},
        {"class_": "message_action", "content": "hello"}]}),
}
CHAT_SHAPES = ["openai-messages", "sharegpt", "react", "function-tags", "swe-agent", "codeact"]


def test_every_shape_has_an_example_here():
    assert set(ENDS_WITH_MESSAGE) == set(SHAPES)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("final_last", [True, False])
def test_final_last_in_every_shape(shape, final_last):
    options, record = ENDS_WITH_MESSAGE[shape]
    last = one(shape, record, **options, final_last=final_last)["content"][-1]
    assert last["class_"] == "message_action" and last["content"] == "hello"
    assert last.get("final", False) is final_last


@pytest.mark.parametrize("shape", CHAT_SHAPES)
def test_system_turn_kept_or_dropped_in_every_chat_shape(shape):
    options, record = ENDS_WITH_MESSAGE[shape]
    kept = one(shape, record, **options, system="observation")["content"]
    assert kept[0]["name"] == "system" and kept[0]["source"] == "user"
    assert kept[0]["content"] in ("Be kind.", SYSTEM_PROMPT, "COMMANDS:\n")
    dropped = one(shape, record, **options, system="drop")["content"]
    assert [e["content"] for e in dropped] == ["hi", "hello"]
    with pytest.raises(ValueError, match="key 'system'|system must be"):
        shape_class(shape)(**options, system="keep")


# --- openai-messages -------------------------------------------------------------------


def test_legacy_function_call_is_a_call_and_the_function_turn_its_result():
    traj = one("openai-messages", {"id": "l", "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "Checking.", "function_call": {
            "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
        {"role": "function", "name": "get_weather", "content": "rain"}]})
    call, result = traj["content"][1:]
    assert (call["function"], call["kwargs"], call["description"]) == (
        "get_weather", {"city": "Oslo"}, "Checking.")
    assert result["tool_call_id"] == call["tool_call_id"] == "call_0"


def test_rename_tools_and_exported_code_is_valid_python():
    record = {"id": "t", "messages": [
        {"role": "user", "content": "Find it."},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "function": {
            "name": "browse-web", "arguments": {"max-results": 2, "class": "a"}}}]},
        {"role": "tool", "tool_call_id": "1", "name": "browse-web", "content": "found"}],
        "tools": [{"type": "function", "function": {"name": "browse-web"}}]}
    raw = one("openai-messages", record, tools="tools")
    renamed = one("openai-messages", record, tools="tools",
                  rename_tools={"browse-web": "browse_web"})
    assert raw["content"][1]["function"] == "browse-web"
    assert renamed["content"][1]["function"] == "browse_web"
    assert renamed["content"][2]["name"] == "browse_web"
    assert renamed["tools"][0]["function"]["name"] == "browse_web"
    # names that are no Python identifiers are written so the code parses
    for traj in (raw, renamed):
        turns = openhands.export(traj)["conversations"]
        code = re.search(r"<parameter=code>\n(.*?)\n</parameter>", turns[1]["value"], re.S)[1]
        assert code == "browse_web(max_results=2, class_=\"a\")"
        ast.parse(code)
        signature = turns[0]["value"].split("execute_ipython_cell:\n\n")[1].split("\n")[0]
        ast.parse(f"def {signature}: ...")  # the listed signature is valid Python too
    assert openhands.py_name("9lives") == "_9lives" and openhands.py_name("for") == "for_"


def test_code_tool_keeps_every_argument():
    traj = one("openai-messages", {"id": "k", "messages": [
        {"role": "user", "content": "Wait."},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "function": {
            "name": "execute_bash", "arguments": {"command": "sleep 1", "timeout": 5,
                                                  "is_input": False}}}]},
        {"role": "tool", "tool_call_id": "1", "content": ""}]},
        code_tools={"execute_bash": {"language": "bash", "argument": "command"}},
        drop_arguments=["is_input"])
    code = traj["content"][1]
    assert code["class_"] == "code_action" and code["content"] == "sleep 1"
    assert code["kwargs"] == {"timeout": 5}  # all but the code and dropped bookkeeping


def test_prefix_and_suffix_are_regexes_and_replace_uses_groups():
    traj = one("openai-messages", {"id": "p", "messages": [
        {"role": "user", "content": "Count 3 files."},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "function": {
            "name": "ls", "arguments": {}}}]},
        {"role": "tool", "tool_call_id": "1", "content": "  OBSERVATION:\n\na b c\n[exit 0]"}]},
        observation_prefix=r"\s*OBSERVATION:\n*", observation_suffix=r"\n\[exit \d+\]",
        replace={r"(\d+) files": r"\1 file(s)"})
    assert traj["content"][0]["content"] == "Count 3 file(s)."
    assert traj["content"][2]["content"] == "a b c"


def test_calls_from_a_list_in_the_turn_thoughts_and_images():
    record = {"uid": "v", "img": "a.jpg", "turns": [
        {"from": "human", "value": "What is here?\n<image>"},
        {"from": "gpt", "value": "Let me look.", "thoughts": "Segment it.",
         "actions": [{"name": "sam", "params": {"boxes": [[0, 0, 1, 1]], "prompt": None}}]},
        {"from": "human", "value": "sam: a cat"},
        {"from": "gpt", "value": "A cat.", "thoughts": "Done.", "actions": []}]}
    options = dict(id="uid", messages="turns", role_key="from", content_keys=["value"],
                   thought_key="thoughts", user_outputs=True, image="{img}",
                   calls={"list": "actions", "name": "name", "arguments": "params"})
    c = one("openai-messages", record, **options, text_with_calls="message")["content"]
    assert [e["class_"] for e in c] == ["image_observation", "text_observation",
                                        "message_action", "api_action", "text_observation",
                                        "message_action"]
    assert c[0] == {"class_": "image_observation", "content": "a.jpg", "source": "user"}
    assert c[1]["content"] == "What is here?"  # the placeholder and its line break are cut
    assert (c[2]["content"], c[2]["description"]) == ("Let me look.", "Segment it.")
    assert c[3]["kwargs"] == {"boxes": [[0, 0, 1, 1]]} and "description" not in c[3]
    assert c[4]["tool_call_id"] == c[3]["tool_call_id"]
    assert (c[5]["content"], c[5]["description"]) == ("A cat.", "Done.")
    # the text as the actions' description instead, the thought before it
    c = one("openai-messages", record, **options)["content"]
    assert c[2]["class_"] == "api_action" and c[2]["description"] == "Segment it.\n\nLet me look."
    # no placeholder: the image opens the first user message
    record["turns"][0]["value"] = "What is here?"
    c = one("openai-messages", record, **options)["content"]
    assert c[0]["class_"] == "image_observation" and c[1]["content"] == "What is here?"


# --- react, codeact -------------------------------------------------------------------------


def test_react_observation_suffix_and_non_action_patterns():
    mapping = dict(turn=[r"Act: (?P<action>.*)"], non_actions=[r"give up( now)?"],
                   actions=[{"match": r"go (?P<to>\w+)", "api": "go"}],
                   observation_suffix=r"\s*\(step \d+\)", unparsed="message")
    c = one("react", {"id": "r", "conversations": [
        {"role": "user", "content": "Walk."}, {"role": "assistant", "content": "Act: go north"},
        {"role": "user", "content": "A hall. (step 1)"},
        {"role": "assistant", "content": "Act: GIVE UP NOW"}]}, **mapping)["content"]
    assert c[2]["content"] == "A hall."
    assert c[3] == {"class_": "message_action", "content": "Act: GIVE UP NOW", "final": True}


@pytest.mark.parametrize("lowercase", [True, False])
def test_react_non_actions_found_as_a_case_insensitive_search_finds_them(lowercase):
    """The literal prefilter before the non-action search (text.required_text, folded)
    changes no outcome: mixed case, a phrase with groups, non-ASCII text where Unicode
    case folding matches ASCII ('ſ' is an 's', 'K' a 'k'), and a phrase with no literal."""
    phrases = [r"task (has )?failed", r"end (of )?the task", r"SKIP\b"]
    actions = ["go to desk 1", "task failed", "TASK HAS FAILED", "Task  failed", "end the task",
               "end of the taſk", "taſk failed", "skip", "SKIP it", "skipped", "sKip", "ask"]
    for extra in ([], [r"[0-9]{3}"]):  # the second: no required text, no prefilter
        mapping = dict(turn=[r"Act: (?P<action>.*)"], non_actions=phrases + extra,
                       actions=[{"match": r"(?s).*", "api": "act"}], unparsed="message",
                       lowercase_action=lowercase)
        for action in actions + ["call 911"]:
            c = one("react", {"id": "r", "conversations": [
                {"role": "user", "content": "Go."},
                {"role": "assistant", "content": f"Act: {action}"}]}, **mapping)["content"]
            lowered = action.lower()
            want = any(re.search(p, lowered, re.I) for p in phrases + extra)
            assert (c[1]["class_"] == "message_action") is want, (action, extra)


def test_codeact_replace_is_a_regex():
    c = one("codeact", {"id": "c", "conversations": [
        {"role": "user", "content": "Task:\nDo it."},
        {"role": "assistant", "content": "<execute>\nprint(1)\n</execute>"},
        {"role": "user", "content": "Observation:\n1\nUse <execute> next time (2 left)."}]},
        role_key="role", content_key="content",
        replace={r"Use <execute> next time \((\d) left\)\.": r"\1 turns left."})["content"]
    assert c[2]["content"] == "1\n2 turns left."


# --- options every shape has ---------------------------------------------------------------


def test_decode_extract_and_template_ids():
    traj = one("sharegpt", {"src": "q a", "meta": "{'n': 3}", "text": "Q: 2+2? A: 4",
                            "conversations": [{"from": "human", "value": "x"},
                                              {"from": "gpt", "value": "y"}]},
               id="{src|url}-{meta.n}-{question}", decode={"meta": "python"},
               extract={"text": r"Q: (?P<question>.*?) A: (?P<reply>.*)"},
               details={"reply": "reply", "n": "meta.n"})
    assert traj["id"] == "q%20a-3-2+2?"
    assert traj["details"] == {"reply": "4", "n": "3"} and traj["json_details"] == ["n"]
    with pytest.raises(ConvertError) as e:
        one("sharegpt", {"id": 1, "text": "no match", "conversations": []},
            extract={"text": r"Q: (?P<q>.*)"})
    assert e.value.reason == "unparseable-field" and "'text'" in e.value.detail
    with pytest.raises(ConvertError) as e:
        one("sharegpt", {"id": 1, "meta": "{oops", "conversations": []}, decode={"meta": "json"})
    assert e.value.reason == "wrong-type"
    with pytest.raises(ValueError, match="key 'decode.meta' should be json or python"):
        converter("sharegpt", decode={"meta": "yaml"})
    assert render("{a}{{b}}", {"a": "x"}) == "x{b}"
    chat = {"src": "s", "conversations": [{"from": "human", "value": "q"},
                                          {"from": "gpt", "value": "a"}]}
    assert [t["id"] for t in convert_records(converter("sharegpt", id="{src}-{@index}"),
                                             [chat, chat])] == ["s-0", "s-1"]
    with pytest.raises(ValueError, match="key 'id'.*unknown filter"):
        shape_class("sharegpt")(id="{a|upper}")


def test_unmapped_fields_are_reported():
    convert = converter("sharegpt", details={"model": "model"})
    record = {"id": 1, "model": "m", "notes": "keep me", "empty": "", "score": 0,
              "conversations": [{"from": "human", "value": "q", "weight": 1, "loss": None},
                                {"from": "gpt", "value": "a"}]}
    assert convert.unmapped(record) == ["notes", "score", "conversations[].weight"]


def test_unique_ids_rule():
    ids = UniqueIds()
    assert [ids.take(i) for i in ["a", "a", "b", "a#3", "a", "a"]] == [
        "a", "a#2", "b", "a#3", "a#4", "a#5"]
    convert = converter("sharegpt")
    chat = {"id": "x", "conversations": [{"from": "human", "value": "q"},
                                         {"from": "gpt", "value": "a"}]}
    assert [t["id"] for t in convert_records(convert, [chat] * 3)] == ["x", "x#2", "x#3"]


# --- browsergym: structured, nested and GUI steps, web forms -------------------------------

NESTED = {"episode": "e1", "task": "Find boots.", "steps": [
    {"shot": "0.png", "labels": ["Search", "Go"], "kinds": ["input", "button"],
     "boxes": [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]],
     "op": "TYPE", "target": "12", "text": "boots", "why": None},
    {"shot": "1.png", "labels": [], "kinds": [], "boxes": [], "op": "SCROLL", "dy": 300},
    {"shot": "2.png", "labels": [], "kinds": [], "boxes": [], "op": "DONE", "text": "24 found",
     "why": "Listed."}]}
NESTED_MAPPING = dict(id="episode", goal="task", steps="steps", screenshot="shots/{shot}",
                      thought="why", action_name="op", action_args={"delta_y": "dy"},
                      annotations={"text": "labels", "element_type": "kinds", "box": "boxes",
                                   "box_format": "yxhw"},
                      action_map={"TYPE": {"function": "fill",
                                           "args": {"bid": "target", "value": "text"}},
                                  "DONE": {"message": "text"}})


def test_nested_steps_structured_actions_screenshots_and_null_thoughts():
    c = one("browsergym", NESTED, **NESTED_MAPPING)["content"]
    assert [e["class_"] for e in c] == ["text_observation", "image_observation", "api_action",
                                        "image_observation", "api_action", "image_observation",
                                        "message_action"]
    shot = c[1]
    assert shot["content"] == "shots/0.png" and "tool_call_id" not in shot
    assert shot["annotations"][1] == {"text": "Go", "element_type": "button", "bounding_box": {
        "x": 0.6, "y": 0.5, "width": 0.8, "height": 0.7}}  # (y, x, height, width) read
    assert c[2] == {"class_": "api_action", "function": "fill",
                    "kwargs": {"bid": "12", "value": "boots"}, "tool_call_id": "call_0"}
    assert c[3]["tool_call_id"] == "call_0"
    assert c[4]["function"] == "SCROLL" and c[4]["kwargs"] == {"delta_y": 300}
    assert c[6] == {"class_": "message_action", "content": "24 found", "description": "Listed.",
                    "final": True}


def test_a_steps_answer_field_ends_it_with_the_answer():
    mapping = dict(goal="goal", axtree="page", action_name="op", answer="said")
    steps = [{"id": "q", "goal": "How tall?", "page": "[1] text '8 m'", "op": "SCROLL",
              "said": ""},
             {"id": "q", "goal": "How tall?", "page": "[1] text '8 m'", "op": "SCROLL",
              "said": "8 m"}]
    c = convert_records(converter("browsergym", **mapping), [steps])[0]["content"]
    assert c[2]["function"] == "SCROLL"  # an empty answer: the step acts
    assert c[-1] == {"class_": "message_action", "content": "8 m", "final": True,
                     "answer": "8 m"}


def test_screenshot_of_a_page_and_corner_boxes():
    traj = one("browsergym", {"id": 1, "goal": "g", "tree": "[1] a", "png": "p.png",
                              "tl": [[10, 20]], "br": [[40, 60]], "act": "click('1')"},
               goal="goal", axtree="tree", screenshot="png", action="act",
               annotations={"text": "=box", "top_left": "tl", "bottom_right": "br"})
    page = traj["content"][1]
    assert page["class_"] == "web_observation" and page["image_observation"]["content"] == "p.png"
    assert page["image_observation"]["annotations"][0]["bounding_box"] == {
        "x": 10, "y": 20, "width": 30, "height": 40}


def test_each_step_a_trajectory_of_its_own():
    trajs = convert_records(converter("browsergym", id="sid", goal="task", message="reply",
                                      trajectory_per_step=True), [[
        {"sid": "s", "task": "plan", "reply": "1. open"},
        {"sid": "s", "task": "act", "reply": "click"}]])
    assert [t["id"] for t in trajs] == ["s_0", "s_1"]
    assert [[e["content"] for e in t["content"]] for t in trajs] == [["plan", "1. open"],
                                                                     ["act", "click"]]


PAGE = """<form>
<input type="radio" name="q1" value="1"><input type="radio" name="q1" value="2">
<input type='checkbox' name="ok"/><input type="hidden" name="timer">
<input name="who" value="">
<textarea name="why"></textarea><select name="pick"><option>a</option></select>
</form>"""


def test_form_answers_become_actions_in_page_order_on_the_page_they_change():
    answers = {"why": "because <b>", "pick": "a", "ok": "on", "q1": "2", "timer": "12.5",
               "who": "Ann", "blank": ""}
    actions = fill_form(PAGE, answers)
    assert [(f, kw) for f, kw, _ in actions] == [
        ("click", {"xpath": '//input[@name="q1" and @type="radio" and @value="2"]'}),
        ("click", {"xpath": '//input[@name="ok" and @type="checkbox"]'}),
        ("fill", {"xpath": '//input[@name="who"]', "value": "Ann"}),
        ("fill", {"xpath": '//textarea[@name="why"]', "value": "because <b>"}),
        ("select_option", {"xpath": '//select[@name="pick"]', "options": "a"})]
    last = actions[-1][2]
    assert '<input type="radio" name="q1" value="2" checked="checked">' in last
    assert '<input type=\'checkbox\' name="ok" checked="checked"/>' in last
    assert '<input name="who" value="Ann">' in last
    assert "<textarea name=\"why\">because &lt;b&gt;</textarea>" in last
    assert actions[0][2].count('checked="checked"') == 1  # each page: the answers so far
    with pytest.raises(ConvertError, match="form answer.*nowhere.*name no input"):
        fill_form(PAGE, {"nowhere": "x"})


def test_web_form_record_with_page_vars_and_a_start_url():
    traj = one("browsergym", {"_id": "t 1", "Template": "<p>${q}</p><input type=radio "
                                                        "name=a value=y>",
                              "q": "Sure?", "Answer": "{'a': 'y'}"},
               id="_id", decode={"Answer": "python"}, html="Template", page_vars=True,
               start_url="https://x/{_id|url}", task_template="Go to {start_url}",
               form_answers="Answer")
    task, goto, page, click, after = traj["content"]
    assert task["content"] == "Go to https://x/t%201"
    assert goto["kwargs"] == {"url": "https://x/t%201"} and page["tool_call_id"] == "call_0"
    assert page["html"].startswith("<p>Sure?</p>") and page["url"] == "https://x/t%201"
    assert click["kwargs"]["xpath"] == '//input[@name="a" and @type="radio" and @value="y"]'
    assert 'checked="checked"' in after["html"] and after["tool_call_id"] == click["tool_call_id"]
    # the fields the page shows through ${name} count as read
    assert converter("browsergym", id="_id", html="Template", page_vars=True,
                     task_template="Fill it.", form_answers="Answer").unmapped(
        {"_id": 1, "Template": "${q}", "q": "x", "z": "y", "Answer": {}}) == ["z"]


def test_browsergym_option_checks():
    with pytest.raises(ValueError, match="annotations need `text`"):
        converter("browsergym", axtree="p", goal="g", action="a", annotations={"box": "b"})
    with pytest.raises(ValueError, match="box_format"):
        converter("browsergym", axtree="p", goal="g", action="a",
                  annotations={"text": "t", "box": "b", "box_format": "ltrb"})
    with pytest.raises(ValueError, match="action_map.X"):
        converter("browsergym", axtree="p", goal="g", action_name="n",
                  action_map={"X": {"message": "m", "function": "f"}})
    with pytest.raises(ValueError, match="form_answers.*needs the page's `html`"):
        converter("browsergym", axtree="p", goal="g", form_answers="a")
    with pytest.raises(ConvertError, match="not 4 numbers"):
        one("browsergym", {"id": 1, "g": "g", "s": "x", "t": ["a"], "b": [[1, 2]], "m": "hi"},
            goal="g", screenshot="s", message="m", annotations={"text": "t", "box": "b"})
