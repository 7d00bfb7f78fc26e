"""ADP -> ShareGPT text in OpenHands' tool syntax, as ADP's ``sample_sft_openhands.json``.

One record per trajectory: ``{"id", "system", "conversations": [{"from", "value"}]}``
with ``from`` ``human`` or ``gpt``. Actions are written the way OpenHands' text
function-calling prompts them::

    <thought>

    <function=execute_bash>
    <parameter=command>
    ls /etc
    </parameter>
    </function>

- code_action: bash -> ``execute_bash``; python -> ``execute_ipython_cell``; any other
  language -> ``execute_ipython_cell`` calling ``<language>(...)`` with the code as a
  correctly escaped triple-quoted Python string, and a note on the first turn saying so.
  The action's ``kwargs`` that the tool takes (``timeout``) are its parameters too.
- api_action: a call to an OpenHands tool with that tool's own arguments is written as
  that tool; a BrowserGym action (or any call with a ``bid``) becomes ``browser`` code such
  as ``click(bid="12")``; every other function becomes code for the trajectory's code tool
  (``execute_bash`` when its code is all bash, otherwise ``execute_ipython_cell``), and its
  signature is listed at the head of the first user turn.
- a final message_action -> the ``finish`` tool; other messages -> plain text.
- the text observation answering a call -> ``EXECUTION RESULT of [<tool>]:`` + output;
  a web page -> OpenHands' browser observation (URL, focused element, accessibility tree),
  joined to the user turn before it when there is one.

Consecutive turns of one speaker are joined so the conversation alternates. ``system``
is a short prompt of ember's own listing the tools and their syntax. Code written for a
call is always valid Python: function and argument names that are not identifiers
(``browse-web``) are written with their invalid characters as ``_`` (``py_name``).
"""

from __future__ import annotations

import json
import keyword
import re

from ember.adp.export.sft_chat import (CALLS, call_of, code_tool, derive_tools, events_of,
                                       final_parts, is_linked, link, message_text,
                                       observation_text)
from ember.adp.model import code_language, normalize_language

# OpenHands tools: name -> (required arguments, optional arguments)
TOOLS = {
    "execute_bash": (("command",), ("is_input", "timeout")),
    "execute_ipython_cell": (("code",), ()),
    "str_replace_editor": (("command", "path"),
                           ("file_text", "old_str", "new_str", "insert_line", "view_range")),
    "browser": (("code",), ()),
    "web_read": (("url",), ()),
    "edit_file": (("path", "content"), ("start", "end")),
    "think": (("thought",), ()),
    "finish": (("message", "task_completed"), ()),
}

# BrowserGym's actions, which OpenHands' `browser` tool already documents
BROWSER_ACTIONS = {
    "goto": (("url",), ()), "go_back": ((), ()), "go_forward": ((), ()),
    "noop": ((), ("wait_ms",)), "scroll": (("delta_x", "delta_y"), ()),
    "fill": (("bid", "value"), ()), "select_option": (("bid", "options"), ()),
    "click": (("bid",), ("button", "modifiers")), "dblclick": (("bid",), ("button", "modifiers")),
    "hover": (("bid",), ()), "press": (("bid", "key_comb"), ()), "focus": (("bid",), ()),
    "clear": (("bid",), ()), "drag_and_drop": (("from_bid", "to_bid"), ()),
    "upload_file": (("bid", "file"), ()), "send_msg_to_user": (("text",), ()),
    "report_infeasible": (("reason",), ()), "check": (("bid",), ()), "uncheck": (("bid",), ()),
    "new_tab": ((), ()), "tab_close": ((), ()), "tab_focus": (("index",), ()),
}

# The tool-call syntax both ShareGPT exporters teach in their system prompts.
CALL_SYNTAX = """<function=TOOL_NAME>
<parameter=PARAMETER_NAME>
VALUE
</parameter>
</function>
"""

SYSTEM = """You are an agent that solves tasks by calling tools. Think in plain text, then call \
one tool in this syntax:

""" + CALL_SYNTAX + """
Tools:
- execute_bash(command): run a bash command in the terminal.
- execute_ipython_cell(code): run Python code in an IPython cell; pre-defined functions \
named in the task can be called here.
- str_replace_editor(command, path, file_text?, old_str?, new_str?, insert_line?, \
view_range?): view, create and edit files; command is one of view, create, str_replace, \
insert, undo_edit.
- browser(code): act on the web page with BrowserGym actions such as click(bid="12"), \
fill(bid="12", value="text"), goto(url="https://...").
- finish(message, task_completed): end the task with a final message.

Each tool's output comes back in the next user turn."""


# --- rendering helpers shared with the SWE-agent exporter -----------------------------


def format_function(name: str, params: dict) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<function={name}>\n{body}</function>"


def param_text(value) -> str:
    """A parameter value as it is written between <parameter> tags."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def literal(value, linked: bool) -> str:
    """A kwarg as Python source. v1 kwargs are source already (``'"shelf 1"'``)."""
    if isinstance(value, str):
        return value if not linked else json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


_NOT_IDENTIFIER = re.compile(r"\W", re.A)


def py_name(name: str) -> str:
    """``name`` as a Python identifier: other characters become ``_``, a leading digit or
    a keyword gets a ``_`` (``browse-web`` -> ``browse_web``, ``class`` -> ``class_``)."""
    ident = _NOT_IDENTIFIER.sub("_", str(name)) or "_"
    if ident[0].isdigit():
        ident = "_" + ident
    return ident + "_" if keyword.iskeyword(ident) else ident


def call_code(name: str, kwargs: dict, linked: bool) -> str:
    args = ", ".join(f"{py_name(k)}={literal(v, linked)}" for k, v in kwargs.items())
    return f"{py_name(name)}({args})"


def fits(kwargs: dict, signature: tuple) -> bool:
    required, optional = signature
    return set(required) <= set(kwargs) <= set(required) | set(optional)


def signature_docs(traj: dict, names: list[str], linked: bool) -> str:
    """``name(arg: type, ...)`` for each function, with its description where known."""
    calls = [call_of(e, linked) for e in traj["content"]
             if e["class_"] == "api_action" and e["function"] in names]
    specs = {t["function"]["name"]: t["function"] for t in derive_tools(calls, traj.get("tools"))}
    blocks = []
    for name in names:
        spec = specs.get(name, {})
        props = (spec.get("parameters") or {}).get("properties") or {}
        args = ", ".join(f"{py_name(k)}: {_PY[p['type']]}"
                         if isinstance(p, dict) and p.get("type") in _PY else py_name(k)
                         for k, p in props.items())
        doc = f"{py_name(name)}({args})"
        if spec.get("description"):
            doc += "\n" + "\n".join("    " + line for line in spec["description"].splitlines())
        blocks.append(doc)
    return "\n\n".join(blocks)


_PY = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
       "array": "list", "object": "dict"}


def web_page(event: dict, focused: str | None) -> str:
    """A web observation the way OpenHands' browsing agent shows a page."""
    page = event.get("axtree") or event.get("html") or ""
    return (f"[Current URL: {event.get('url')}]\n[Focused element bid: {focused}]\n\n"
            "[Action executed successfully.]\n"
            "============== BEGIN accessibility tree ==============\n"
            f"{page}\n"
            "============== END accessibility tree ==============\n")


def add_turn(turns: list[dict], speaker: str, value: str) -> None:
    """Append a turn, joining it to the previous one when the speaker is the same."""
    if turns and turns[-1]["from"] == speaker:
        turns[-1]["value"] = "\n\n".join(v for v in (turns[-1]["value"], value) if v)
    else:
        turns.append({"from": speaker, "value": value})


def prepend_to_first_human(turns: list[dict], text: str) -> None:
    for turn in turns:
        if turn["from"] == "human":
            turn["value"] = f"{text}\n\n{turn['value']}"
            return
    turns.insert(0, {"from": "human", "value": text})


# --- OpenHands ---------------------------------------------------------------------------


def _code_call(event: dict) -> tuple[str, dict, str | None]:
    """(tool, params, language needing a note) for a code_action."""
    lang = normalize_language(code_language(event))
    code = event.get("content") or ""
    if lang in ("bash", "python"):
        name, arg = code_tool(lang)
        params = {arg: code}
        extra = event.get("kwargs") if isinstance(event.get("kwargs"), dict) else {}
        params.update((k, param_text(v)) for k, v in extra.items() if k in TOOLS[name][1])
        return name, params, None
    escaped = code.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = escaped[:-1]
    if escaped.endswith('"') and (len(body) - len(body.rstrip("\\"))) % 2 == 0:
        escaped = body + '\\"'  # a bare quote before the closing delimiter would end it early
    return "execute_ipython_cell", {"code": f'{py_name(lang)}("""{escaped}""")'}, lang


def export(trajectory: dict) -> dict:
    events = events_of(trajectory)
    linked = is_linked(events)
    ids = link(events)
    langs = {normalize_language(code_language(e)) for e in events if e["class_"] == "code_action"}
    code_env = "execute_bash" if langs == {"bash"} else "execute_ipython_cell"
    turns: list[dict] = []
    tool_of: dict[str, str] = {}  # call id -> tool it was written as
    listed = {code_env: [], "browser": []}  # functions written as code, listed on the first turn
    notes: list[str] = []  # languages run through execute_ipython_cell
    focused = None
    for event, cid in zip(events, ids):
        cls = event["class_"]
        thought = event.get("description") or ""
        if cls in CALLS:
            if cls == "code_action":
                tool, params, lang = _code_call(event)
                if lang and lang not in notes:
                    notes.append(lang)
            else:
                focused = None
                tool, params, focus = _api_call(event, linked, code_env, listed)
                focused = focus or focused
            tool_of[cid] = tool
            call = format_function(tool, params)
            add_turn(turns, "gpt", f"{thought}\n\n{call}" if thought else call)
        elif cls == "message_action":
            text = message_text(event)
            if final_parts(event)[1]:
                text = format_function("finish", {"message": text, "task_completed": "true"})
            add_turn(turns, "gpt", "\n\n".join(p for p in (thought, text) if p))
        elif cls == "web_observation":
            add_turn(turns, "human", web_page(event, focused))
        elif cls == "text_observation" and event.get("source") == "agent" and cid is None:
            add_turn(turns, "gpt", event.get("content") or "")
        else:
            text = observation_text(event)
            if cid is not None and cls == "text_observation":
                text = f"EXECUTION RESULT of [{tool_of[cid]}]:\n{text}"
            add_turn(turns, "human", text)
    head = [_language_note(lang) for lang in notes]
    for env, names in listed.items():
        if names:
            head.append(f"The following pre-defined functions are available in {env}:\n\n"
                        + signature_docs(trajectory, names, linked))
    if head:
        prepend_to_first_human(turns, "\n\n".join(head))
    return {"id": str(trajectory.get("id")), "system": SYSTEM, "conversations": turns}


def _api_call(event: dict, linked: bool, code_env: str, listed: dict[str, list[str]]):
    """(tool, params, focused bid or None) for an api_action; notes functions to list."""
    name = event["function"]
    raw = event.get("kwargs") or {}
    kwargs = {k: v for k, v in raw.items() if k not in ("element_id", "xpath")}
    if "bid" not in kwargs and raw.get("element_id") is not None:
        kwargs["bid"] = raw["element_id"]
    if name in TOOLS and fits(kwargs, TOOLS[name]):
        return name, {k: param_text(v) for k, v in kwargs.items()}, None
    if "bid" in kwargs or (name in BROWSER_ACTIONS and fits(kwargs, BROWSER_ACTIONS[name])):
        if name not in BROWSER_ACTIONS and name not in listed["browser"]:
            listed["browser"].append(name)
        focus = literal(kwargs["bid"], linked) if "bid" in kwargs else None
        return "browser", {"code": call_code(name, kwargs, linked)}, focus
    if name not in listed[code_env]:
        listed[code_env].append(name)
    arg = TOOLS[code_env][0][0]
    return code_env, {arg: call_code(name, kwargs, linked)}, None


def _language_note(lang: str) -> str:
    fn = py_name(lang)
    return (f"{lang} code runs in execute_ipython_cell through the pre-defined function "
            f"{fn}(code), which takes the {lang} source as a Python string, e.g. "
            f'{fn}("""...""").')
