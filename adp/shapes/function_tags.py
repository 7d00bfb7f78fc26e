"""Chat messages whose tool calls are written in the text as function tags.

The assistant writes its reasoning, then ``<function=NAME><parameter=KEY>VALUE</parameter>
...</function>`` (the SWE-agent / OpenHands "non-native function calling" format). Each
call becomes an action described by the text before it; tool output comes back as the
next user turn. The tools are read from the system prompt's ``---- BEGIN FUNCTION #n:
NAME ----`` blocks into OpenAI function specs, and parameter values are typed by them
(``insert_line`` 5 is an int, ``view_range`` a list). A last call whose closing tags are
missing (a truncated or sloppy final ``<function=finish>``) runs to the end of the turn,
unless ``unclosed_last_call`` is false. Everything else — which tools are code, output
prefixes — is the shared walk of ``openai_messages``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ember.adp.mapping import ConvertError, get_field, option
from ember.adp.shapes.openai_messages import (Call, Mapping as MessagesMapping, clean_tools,
                                              make_converter, message_text)

_TAG_NAME = re.compile(r"([^>\s]+)>")
_BLOCK = re.compile(r"^-+ BEGIN FUNCTION #\d+: (\S+) -+\n(.*?)^-+ END FUNCTION #\d+",
                    re.S | re.M)
_ARG = re.compile(r"^\s*\(\d+\) (\w+) \((\w+), (required|optional)\): ?(.*)$")
_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
          "list": "array", "dict": "object"}


@dataclass
class Mapping(MessagesMapping):
    user_outputs: bool = option(True, "Tool output comes back as the next user turn.")
    tools_from_system: bool = option(True, "Read tool specs from the system prompt's BEGIN "
                                           "FUNCTION blocks (when `tools` names no field).")
    unclosed_last_call: bool = option(True, "A last `<function=...>` without its closing tag "
                                            "(nor those of its last parameter) runs to the end "
                                            "of the turn; false rejects the record.")


def tools_from_prompt(prompt: str) -> list[dict]:
    """``---- BEGIN FUNCTION #1: bash ----`` blocks -> OpenAI function specs."""
    tools = []
    for name, body in _BLOCK.findall(prompt):
        head, _, params_text = body.partition("\nParameters:\n")
        description = head.strip()
        if description.startswith("Description:"):
            description = description[len("Description:"):].strip()
        description = description.replace("No parameters are required for this function.",
                                          "").strip()
        props: dict = {}
        required: list = []
        current = None
        for line in params_text.splitlines():
            m = _ARG.match(line)
            if m:
                pname, ptype, need, desc = m.groups()
                current = props[pname] = {"type": _TYPES.get(ptype, ptype), "description": desc}
                if need == "required":
                    required.append(pname)
            elif current is not None and line.startswith("Allowed values:"):
                current["enum"] = re.findall(r"`([^`]*)`", line)
            elif current is not None and line.strip():
                current["description"] += "\n" + line.strip()
        parameters = {"type": "object", "properties": props, "required": required}
        tools.append({"type": "function", "function": {
            "name": name, "description": description, "parameters": parameters}})
    return tools


def _value(raw: str, kind: str | None):
    """A parameter's text as its declared type; undeclared ones by their look."""
    # the format puts values on their own lines: drop that one framing newline each side
    text = raw[1:] if raw.startswith("\n") else raw
    text = text[:-1] if text.endswith("\n") else text
    s = text.strip()
    if kind in ("integer", "number") or (kind is None and re.fullmatch(r"-?\d+", s)):
        try:
            return int(s) if re.fullmatch(r"-?\d+", s) else float(s)
        except ValueError:
            return text
    if kind in ("array", "object") or (kind is None and s[:1] in "[{" and s[-1:] in "]}"):
        try:
            return json.loads(s)
        except ValueError:
            return text
    if kind == "boolean" or (kind is None and s in ("true", "false")):
        return {"true": True, "false": False}.get(s.lower(), text)
    return text


def _tags(text: str, tag: str, unclosed: bool = False):
    """``(name, body, start, end)`` of each ``<tag=name>body</tag>`` in ``text``: the matches
    of ``re.finditer(r"<tag=([^>\\s]+)>(.*?)</tag>", text, re.S)``, found with ``str.find``
    (the regex's lazy ``.*?`` costs a step per character of the body). With ``unclosed``,
    a last opening without its closing tag runs to the end of the text."""
    opening, closing = f"<{tag}=", f"</{tag}>"
    pos = 0
    while (start := text.find(opening, pos)) >= 0:
        name = _TAG_NAME.match(text, start + len(opening))
        if name is None:
            pos = start + 1
            continue
        end = text.find(closing, name.end())
        if end < 0:  # no closing tag after this opening, so none after any later one
            if unclosed:
                yield name[1], text[name.end():], start, len(text)
            return
        yield name[1], text[name.end():end], start, end + len(closing)
        pos = end + len(closing)


def parse_calls(text: str, types: dict[str, dict[str, str]],
                unclosed: bool = True) -> tuple[str, list[Call]]:
    """Split a turn into (text, calls); each call is described by the text just before it.
    ``unclosed``: a last call missing its closing tags runs to the end of the turn."""
    calls, pos = [], 0
    for name, body, start, end in _tags(text, "function", unclosed):
        kinds = types.get(name, {})
        closed = end < len(text) or text.endswith("</function>")
        args = {k: _value(v.rstrip() if not closed else v, kinds.get(k))
                for k, v, _, _ in _tags(body, "parameter", unclosed and not closed)}
        calls.append(Call(name, args, thought=text[pos:start]))
        pos = end
    if not calls and "<function=" in text:
        raise ConvertError("unparseable-action",
                           "a <function=...> tag without its closing </function>")
    return text, calls


def converter(mapping: Mapping):
    def prepare(record: dict, messages: list[dict]):
        tools = clean_tools(get_field(record, mapping.tools, None)) if mapping.tools else None
        if tools is None and mapping.tools_from_system:
            prompt = "\n".join(message_text(m, mapping.content_keys) for m in messages
                               if m.get(mapping.role_key) == "system")
            tools = tools_from_prompt(prompt) or None
        types = {t["function"]["name"]: {k: v.get("type") for k, v in t["function"].get(
            "parameters", {}).get("properties", {}).items() if isinstance(v, dict)}
                 for t in tools or []}
        return tools, lambda msg, text: parse_calls(text, types, mapping.unclosed_last_call)

    return make_converter(mapping, prepare)
