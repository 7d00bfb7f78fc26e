"""The ADP data model: trajectories and events as plain dicts.

A trajectory is ``{"id", "content": [event, ...], "details": {...}}`` and every event
carries ``class_`` (``schemas/adp.schema.json``). We keep them as plain dicts
rather than objects because converters stream millions of them through orjson; the
constructors below are the one place that decides which keys an event gets, so every
converter emits the same shape. Optional fields that are ``None`` are left out.

    from ember.adp.model import trajectory, code_action, text_observation
    traj = trajectory("os_1", [text_observation("list files", "user"),
                               code_action("bash", "ls")])
"""

from __future__ import annotations

import re
from typing import Any

SCHEMA_VERSION = "1.1.0"

ACTIONS = ("api_action", "code_action", "message_action")
OBSERVATIONS = ("text_observation", "image_observation", "web_observation")
EVENT_CLASSES = ACTIONS + OBSERVATIONS
SOURCES = ("user", "agent", "environment")

# Open `language` strings are normalised through this table so `sh`, `shell` and
# `bash` train as one tool.
LANGUAGE_ALIASES = {
    "sh": "bash", "shell": "bash", "console": "bash", "zsh": "bash",
    "py": "python", "python3": "python", "ipython": "python", "py3": "python",
    "js": "javascript", "node": "javascript", "ts": "typescript",
    "postgresql": "sql", "mysql": "sql", "sqlite": "sql",
}


def normalize_language(language: str) -> str:
    lang = language.strip().lower()
    return LANGUAGE_ALIASES.get(lang, lang)


def _put(event: dict, **optional: Any) -> dict:
    for key, value in optional.items():
        if value is not None:
            event[key] = value
    return event


# The four per-turn constructors set their optional keys inline rather than through
# `_put`: they run once per event, and its keyword-argument dict would cost more than
# building the event itself.

def api_action(function: str, kwargs: dict, description: str | None = None, *,
               tool_call_id: str | None = None, reasoning_content: str | None = None) -> dict:
    event = {"class_": "api_action", "function": function, "kwargs": kwargs}
    if description is not None:
        event["description"] = description
    if tool_call_id is not None:
        event["tool_call_id"] = tool_call_id
    if reasoning_content is not None:
        event["reasoning_content"] = reasoning_content
    return event


def code_action(language: str, content: str, description: str | None = None, *,
                tool_call_id: str | None = None, reasoning_content: str | None = None) -> dict:
    event = {"class_": "code_action", "language": normalize_language(language),
             "content": content}
    if description is not None:
        event["description"] = description
    if tool_call_id is not None:
        event["tool_call_id"] = tool_call_id
    if reasoning_content is not None:
        event["reasoning_content"] = reasoning_content
    return event


def message_action(content: str, description: str | None = None, *, final: bool = False,
                   answer: str | None = None, reasoning_content: str | None = None) -> dict:
    """A message to the user. ``final`` ends the episode; ``answer`` is the task's answer.

    ADP v1 writes these as ``<finish> … </finish>`` and ``<solution> … </solution>`` tags
    inside the text; ember keeps them as fields (``final_answer`` reads both).
    """
    event = {"class_": "message_action", "content": content}
    if description is not None:
        event["description"] = description
    if final:
        event["final"] = True
    if answer is not None:
        event["answer"] = answer
    if reasoning_content is not None:
        event["reasoning_content"] = reasoning_content
    return event


def text_observation(content: str, source: str, *, name: str | None = None,
                     tool_call_id: str | None = None) -> dict:
    event = {"class_": "text_observation", "content": content, "source": source}
    if name is not None:
        event["name"] = name
    if tool_call_id is not None:
        event["tool_call_id"] = tool_call_id
    return event


def image_observation(content: str, source: str, *, annotations: list | None = None,
                      tool_call_id: str | None = None) -> dict:
    return _put({"class_": "image_observation", "content": content, "source": source},
                annotations=annotations, tool_call_id=tool_call_id)


def web_observation(*, html: str | None = None, axtree: str | None = None,
                    url: str | None = None, viewport_size: list | None = None,
                    image_observation: dict | None = None,
                    tool_call_id: str | None = None) -> dict:
    return _put({"class_": "web_observation"}, html=html, axtree=axtree, url=url,
                viewport_size=viewport_size, image_observation=image_observation,
                tool_call_id=tool_call_id)


def trajectory(id: Any, content: list[dict], details: dict | None = None, *,
               tools: list[dict] | None = None) -> dict:
    return _put({"id": str(id), "schema_version": SCHEMA_VERSION, "content": content,
                 "details": details or {}}, tools=tools)


# --- reading both spellings of the final answer -------------------------------------

_FINISH = re.compile(r"^\s*<finish>(.*)</finish>\s*$", re.S)
_SOLUTION = re.compile(r"<solution>(.*?)</solution>", re.S)


def split_final_tags(text: str) -> tuple[str, bool, str | None]:
    """``"<finish> <solution> 3 </solution> </finish>"`` -> ``("3", True, "3")``.

    Returns (text without the tags, whether it was wrapped in <finish>, the solution).
    Surrounding whitespace inside the tags is dropped; anything else is kept.
    """
    final = False
    m = _FINISH.match(text)
    if m:
        text, final = m.group(1).strip(), True
    answer = None
    m = _SOLUTION.search(text)
    if m:
        answer = m.group(1).strip()
        if _SOLUTION.fullmatch(text.strip()):
            text = answer
    return text, final, answer


def final_answer(traj: dict) -> str | None:
    """The trajectory's final answer, from ember's ``answer`` field or ADP v1 tags."""
    for event in reversed(traj.get("content", ())):
        if event.get("class_") != "message_action":
            continue
        if event.get("answer") is not None:
            return event["answer"]
        _, _, answer = split_final_tags(event.get("content", ""))
        if answer is not None:
            return answer
    return None


def is_final(event: dict) -> bool:
    if event.get("class_") != "message_action":
        return False
    return bool(event.get("final")) or bool(_FINISH.match(event.get("content", "")))
