"""The browsergym shape: both call syntaxes, per-step records grouped into trajectories,
the three prompt layouts, and its rejects."""

import jsonschema
import pytest

from ember.adp.mapping import (ConvertError, convert_records, group_key, group_records,
                               load_converter)
from ember.adp.shapes.browsergym import Mapping, converter, parse_action
from ember.schemas import load_schema

VALID = jsonschema.Draft202012Validator(load_schema("adp"))


@pytest.mark.parametrize("text, expected", [
    ("click [52]", ("click", {"bid": "52"})),
    ("type [89] [limit (x) as x->0] [1]",
     ("type", {"bid": "89", "text": "limit (x) as x->0", "press_enter_after": 1})),
    ("type [7] [a] b] [0]", ("type", {"bid": "7", "text": "a] b", "press_enter_after": 0})),
    ("type [717] [Bangor, ME]", ("type", {"bid": "717", "text": "Bangor, ME",
                                          "press_enter_after": 1})),  # WebArena's default
    ("scroll [direction=down]", ("scroll", {"delta_x": 0, "delta_y": 500})),
    ("scroll [up]", ("scroll", {"delta_x": 0, "delta_y": -500})),
    ("tab_focus [0]", ("tab_focus", {"index": 0})),
    ("press [Ctrl+v]", ("keyboard_press", {"key": "Ctrl+v"})),
    ("close_tab", ("tab_close", {})),
    ("stop [The answer is [x]]", ("stop", {"answer": "The answer is [x]"})),
    ("fill('158', 'Central Park, New York')",
     ("fill", {"bid": "158", "value": "Central Park, New York"})),
    ("scroll(0, -200.5)", ("scroll", {"delta_x": 0, "delta_y": -200.5})),
    ("click('48', button='middle', modifiers=['Shift'])",
     ("click", {"bid": "48", "button": "middle", "modifiers": ["Shift"]})),
    ("noop()", ("noop", {})),
])
def test_parse_action_reads_both_syntaxes_with_typed_arguments(text, expected):
    assert parse_action(text) == expected


@pytest.mark.parametrize("text", ["Let's think step by step.", "scroll [sideways]",
                                  "tab_focus [first]", "go_back [now]", "fly [3]", "."])
def test_parse_action_returns_none_for_non_actions(text):
    assert parse_action(text) is None


@pytest.mark.parametrize("text", ["click('1', 'left', [], 'extra')", "fill(bid, 'x')",
                                  "click(**args)"])
def test_unreadable_call_arguments_are_rejected(text):
    with pytest.raises(ConvertError) as e:
        parse_action(text)
    assert e.value.reason == "unparseable-action"


def webarena_step(id, action, page="[1] RootWebArea 'Home'", url="http://x/", thought="Think."):
    prompt = (f"OBSERVATION:\n{page}\nURL: {url}\nOBJECTIVE: Find the price.\n"
              "PREVIOUS ACTIONS:\n1: None")
    response = (f"{thought} In summary, the next action I will perform is ```{action}```")
    return {"id": id, "dataset": "demo", "messages": [
        {"role": "system", "content": "You are a web agent."},
        {"role": "user", "content": prompt}, {"role": "assistant", "content": response}]}


def test_steps_with_one_id_become_one_trajectory():
    convert = load_converter("nnetnav-live")
    steps = [webarena_step("t1", "click [5]"),
             webarena_step("t1", "type [9] [shoes] [0]", page="[9] searchbox ''"),
             webarena_step("t1", "stop [$12]", url="http://x/shoes",
                           thought="Done. ```stop [wrong]``` Let me answer.")]
    (traj,) = convert_records(convert, steps)  # consecutive steps with one id: one trajectory
    VALID.validate(traj)
    assert traj["id"] == "t1" and traj["details"] == {"dataset": "demo"}
    assert [e["class_"] for e in traj["content"]] == [
        "text_observation", "web_observation", "api_action", "web_observation", "api_action",
        "web_observation", "message_action"]
    goal, page0, click, page1, typ, page2, stop = traj["content"]
    assert goal["content"].startswith("You are given the following objective: Find the price.")
    # the keys ADP's data model requires are there, null where the page has no value
    assert page0 == {"class_": "web_observation", "html": None,
                     "axtree": "[1] RootWebArea 'Home'", "url": "http://x/",
                     "image_observation": None, "viewport_size": None}
    assert click["kwargs"] == {"bid": "5"} and click["description"] == "Think."
    assert typ["kwargs"] == {"bid": "9", "text": "shoes", "press_enter_after": 0}
    assert (click["tool_call_id"], page1["tool_call_id"]) == ("call_0", "call_0")
    assert (typ["tool_call_id"], page2["tool_call_id"]) == ("call_1", "call_1")
    # the last fenced action wins; the thought is the text before the first fence
    assert stop == {"class_": "message_action", "content": "$12", "description": "Done.",
                    "final": True, "answer": "$12"}
    assert len(convert(steps[:1])["content"]) == 3


def test_a_bad_step_rejects_its_whole_trajectory_and_only_that_one():
    convert = load_converter("nnetnav-wa")
    records = [webarena_step("a", "click [1]"), webarena_step("a", "dance [1]"),
               webarena_step("a", "stop [x]"), webarena_step("b", "stop [N/A]")]
    group_a, group_b = group_records(records, group_key(convert.group_by))
    assert len(group_a) == 3 and len(group_b) == 1
    with pytest.raises(ConvertError) as e:
        convert(group_a)
    assert e.value.reason == "unparseable-action" and "step 1 of 3" in e.value.detail
    traj = convert(group_b)
    assert traj["id"] == "b"
    assert [e["class_"] for e in traj["content"]] == [
        "text_observation", "web_observation", "message_action"]


def test_stop_in_the_middle_is_a_message_but_not_final():
    convert = load_converter("nnetnav-live")
    traj = convert([webarena_step("m", "stop [first try]"), webarena_step("m", "go_back")])
    message = traj["content"][2]
    assert message["content"] == "first try" and "final" not in message
    assert traj["content"][-1]["function"] == "go_back"


def go_browse_step(traj_num, step, action, reward=1.0):
    return {"graph_data": {"domain": "map", "root_url": "http://osm/"},
            "step_data": {"obs": {"axtree_txt": f"RootWebArea 'OSM {step}'"},
                          "parsed_action": action, "step_number": step,
                          "thought": f"thought {step}"},
            "traj_data": {"goal": "Find directions.", "reward": reward, "traj_num": traj_num}}


def test_go_browse_mapping_reads_browsergym_calls():
    convert = load_converter("go-browse-wa")
    (traj,) = convert_records(convert, [go_browse_step(3, 0, "fill('158', 'Central Park')"),
                                        go_browse_step(3, 1, "send_msg_to_user('Route: 4.3km')")])
    VALID.validate(traj)
    assert traj["id"] == "3" and traj["details"] == {"domain": "map", "root_url": "http://osm/"}
    goal, page, fill, page2, msg = traj["content"]
    assert goal["content"] == "Find directions."
    assert page["viewport_size"] == [1280, 1440] and page["url"] is None
    assert fill["function"] == "fill" and fill["kwargs"] == {"bid": "158", "value": "Central Park"}
    assert page2["tool_call_id"] == "call_0"
    # a message to the user ends the episode but is not an `answer`
    assert msg == {"class_": "message_action", "content": "Route: 4.3km",
                   "description": "thought 1", "final": True}


def test_go_browse_rejects_unsolved_trajectories():
    with pytest.raises(ConvertError) as e:
        load_converter("go-browse-wa")(go_browse_step(4, 0, "click('1')", reward=0.0))
    assert e.value.reason == "low-reward"


SYNATRA_PROMPT = '''"""Generate the next action."""
# website
website = ""

# observation of the current web page
observation = """Tab 0 (current): Docs

[1]  'Docs' focused: True
\t[40] button 'Copy link'"""

# objective
objective = "Share the "Annual Report" doc."

# past actions
def solve():
\t# sub-task 1: Open the menu
\t# step 1: Hover over the "Menu" button.
\thover(element_id="2973")
'''

SYNATRA_RESPONSE = '''# sub-task 2: Copy the link
# step 2: The menu is open, so copy the link.
Click the "Copy link" button now.
click(element_id="40")
# step summary: Tap "Copy link".'''


def test_synatra_python_prompt_and_response():
    convert = load_converter("synatra")
    record = {"prompt": SYNATRA_PROMPT, "response": SYNATRA_RESPONSE}
    first, second = convert_records(convert, [record, record])
    assert (first["id"], second["id"]) == ("0", "1")  # numbered in input order
    VALID.validate(first)
    goal, page, click = first["content"]
    assert goal["content"].endswith('Objective: Share the "Annual Report" doc.')
    assert page["url"] == ""
    assert page["axtree"].startswith("Tab 0 (current): Docs\n\n[1]  'Docs' focused: True")
    assert page["axtree"].endswith('# Previous Actions\ndef solve():\n\t# sub-task 1: Open the '
                                   'menu\n\t# step 1: Hover over the "Menu" button.\n'
                                   '\thover(bid="2973")\n')
    assert click["kwargs"] == {"bid": "40"}
    assert click["description"] == ("# sub-task 2: Copy the link.\n\n# step 2: The menu is open, "
                                     "so copy the link.\n\n# step summary: Tap \"Copy link\".")


PAGE = Mapping(goal="goal", axtree="page", action="act")


def test_plain_fields_make_a_one_step_trajectory():
    traj = converter(PAGE)({"id": 5, "goal": "Buy milk", "page": "[3] button 'Buy'",
                            "act": "click('3')"})
    VALID.validate(traj)
    assert traj["id"] == "5"
    assert [e["class_"] for e in traj["content"]] == [
        "text_observation", "web_observation", "api_action"]
    assert traj["content"][0] == {"class_": "text_observation", "content": "Buy milk",
                                  "source": "user"}
    assert traj["content"][2]["kwargs"] == {"bid": "3"}


@pytest.mark.parametrize("mapping, record, reason", [
    (PAGE, {"id": 1, "goal": "g", "act": "click('1')"}, "missing-field"),
    (PAGE, {"goal": "g", "page": "p", "act": "click('1')"}, "missing-field"),
    (PAGE, {"id": 1, "goal": "g", "page": 3, "act": "click('1')"}, "wrong-type"),
    (PAGE, {"id": 1, "goal": "g", "page": "p", "act": "jump!"}, "unparseable-action"),
    (Mapping(prompt="p", response="r"), {"id": 1, "p": "no page here", "r": "```click [1]```"},
     "unparseable-observation"),
    (Mapping(prompt="p", response="r"),
     {"id": 1, "p": "OBSERVATION: x\nURL: u\nOBJECTIVE: g", "r": "I will click [1]."},
     "unparseable-action"),
    (Mapping(prompt="p", prompt_format="python", response="r", response_format="python"),
     {"id": 1, "p": 'website = ""', "r": "click(element_id='1')"}, "missing-field"),
])
def test_bad_records_are_rejected_with_a_reason(mapping, record, reason):
    with pytest.raises(ConvertError) as e:
        converter(mapping)(record)
    assert e.value.reason == reason


def test_mapping_without_page_or_action_is_a_setup_error():
    with pytest.raises(ValueError, match="needs `prompt` or `axtree`"):
        converter(Mapping(action="act"))
    with pytest.raises(ValueError, match="needs an action"):
        converter(Mapping(axtree="p", goal="g"))
    with pytest.raises(ValueError, match="prompt_format"):
        converter(Mapping(prompt="p", prompt_format="html", action="a"))
    with pytest.raises(ValueError, match="needs `goal`"):
        converter(Mapping(axtree="p", action="a"))
    with pytest.raises(ValueError, match="key 'task_template'"):
        Mapping(prompt="p", action="a", task_template="{task")
