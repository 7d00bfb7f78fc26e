"""ADP -> ShareGPT text in SWE-agent's tool syntax, as ADP's ``sample_sft_sweagent.json``.

One record per trajectory: ``{"id", "system", "conversations": [{"from", "value"}]}``.
SWE-agent has three tools, ``bash``, ``str_replace_editor`` and ``submit``, written in the
same ``<function=…><parameter=…>`` syntax as OpenHands; the thought before an action is
wrapped in ``<think> … </think>``.

- code_action: bash as is; python as ``python -c $'<code>'`` with the code escaped for
  bash's ``$'…'`` quoting. Other languages have no SWE-agent tool: ``unsupported-language``.
- api_action: ``bash``/``str_replace_editor``/``submit`` with their own arguments as
  themselves; any other function is a command for ``bash`` (``search(keywords="…")``),
  and its signature is listed at the head of the first user turn.
- a final message_action -> its text followed by a ``submit`` call; other messages -> text.
- an observation answering a call, or any output of the environment -> ``OBSERVATION:``
  + its text; a web page is shown as its URL and accessibility tree.
"""

from __future__ import annotations

from ember.adp.export.openhands import (CALL_SYNTAX, add_turn, call_code, fits, format_function,
                                        param_text, prepend_to_first_human, signature_docs)
from ember.adp.export.sft_chat import (CALLS, events_of, final_parts, is_linked, link,
                                       message_text, observation_text)
from ember.adp.mapping import ConvertError
from ember.adp.model import code_language, normalize_language

TOOLS = {
    "bash": (("command",), ()),
    "submit": ((), ()),
    "str_replace_editor": (("command", "path"),
                           ("file_text", "old_str", "new_str", "insert_line", "view_range")),
}

SYSTEM = """You are an agent that solves tasks on a computer by calling tools. Think inside \
<think> </think>, then call one tool in this syntax:

""" + CALL_SYNTAX + """
Tools:
- bash(command): run a bash command; pre-defined functions named in the task are \
commands here too.
- str_replace_editor(command, path, file_text?, old_str?, new_str?, insert_line?, \
view_range?): view, create and edit files; command is one of view, create, str_replace, \
insert, undo_edit.
- submit(): end the task when it is done or cannot go further.

Each tool's output comes back in the next user turn, after "OBSERVATION:"."""


def bash_ansi_c(code: str) -> str:
    """``code`` quoted for bash as ``$'…'`` (backslashes and single quotes escaped)."""
    return "$'" + code.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _think(event: dict) -> str:
    thought = event.get("description") or ""
    return f"<think>\n{thought}\n</think>\n\n" if thought else ""


def export(trajectory: dict) -> dict:
    events = events_of(trajectory)
    linked = is_linked(events)
    ids = link(events)
    turns: list[dict] = []
    functions: list[str] = []  # non-SWE-agent functions run through bash
    after_call = False
    for event, cid in zip(events, ids):
        cls = event["class_"]
        if cls == "code_action":
            lang = normalize_language(code_language(event))
            code = event.get("content") or ""
            if lang == "python":
                code = f"python -c {bash_ansi_c(code)}"
            elif lang != "bash":
                raise ConvertError("unsupported-language",
                                   f"SWE-agent has no tool to run {lang} code")
            add_turn(turns, "gpt", _think(event) + format_function("bash", {"command": code}))
        elif cls == "api_action":
            name, kwargs = event["function"], event.get("kwargs") or {}
            if name in TOOLS and fits(kwargs, TOOLS[name]):
                call = format_function(name, {k: param_text(v) for k, v in kwargs.items()})
            else:
                if name not in functions:
                    functions.append(name)
                call = format_function("bash", {"command": call_code(name, kwargs, linked)})
            add_turn(turns, "gpt", _think(event) + call)
        elif cls == "message_action":
            text = message_text(event)
            if final_parts(event)[1]:
                value = (_think(event) + "\n" + text).strip() + format_function("submit", {})
            else:
                value = _think(event) + text
            add_turn(turns, "gpt", value)
        elif cls == "text_observation" and event.get("source") == "agent" and cid is None:
            add_turn(turns, "gpt", event.get("content") or "")
        else:
            text = observation_text(event)
            if after_call or cid is not None or event.get("source") != "user":
                text = f"OBSERVATION:\n{text}"
            add_turn(turns, "human", text)
        after_call = cls in CALLS
    if functions:
        prepend_to_first_human(turns, "The following pre-defined functions are available in bash:"
                               "\n\n" + signature_docs(trajectory, functions, linked))
    return {"id": str(trajectory.get("id")), "system": SYSTEM, "conversations": turns}
