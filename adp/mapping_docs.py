"""Writes docs/mappings.md, the reference of the mapping language, from the shapes' own
``Mapping`` dataclasses, with one worked example per shape whose output is computed by
running it, so the page cannot drift from the code.

    python -m ember.adp.mapping_docs            # rewrite docs/mappings.md
    python -m ember.adp.mapping_docs --check    # exit 1 when it is out of date

``render()`` returns the page; ``tests/adp/test_mapping_docs.py`` checks the file is it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import yaml

from ember.adp.io import atomic_writer
from ember.adp.mapping import SHAPES, build_converter, convert_records, shape_options

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "mappings.md"

INTRO = """\
# Mapping language

A dataset in a known shape needs no code: a small YAML file names its shape and where
its fields are, and `ember convert raw.jsonl --from my.yaml -o out.jsonl` converts it.
The 22 built-in datasets are such files (`adp/mappings/*.yaml`, `ember convert --list`);
`ember convert --list --shape NAME` prints one shape's options.

This page is generated from the shapes' option dataclasses by
`python -m ember.adp.mapping_docs` (a test checks it is up to date); every example below
is run to show its output.

## Rules every shape shares

- **Checked when it loads.** An unknown key, a value of the wrong type or an invalid
  regular expression stops the run before any record is read, with the file, the key
  and the cause: `mapping my.yaml: key 'turn[0]': invalid regex '(?P<action>': missing ),
  unterminated subpattern at position 0`.
- **Field paths** name a raw field: `a.b` is `record["a"]["b"]`, `a.0` the first item of
  a list; a name with `/` (`image/encoded`) is one key.
- **Templates** build text from fields where an option says so: `{field}`, `{field|url}`
  (URL-quoted), `{{` and `}}` for braces; ids may use `{@index}` (the input position) and
  shapes name their own values (`{goal}`, `{start_url}`).
- **Text patterns: one rule.** Every option that matches text is a Python regular
  expression. A *prefix* is matched at the start of the text and cut; a *suffix* is
  matched at its end and cut; *patterns* and *phrases* are searched anywhere; a
  *replacement table* (`replace`, `prompt_rewrites`) replaces every match and may use
  groups (`\\1`). Escape `. ( ) [ ] ? * + | ^ $ \\ { }` to match them as text; in YAML,
  single quotes keep backslashes as they are.
- **Final answers.** `final_last` marks a trailing message from the agent as the end of
  the episode (`final: true`); shapes differ only in its default.
- **System turns.** Chat shapes take `system: observation` (a user text observation named
  `system`) or `system: drop`.
- **Tool names.** `rename_tools` renames calls, their outputs' names and the tool specs;
  exported code stays valid Python whatever the names (`browse-web` is written
  `browse_web(...)` by `--to openhands`).
- **Nothing lost silently.** A raw field that holds content and that no option reads is
  counted in the summary (`unmapped_fields`, and a warning naming them): name it under
  `details:` to keep it. Chat shapes also count unread keys of each turn
  (`messages[].weight`).
- **Ids.** Output ids are unique: the first record with an id keeps it; each later one
  gets `#k`, k the smallest number from 2 that is not yet used (`ID`, `ID#2`, `ID#3`).
- **Output** loads in ADP's own data model (`ember validate --strict`): required keys are
  present (null where empty), `details` values are strings (other types are written as
  their JSON text and named in `json_details`), ember's extensions are extra keys.
- **Images** (`image`, `screenshot`) are paths as the data has them: relative paths are
  relative to the input file. `--to sft-chat` writes them as TRL's vision-language SFT
  reads them: `{"type": "image"}` content parts and the record's `images` list.
"""

# shape -> (what the example shows, mapping YAML, one raw record or a list of records)
EXAMPLES: dict[str, tuple[str, str, object]] = {
    "openai-messages": (
        "A legacy `function_call` and its `function` result, the system turn kept, the last "
        "message final, and a tool name that is not an identifier renamed.",
        """\
shape: openai-messages
id: chat_id
system: observation
final_last: true
rename_tools: {get-weather: get_weather}
""",
        {"chat_id": "w1", "messages": [
            {"role": "system", "content": "You can look up the weather."},
            {"role": "user", "content": "Is it raining in Oslo?"},
            {"role": "assistant", "content": None, "function_call": {
                "name": "get-weather", "arguments": "{\"city\": \"Oslo\"}"}},
            {"role": "function", "name": "get-weather", "content": "light rain, 7 C"},
            {"role": "assistant", "content": "Yes, light rain at 7 C."}]}),
    "sharegpt": (
        "ShareGPT turns, the system turn dropped; the options every shape has: an id built "
        "from a template, a field decoded from JSON text and copied into `details`.",
        """\
shape: sharegpt
id: "{source}-{meta.n}"
decode: {meta: json}
details: {language: meta.lang}
system: drop
""",
        {"source": "chat", "meta": "{\"n\": 3, \"lang\": \"en\"}", "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "2+2?"},
            {"from": "gpt", "value": "4"}]}),
    "react": (
        "Thought/Action text, an API action read by a rule, the tool's output with a prefix "
        "and a suffix cut (both regexes), and a final answer.",
        """\
shape: react
id: id
turn: ['(?s)Thought:\\s*(?P<thought>.*?)\\s*Action:\\s*(?P<action>.*)']
actions:
  - {match: 'search\\[(?P<query>.*)\\]', api: search}
  - {match: 'finish\\[(?P<answer>.*)\\]', answer: true}
observation_prefix: 'Observation:\\s*'
observation_suffix: '\\s*\\(\\d+ results?\\)'
tools:
  search: {description: Search the web., parameters: [query]}
""",
        {"id": "r1", "conversations": [
            {"role": "user", "content": "Who wrote Dune?"},
            {"role": "assistant", "content": "Thought: Look it up.\nAction: search[Dune novel]"},
            {"role": "user", "content": "Observation: Frank Herbert wrote Dune. (1 result)"},
            {"role": "assistant", "content": "Thought: Found it.\nAction: finish[Frank Herbert]"}
        ]}),
    "function-tags": (
        "Tools read from the system prompt, a bash call that becomes code, and a last call "
        "whose closing tags are missing.",
        """\
shape: function-tags
id: id
observation_prefix: '\\s*OBSERVATION:\\n*'
code_tools: {bash: {language: bash, argument: command}}
""",
        {"id": "f1", "messages": [
            {"role": "system", "content":
                "---- BEGIN FUNCTION #1: bash ----\nDescription: Run a command.\n\n"
                "Parameters:\n  (1) command (string, required): The command.\n"
                "---- END FUNCTION #1 ----\n---- BEGIN FUNCTION #2: submit ----\n"
                "Description: Finish.\nNo parameters are required for this function.\n"
                "---- END FUNCTION #2 ----"},
            {"role": "user", "content": "List the files."},
            {"role": "assistant", "content":
                "Look first.\n<function=bash>\n<parameter=command>ls</parameter>\n</function>"},
            {"role": "user", "content": "OBSERVATION:\na.py"},
            {"role": "assistant", "content": "Done.\n<function=submit>\n"}]}),
    "swe-agent": (
        "A command documented in the prompt's COMMANDS section becomes an API action, any "
        "other command bash code.",
        """\
shape: swe-agent
id: instance_id
messages: trajectory
code_tools: {bash: {language: bash, argument: command}}
""",
        {"instance_id": "s1", "trajectory": [
            {"role": "system", "system_prompt":
                "COMMANDS:\nopen:\n  docstring: opens a file\n  signature: open <path>\n"
                "  arguments:\n    - path (string) [required]: the file\n"},
            {"role": "user", "text": "Fix the typo in a.py."},
            {"role": "ai", "text": "DISCUSSION\nOpen the file first.\n```\nopen a.py\n```"},
            {"role": "user", "text": "1: pritn('hi')"},
            {"role": "ai", "text": "Fix it.\n```\nsed -i 's/pritn/print/' a.py\n```"}]}),
    "codeact": (
        "Code in `<execute>` tags, its output with the environment's suffix cut, and an "
        "answer in `<solution>` tags.",
        """\
shape: codeact
id: id
role_key: role
content_key: content
observation_suffix: '\\s*You have \\d+ steps? left\\.'
""",
        {"id": "c1", "conversations": [
            {"role": "user", "content": "Task:\nWhat is 17 * 23?"},
            {"role": "assistant", "content": "Compute it.\n<execute>\nprint(17 * 23)\n</execute>"},
            {"role": "user", "content": "Observation:\n391\nYou have 4 steps left."},
            {"role": "assistant", "content": "The answer is <solution> 391 </solution>"}]}),
    "browsergym": (
        "Steps in a nested list, actions built from structured fields, a screenshot with "
        "labelled boxes per step, and a step whose thought is null.",
        """\
shape: browsergym
id: episode
goal: instruction
steps: steps
screenshot: "screens/{shot}"
annotations: {text: labels, element_type: "=element", box: boxes, box_format: xywh}
thought: why
action_name: op
action_map:
  TYPE: {function: fill, args: {bid: target, value: text}}
  CLICK: {function: click, args: {bid: target}}
  ANSWER: {message: text}
""",
        {"episode": "e7", "instruction": "Search for hiking boots.", "steps": [
            {"shot": "0.png", "labels": ["Search"], "boxes": [[10, 20, 200, 30]],
             "op": "TYPE", "target": "12", "text": "hiking boots", "why": "Type the query."},
            {"shot": "1.png", "labels": ["Go"], "boxes": [[215, 20, 40, 30]],
             "op": "CLICK", "target": "13", "why": None},
            {"shot": "2.png", "labels": [], "boxes": [], "op": "ANSWER",
             "text": "There are 24 results.", "why": "Done."}]}),
    "atif": (
        "A Harbor ATIF trajectory: a user step, an agent step with a tool call and its "
        "result, and the agent's reply.",
        "shape: atif\n",
        {"schema_version": "ATIF-v1.4", "session_id": "run-1",
         "agent": {"name": "demo", "version": "1"}, "steps": [
             {"step_id": 1, "source": "user", "message": "What time is it?"},
             {"step_id": 2, "source": "agent", "message": "Checking.",
              "tool_calls": [{"tool_call_id": "c1", "function_name": "execute_bash",
                              "arguments": {"command": "date"}}],
              "observation": {"results": [{"source_call_id": "c1", "content": "10:04"}]}},
             {"step_id": 3, "source": "agent", "message": "It is 10:04."}]}),
    "adp": (
        "Published ADP v1: `<finish>`/`<solution>` tags become `final` and `answer`, a key "
        "ADP's data model requires is added, a typed detail is split into string + typed.",
        "shape: adp\n",
        {"id": "a1", "details": {"resolved": True}, "content": [
            {"class_": "text_observation", "content": "2+2?", "source": "user"},
            {"class_": "code_action", "language": "python", "content": "print(2+2)"},
            {"class_": "text_observation", "content": "4", "source": "environment"},
            {"class_": "message_action",
             "content": "<finish> <solution> 4 </solution> </finish>"}]}),
}


def example_output(shape: str) -> list[dict]:
    """Run a shape's worked example; its ADP trajectories."""
    _, text, records = EXAMPLES[shape]
    data = yaml.safe_load(text)
    name = data.pop("shape")
    assert name == shape, (name, shape)
    mapping = importlib.import_module(SHAPES[shape]).Mapping(**data)
    convert = build_converter(shape, mapping)
    return convert_records(convert, records if isinstance(records, list) else [records])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The whole page."""
    out = [INTRO]
    base = {o["name"] for o in shape_options("adp")}
    out.append("## Options every shape has\n")
    out.append("| option | type | default | meaning |\n|---|---|---|---|")
    for o in shape_options("adp"):
        out.append(f"| `{o['name']}` | `{_cell(o['type'])}` | `{_cell(o['default'])}` | "
                   f"{_cell(o['help'])} |")
    out.append("\nShapes may change a default (`final_last`); their tables list the options "
               "again where they do.\n")
    for shape, module in SHAPES.items():
        doc = (importlib.import_module(module).__doc__ or "").strip()
        out.append(f"## `{shape}`\n")
        out.append(doc.replace("``", "`") + "\n")
        own = [o for o in shape_options(shape)
               if o["name"] not in base or o["default"] != _base_default(o["name"])]
        if own:
            out.append("| option | type | default | meaning |\n|---|---|---|---|")
            for o in own:
                out.append(f"| `{o['name']}` | `{_cell(o['type'])}` | `{_cell(o['default'])}` | "
                           f"{_cell(o['help'])} |")
            out.append("")
        what, text, records = EXAMPLES[shape]
        out.append(f"### Example\n\n{what}\n")
        out.append(f"```yaml\n{text.rstrip()}\n```\n")
        out.append("A raw record:\n")
        out.append(f"```json\n{json.dumps(records, indent=2, ensure_ascii=False)}\n```\n")
        out.append("`ember convert` writes:\n")
        shown = example_output(shape)
        shown = shown[0] if len(shown) == 1 else shown
        out.append(f"```json\n{json.dumps(shown, indent=2, ensure_ascii=False)}\n```\n")
    return "\n".join(out).rstrip() + "\n"


def _base_default(name: str) -> str:
    return next(o["default"] for o in shape_options("adp") if o["name"] == name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/mappings.md from the shapes.")
    parser.add_argument("path", nargs="?", default=str(DOC_PATH))
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs")
    args = parser.parse_args(argv)
    text = render()
    path = Path(args.path)
    if args.check:
        same = path.exists() and path.read_text() == text
        print(f"{path}: {'up to date' if same else 'out of date'}")
        return 0 if same else 1
    with atomic_writer(path) as f:
        f.write(text.encode())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
