"""The ADP data model: trajectories and events as plain dicts.

A trajectory is ``{"id", "content": [event, ...], "details": {...}}`` and every event
carries ``class_`` (``schemas/adp.schema.json``). We keep them as plain dicts
rather than objects because converters stream millions of them through orjson; the
constructors below are the one place that decides which keys an event gets, so every
converter emits the same shape.

What they write loads in ADP's own data model (``schemas/adp-v1-strict.schema.json``
states its rules): the keys it requires are always present, ``null`` where there is no
value (a code action's ``description``; a web page's ``html``, ``url``,
``image_observation`` and ``viewport_size``); other optional fields that are ``None``
are left out. ``details`` holds strings only, as upstream types it: a value of another
type is written as its JSON text and its name listed in ``json_details``
(``details_of`` reads the typed values back). ember's own fields (``tool_call_id``,
``final``, ...) are extra keys upstream ignores.

    from ember.adp.model import trajectory, code_action, text_observation
    traj = trajectory("os_1", [text_observation("list files", "user"),
                               code_action("bash", "ls")])
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

from ember.schemas import load_schema

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
    "c++": "cpp", "cplusplus": "cpp", "c#": "csharp", "f#": "fsharp", "objective-c": "objc",
    "shell-session": "bash", "sh-session": "bash",
}


@functools.lru_cache(maxsize=256)  # called per code event, with a handful of names
def normalize_language(language: str) -> str:
    lang = language.strip().lower()
    return LANGUAGE_ALIASES.get(lang, lang)


@functools.cache
def upstream_languages() -> frozenset[str]:
    """The code languages ADP's own data model accepts (from the strict schema)."""
    return frozenset(load_schema("adp-v1-strict")["$defs"]["language"]["enum"])


def code_language(event: dict) -> str:
    """A code action's language: ``language_name`` where ADP's list lacks the real one."""
    return event.get("language_name") or event.get("language") or ""


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
                tool_call_id: str | None = None, reasoning_content: str | None = None,
                kwargs: dict | None = None) -> dict:
    """Code the agent runs. ``kwargs``: the other arguments of the call that ran it (the
    code tool's timeout, ...), kept as an extension. A language missing from ADP's list
    is written as ``code`` with the real name in ``language_name``."""
    lang = normalize_language(language)
    event = {"class_": "code_action", "language": lang, "content": content,
             "description": description}
    if lang not in upstream_languages():
        event["language"], event["language_name"] = "code", lang
    if kwargs:
        event["kwargs"] = kwargs
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
    """An image (a path, relative to the input file, or a URL). ``annotations``: a list of
    ``annotation(...)`` dicts, or None."""
    return _put({"class_": "image_observation", "content": content, "source": source},
                annotations=annotations, tool_call_id=tool_call_id)


def annotation(text: str, element_type: str, x: float, y: float, width: float,
               height: float) -> dict:
    """One labelled box on an image, as ADP writes it."""
    return {"text": text, "element_type": element_type,
            "bounding_box": {"x": x, "y": y, "width": width, "height": height}}


def web_observation(*, html: str | None = None, axtree: str | None = None,
                    url: str | None = None, viewport_size: list | None = None,
                    image_observation: dict | None = None,
                    tool_call_id: str | None = None) -> dict:
    event = {"class_": "web_observation", "html": html}
    if axtree is not None:
        event["axtree"] = axtree
    event["url"] = url
    event["image_observation"] = image_observation
    event["viewport_size"] = viewport_size
    if tool_call_id is not None:
        event["tool_call_id"] = tool_call_id
    return event


# Keys ADP's data model requires (null allowed) that the constructors always write;
# `conform` adds them to events read from elsewhere.
REQUIRED_NULLABLE = {"code_action": ("description",),
                     "web_observation": ("html", "url", "image_observation", "viewport_size")}


def conform(event: dict) -> dict:
    """``event`` as ADP's data model loads it: the keys it requires added as null where
    missing, a code language it does not list moved to ``language_name`` (a copy only
    when something changes)."""
    cls = event.get("class_")
    if cls != "code_action" and cls != "web_observation":  # the common case, checked first
        return event
    missing = [k for k in REQUIRED_NULLABLE[cls] if k not in event]
    language = event.get("language")
    foreign = cls == "code_action" and isinstance(language, str) \
        and language not in upstream_languages()
    if not missing and not foreign:
        return event
    event = dict(event)
    for key in missing:
        event[key] = None
    if foreign:
        event["language"], event["language_name"] = "code", normalize_language(language)
    return event


def split_details(details: dict) -> tuple[dict, list[str]]:
    """Typed details -> (``details`` with string values, ``json_details``: the names whose
    value is the JSON text of a value of another type).

    A string stays as it is; any other value (``True``, ``{"a": 1}``, ``None``) is written
    as its JSON text (``"true"``, ``'{"a":1}'``, ``"null"``), so nothing is lost and
    nothing is stored twice.
    """
    strings: dict = {}
    encoded: list[str] = []
    for key, value in details.items():
        key = str(key)
        if isinstance(value, str):
            strings[key] = value
        else:
            strings[key] = orjson.dumps(value, default=str).decode()
            encoded.append(key)
    return strings, encoded


def details_of(traj: dict) -> dict:
    """A trajectory's details with their types: the ``json_details`` entries decoded.
    Reads ember's files (also older ones, whose details were typed) and ADP's."""
    details = traj.get("details")
    if not isinstance(details, dict):
        return {}
    encoded = traj.get("json_details")
    if not encoded or not isinstance(encoded, list):
        return dict(details)
    out = dict(details)
    for key in encoded:
        if isinstance(out.get(key), str):
            try:
                out[key] = orjson.loads(out[key])
            except orjson.JSONDecodeError:
                pass  # not ours to decode: keep the text
    return out


def trajectory(id: Any, content: list[dict], details: dict | None = None, *,
               tools: list[dict] | None = None) -> dict:
    """A trajectory. ``details`` may hold values of any JSON type: those that are not
    strings are written as JSON text and named in ``json_details`` (``split_details``)."""
    traj = {"id": str(id), "schema_version": SCHEMA_VERSION, "content": content,
            "details": {}}
    if details:
        traj["details"], encoded = split_details(details)
        if encoded:
            traj["json_details"] = encoded
    if tools is not None:
        traj["tools"] = tools
    return traj


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
