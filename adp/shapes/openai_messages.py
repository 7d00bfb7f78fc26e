"""OpenAI chat messages: ``role``/``content`` turns whose tool calls sit in ``tool_calls``.

Walks the message list once. System turns follow ``system`` (dropped by default). An
assistant turn becomes one action per tool call (``tool_calls``, the legacy
``function_call``, or a list of structured calls named by ``calls``): ``code_tools``
become code actions (their other arguments kept in ``kwargs``), ``finish_tools`` a final
message, the rest API actions; or a message when it calls nothing. Its text is the
actions' description (``text_with_calls: message`` makes it a message before them), and
a ``thought_key`` field is the description of its message or actions. A ``tool`` turn is
the output of the call it names; with ``user_outputs``, a user turn that arrives while a
call still waits for output is that output too (harnesses that send results as user
text, ``OBSERVATION: ...``); any other user turn is user text. An ``image`` of the
record is an image observation where ``image_placeholder`` stands in a user turn.
Outputs are placed right after their own call, so parallel calls read call, output,
call, output. Tool specs come from the ``tools`` field when the mapping names one.

Other shapes reuse this walk with their own way of finding calls in a turn
(``function_tags`` and ``swe_agent`` parse them out of the text); ``events: openhands``
first reads an OpenHands event stream (``action``/``observation`` events, arguments in
``args`` or ``extras``) as the equivalent chat messages.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from ember.adp.mapping import (SYSTEM_CHOICES, SYSTEM_HELP, BaseMapping, ConvertError, get_field,
                               is_template, mark_final, option, record_details, record_id,
                               render, typed)
from ember.adp.model import (api_action, code_action, image_observation, message_action,
                             text_observation, trajectory)
from ember.adp.text import (compile_prefix, compile_replacements, compile_suffix, cut_suffix,
                            replace_all)

ROLES = {"system": "system", "developer": "system", "user": "user", "human": "user",
         "assistant": "assistant", "gpt": "assistant", "ai": "assistant", "agent": "assistant",
         "tool": "tool", "function": "tool", "ipython": "tool", "environment": "tool"}


@dataclass
class Mapping(BaseMapping):
    messages: str = option("messages", "Field holding the message list (a JSON string of one "
                                       "is accepted).", reads="path")
    events: str = option("openai", "How the list is written: `openai` chat messages, or "
                                   "`openhands` events.")
    role_key: str = option("role", "Key of a message's role.")
    content_keys: list[str] = option(["content"], "Keys of a message's text, tried in order.")
    roles: dict[str, str] = option({}, "Extra raw role -> system/user/assistant/tool.")
    system: str = option("drop", SYSTEM_HELP)
    tools: str = option("", "Field holding OpenAI tool specs (list or JSON string), if the "
                            "record has it.", reads="path")
    thought_key: str | None = option(None, "Key of a message's reasoning, written as the "
                                           "description of its message or actions (e.g. "
                                           "`thoughts`).")
    calls: dict[str, str] = option({}, "Calls written as a list inside the message: `{list: "
                                       "KEY, name: KEY, arguments: KEY}` (arguments an object "
                                       "or JSON text), e.g. `{list: actions, name: API_name, "
                                       "arguments: API_params}`; read where a message has no "
                                       "`tool_calls`.")
    text_with_calls: str = option("description", "The text of an assistant message that also "
                                  "calls tools: the `description` of its actions, or a "
                                  "`message` of its own before them.")
    image: str | None = option(None, "Field (or template, e.g. `images/{source}/{file}`) "
                                     "holding the record's image path, or a list of them: "
                                     "each becomes a user image_observation where "
                                     "`image_placeholder` stands in a user message, else "
                                     "before the first one.", reads="template")
    image_placeholder: str = option("<image>", "Text marking an image's place in a user "
                                               "message; it is cut with one line break next "
                                               "to it.")
    code_tools: dict[str, dict] = option({}, "Tool -> {language, argument}: calls that become "
                                             "code actions; their other arguments go to the "
                                             "action's `kwargs`.")
    finish_tools: dict[str, str] = option({}, "Tool -> argument holding the final message: "
                                              "calls that end the episode.")
    finish_default: str = option("", "Final message text when a finish call carries none.")
    call_strings: dict[str, str] = option({}, "Tool -> argument holding one Python-style call "
                                              "(`click('12')`), read as that call.")
    positional_args: dict[str, list[str]] = option({}, "Function -> parameter names, for "
                                                       "positional arguments of call strings.")
    drop_arguments: list[str] = option([], "Call arguments to leave out of API actions (harness "
                                           "bookkeeping).")
    skip_calls: list[str] = option([], "Calls and observation kinds that are harness "
                                       "bookkeeping, left out.")
    user_outputs: bool = option(False, "A user turn that comes while a call waits for output is "
                                       "that output (harnesses that send tool results as user "
                                       "text).")
    observation_prefix: str = option("", "Regex cut from the start of tool output, e.g. "
                                         "`\\s*OBSERVATION:\\n*`.", regex="value")
    observation_suffix: str = option("", "Regex cut from the end of tool output.",
                                     regex="value")
    replace: dict[str, str] = option({}, "Regex -> replacement (re.sub, every match) applied to "
                                         "user turns.", regex="keys")
    keep_if: str = option("", "Field that must be true (e.g. `resolved`), else the record is "
                              "rejected as `filtered-out`.", reads="path")

    def __post_init__(self):
        super().__post_init__()
        if self.system not in SYSTEM_CHOICES:
            raise ValueError(f"system must be one of {', '.join(SYSTEM_CHOICES)}, "
                             f"got {self.system!r}")
        if self.text_with_calls not in ("description", "message"):
            raise ValueError(f"text_with_calls must be description or message, "
                             f"got {self.text_with_calls!r}")
        if self.calls and set(self.calls) != {"list", "name", "arguments"}:
            raise ValueError(f"calls needs exactly the keys list, name and arguments, got "
                             f"{', '.join(sorted(self.calls))}")
        for name, spec in self.code_tools.items():
            if not isinstance(spec.get("argument", "command"), str) or \
                    not isinstance(spec.get("language", "bash"), str):
                raise ValueError(f"code_tools.{name} is {{language, argument}}, got {spec!r}")

    def turn_keys(self):
        if self.events == "openhands":
            return self.messages, OPENHANDS_KEYS
        keys = {self.role_key, *self.content_keys, "tool_calls", "function_call",
                "tool_call_id", "name"}
        keys.update(k for k in (self.thought_key, self.calls.get("list")) if k)
        return self.messages, frozenset(keys)


# What the OpenHands reader takes from an event.
OPENHANDS_KEYS = frozenset(("action", "observation", "args", "extras", "content", "message",
                            "source", "tool_call_metadata"))


class Call(NamedTuple):
    name: str
    args: dict
    id: str | None = None
    thought: str | None = None  # this call's own description, when the turn has several


# (message, its text) -> (thought, calls); None calls means "not a call turn"
ReadCalls = Callable[[dict, str], tuple[str, list[Call]]]
# (record, chat messages) -> (tool specs or None, ReadCalls for this record)
Prepare = Callable[[dict, list[dict]], tuple[list | None, ReadCalls]]


# --- reading raw values ---------------------------------------------------------------


def load_json_list(value: Any, what: str) -> list:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConvertError("wrong-type", f"{what} is a string but not a JSON list") from None
    return typed(value, list, what)


def message_text(msg: dict, keys: list[str]) -> str:
    """The first non-empty text among ``keys``; content-part lists are joined."""
    for key in keys:
        value = msg.get(key)
        if isinstance(value, list):
            value = "\n".join(p.get("text", "") for p in value
                              if isinstance(p, dict) and isinstance(p.get("text"), str))
        if isinstance(value, str) and value:
            return value
    return ""


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def clean_tools(value: Any) -> list[dict] | None:
    """OpenAI tool specs with the nulls that dataset exports pad them with removed."""
    if value in (None, "", []):
        return None
    tools = load_json_list(value, "tools")
    out = []
    for i, spec in enumerate(tools):
        typed(spec, dict, f"tools[{i}]")
        spec = drop_nulls(spec)
        if "function" not in spec and "name" in spec:  # bare function spec
            spec = {"type": "function", "function": spec}
        spec.setdefault("type", "function")
        if not isinstance(spec.get("function"), dict) or "name" not in spec["function"]:
            raise ConvertError("wrong-type", f"tools[{i}] has no function name")
        out.append(spec)
    return out


def parse_call_string(text: str, positional: dict[str, list[str]]) -> tuple[str, dict] | None:
    """``click('12', button='left')`` -> ("click", {"bid": "12", "button": "left"})."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            return None
        names = positional.get(node.func.id, [])
        if len(node.args) > len(names):
            return None
        kwargs = {name: ast.literal_eval(arg) for name, arg in zip(names, node.args)}
        kwargs.update({kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg})
    except (SyntaxError, ValueError):
        return None
    return node.func.id, kwargs


# --- OpenAI tool calls ------------------------------------------------------------------


def _call(name: Any, args: Any, where: str, call_id: Any = None) -> Call:
    if not isinstance(name, str) or not name:
        raise ConvertError("unparseable-action", f"{where} has no function name")
    if args in (None, ""):
        args = {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            raise ConvertError("unparseable-action",
                               f"arguments of {name} are not JSON: {args[:80]!r}") from None
    typed(args, dict, f"arguments of {name}")
    return Call(name, args, call_id or None)


def read_tool_calls(msg: dict, text: str) -> tuple[str, list[Call]]:
    """``tool_calls``, or the legacy single ``function_call`` ({name, arguments})."""
    calls = []
    for i, tc in enumerate(msg.get("tool_calls") or []):
        typed(tc, dict, f"tool_calls[{i}]")
        fn = typed(tc.get("function"), dict, f"tool_calls[{i}].function")
        name, args = fn.get("name"), fn.get("arguments")
        if isinstance(name, str) and name and isinstance(args, dict):
            calls.append(Call(name, args, tc.get("id") or None))  # the common case, inline
        else:
            calls.append(_call(name, args, f"tool_calls[{i}]", tc.get("id")))
    legacy = msg.get("function_call")
    if not calls and legacy is not None:
        typed(legacy, dict, "function_call")
        calls.append(_call(legacy.get("name"), legacy.get("arguments"), "function_call"))
    return text, calls


def list_calls(spec: dict[str, str]) -> Callable[[dict, str], tuple[str, list[Call]]]:
    """Calls from a list in the message (``calls: {list, name, arguments}``)."""
    key, name_key, args_key = spec["list"], spec["name"], spec["arguments"]

    def read(msg: dict, text: str) -> tuple[str, list[Call]]:
        text, calls = read_tool_calls(msg, text)
        if calls:
            return text, calls
        items = msg.get(key) or []
        typed(items, list, key)
        for i, item in enumerate(items):
            typed(item, dict, f"{key}[{i}]")
            calls.append(_call(item.get(name_key), drop_nulls(item.get(args_key)),
                               f"{key}[{i}]"))
        return text, calls

    return read


def openai_prepare(mapping: Mapping) -> Prepare:
    read = list_calls(mapping.calls) if mapping.calls else read_tool_calls

    def prepare(record: dict, messages: list[dict]):
        tools = clean_tools(get_field(record, mapping.tools, None)) if mapping.tools else None
        return tools, read
    return prepare


# --- OpenHands events as chat messages ---------------------------------------------------


def openhands_messages(events: list, skip: list[str]) -> list[dict]:
    """OpenHands events -> chat messages (actions as assistant tool calls)."""
    out = []
    for i, ev in enumerate(events):
        typed(ev, dict, f"event {i}")
        # exports differ on where arguments live: `args`, or moved into `extras`
        args = {k: v for part in (ev.get("args"), ev.get("extras")) if isinstance(part, dict)
                for k, v in part.items()}
        action, observation = ev.get("action"), ev.get("observation")
        if action == "message":
            text = args.get("content") or ev.get("content") or ev.get("message") or ""
            if isinstance(text, str) and text.strip():
                role = "user" if ev.get("source") == "user" else "assistant"
                out.append({"role": role, "content": text})
        elif action and action not in skip:
            thought = args.pop("thought", None)
            meta = ev.get("tool_call_metadata") or {}
            out.append({"role": "assistant", "content": thought if isinstance(thought, str) else "",
                        "tool_calls": [{"id": meta.get("tool_call_id"),
                                        "function": {"name": action, "arguments": args}}]})
        elif observation and observation not in skip:
            meta = ev.get("tool_call_metadata") or {}
            content = ev.get("content")
            if not isinstance(content, str) or not content:
                content = ev.get("message") if isinstance(ev.get("message"), str) else ""
            out.append({"role": "tool", "content": content, "name": observation,
                        "tool_call_id": meta.get("tool_call_id")})
    return out


# --- the walk -----------------------------------------------------------------------------


def make_converter(mapping: Mapping, prepare: Prepare) -> Callable[[dict], dict]:
    if mapping.events not in ("openai", "openhands"):
        raise ValueError(f"events: {mapping.events!r} is not one of: openai, openhands")
    roles = {**ROLES, **mapping.roles}
    obs_prefix = compile_prefix(mapping.observation_prefix)
    obs_suffix = compile_suffix(mapping.observation_suffix)
    replacements = compile_replacements(mapping.replace)
    as_message = mapping.text_with_calls == "message"

    def to_event(call: Call, thought: str | None, call_id: str) -> tuple[dict, bool]:
        """The event for one call, and whether it expects output."""
        name, args = call.name, call.args
        if name in mapping.call_strings:
            text = args.get(mapping.call_strings[name])
            parsed = (parse_call_string(text, mapping.positional_args)
                      if isinstance(text, str) and "\n" not in text.strip() else None)
            if parsed:
                name, args = parsed
        if name in mapping.code_tools:
            spec = mapping.code_tools[name]
            argument = spec.get("argument", "command")
            code = args.get(argument)
            if not isinstance(code, str):
                raise ConvertError("unparseable-action",
                                   f"{name} call has no string '{argument}'")
            extra = {k: v for k, v in args.items()
                     if k != argument and k not in mapping.drop_arguments}
            return code_action(spec.get("language", "bash"), code, thought,
                               tool_call_id=call_id, kwargs=extra or None), True
        if name in mapping.finish_tools:
            text = args.get(mapping.finish_tools[name])
            if not isinstance(text, str) or not text.strip():
                text = mapping.finish_default
            return message_action(text, thought, final=True), False
        kwargs = {k: v for k, v in args.items() if k not in mapping.drop_arguments}
        return api_action(name, kwargs, thought, tool_call_id=call_id), True

    def thought_of(msg: dict) -> str | None:
        value = msg.get(mapping.thought_key) if mapping.thought_key else None
        return value.strip() or None if isinstance(value, str) else None

    def convert(record: dict) -> dict:
        typed(record, dict, "record")
        rid = record_id(record, mapping)
        if mapping.keep_if:
            flag = get_field(record, mapping.keep_if, None)
            if flag in (None, False, 0, "", "false", "False", "0"):
                raise ConvertError("filtered-out", f"'{mapping.keep_if}' is {flag!r}")
        messages = load_json_list(get_field(record, mapping.messages),
                                  f"messages field '{mapping.messages}'")
        messages = [m[0] if isinstance(m, list) and len(m) == 1 else m for m in messages]
        if mapping.events == "openhands":
            messages = openhands_messages(messages, mapping.skip_calls)
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict):
                typed(msg, dict, f"message {i}")
        tools, read_calls = prepare(record, messages)
        images = record_images(record, mapping) if mapping.image else []

        events: list[dict] = []
        turn: list[list] = []  # [action event, call id, [its outputs]] of the open turn
        n_calls = 0
        first_user = None  # where images without a placeholder go

        def flush():
            for event, _, outputs in turn:
                events.append(event)
                events.extend(outputs)
            turn.clear()

        def waiting(call_id: str | None = None):
            for entry in turn:
                if (call_id is not None and entry[1] == call_id) or (
                        call_id is None and not entry[2]):
                    return entry
            return None

        for i, msg in enumerate(messages):
            raw_role = msg.get(mapping.role_key)
            role = roles.get(raw_role) if isinstance(raw_role, str) else None
            if role is None:
                raise ConvertError("unknown-role", f"message {i} has role {raw_role!r}")
            text = message_text(msg, mapping.content_keys)
            if role == "system":
                if mapping.system == "observation" and text.strip():
                    flush()
                    events.append(text_observation(text, "user", name="system"))
                continue
            if role == "assistant":
                flush()
                thought, calls = read_calls(msg, text)
                reasoning = thought_of(msg) if mapping.thought_key else None
                if not calls:
                    if text.strip():
                        events.append(message_action(text, reasoning))
                    continue
                if as_message:
                    if text.strip():
                        events.append(message_action(text, reasoning))
                    thought = None
                elif reasoning:
                    thought = f"{reasoning}\n\n{thought}" if thought and thought.strip() \
                        else reasoning
                for call in calls:
                    call_id = call.id or f"call_{n_calls}"
                    n_calls += 1
                    desc = call.thought if call.thought is not None else thought
                    event, expects_output = to_event(call, desc.strip() or None if desc else None,
                                                     call_id)
                    if expects_output:
                        turn.append([event, call_id, []])
                    else:
                        flush()
                        events.append(event)
                continue
            if role == "tool" or (mapping.user_outputs and waiting()):
                output = text
                if obs_prefix is not None and (m := obs_prefix.match(output)):
                    output = output[m.end():]
                if obs_suffix is not None:
                    output = cut_suffix(obs_suffix, output)
                tid = msg.get("tool_call_id") if role == "tool" else None
                entry = (waiting(tid) if tid else None) or waiting()
                if entry is None:  # output of nothing we saw called: keep it, in place
                    flush()
                    events.append(text_observation(output, "environment", name=msg.get("name"),
                                                   tool_call_id=tid or None))
                else:
                    entry[2].append(text_observation(output, "environment",
                                                     name=msg.get("name") or None,
                                                     tool_call_id=entry[1]))
                continue
            flush()
            if replacements:
                text = replace_all(replacements, text)
            if images and mapping.image_placeholder in text:
                text = place_images(text, mapping.image_placeholder, images, events)
            if first_user is None:
                first_user = len(events)
            events.append(text_observation(text, "user"))
        flush()
        if images:  # no placeholder took them: they open the first user message
            at = first_user if first_user is not None else 0
            events[at:at] = [image_observation(path, "user") for path in images]
        if not any(e["class_"] in ("api_action", "code_action", "message_action")
                   for e in events):
            raise ConvertError("empty-trajectory", "no agent turn in the record")
        mark_final(events, mapping)
        return trajectory(rid, events, record_details(record, mapping), tools=tools)

    return convert


def record_images(record: dict, mapping: Mapping) -> list[str]:
    """The record's image paths (``image``: a field holding one or a list, or a template)."""
    spec = mapping.image
    value = render(spec, record) if is_template(spec) else get_field(record, spec)
    values = value if isinstance(value, list) else [value]
    for v in values:
        typed(v, str, f"image field '{spec}'")
    return list(values)


def place_images(text: str, placeholder: str, images: list[str], events: list[dict]) -> str:
    """Append an image observation per placeholder in ``text`` (taking ``images`` in order)
    and return the text without them, each with one line break next to it."""
    pieces = text.split(placeholder)
    for _ in range(min(len(pieces) - 1, len(images))):
        events.append(image_observation(images.pop(0), "user"))
    out = pieces[0]
    for piece in pieces[1:]:
        if piece.startswith("\n"):
            piece = piece[1:]
        elif out.endswith("\n"):
            out = out[:-1]
        out += piece
    return out


def converter(mapping: Mapping):
    return make_converter(mapping, openai_prepare(mapping))
