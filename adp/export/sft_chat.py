"""ADP -> OpenAI chat messages with tool calls, the tool-calling data TRL's SFTTrainer reads.

One record per trajectory: ``{"id", "messages", "tools"}``, plus ``"images"`` when it
shows images (``tools`` is a JSON string; see below).

- user text -> ``user`` (a first one named ``system`` -> ``system``); text the agent said
  (``source: agent``) -> ``assistant``;
- api_action -> an assistant ``tool_calls`` entry calling its function with its kwargs
  (``arguments`` is a JSON string, as the OpenAI API writes it);
- code_action -> a call to a code tool named after OpenHands' tools: ``execute_bash``
  ``{"command"}`` for bash, ``execute_ipython_cell`` ``{"code"}`` for python and
  ``execute_<language>`` ``{"code"}`` for any other language (the action's other
  ``kwargs`` join the arguments);
- the observation answering a call -> ``tool`` with its ``tool_call_id``; any other
  observation is shown to the model as ``user`` text (web pages as URL + accessibility
  tree);
- images are shown the way TRL's vision-language SFT reads them: the message's
  ``content`` becomes a list of parts, ``{"type": "image"}`` where the image goes and
  ``{"type": "text", "text": ...}``, and the record's ``images`` lists the image paths
  in the order of those parts (paths as ADP has them: relative to the file ember read);
  every other message of such a record is written in parts too, as TRL expects.
  TRL fills images only into user, assistant and system messages, so an image that is
  a call's result answers the call as text (``[Image: path]`` and its labelled
  elements) and is shown in a user message right after;
- a description (the thought before an action) -> the assistant ``content``, and
  ``reasoning_content`` where the event has one; a message_action -> plain assistant
  content, with its ``answer`` written as ADP's ``<solution> … </solution>``.

Every file loads with ``datasets.load_dataset("json", data_files=[...])`` together with
the files of any other dataset, and TRL's SFTTrainer (and ``trl sft``) reads it as it is.
Arrow needs one schema for all of them, taken from the first rows of the first file, so:

- ``tools`` is one string, the JSON text of the list of specs (``"[]"`` when there are
  none): each dataset's parameters have their own shape, which no Arrow struct covers,
  and TRL's SFTTrainer decodes a string ``tools`` with ``json.loads``. ``tools_of(record)``
  gives the list back (for this form and the older one with a list); ``chat_record``
  builds a record in this form for any writer;
- every assistant message has a ``reasoning_content`` string (``""`` when the data has
  none, which templates that read the field, such as Qwen3's, render as no reasoning;
  ember's template ignores it). Messages of different roles then
  always have different keys, which ``datasets`` (>= 4.7, what TRL needs) loads as JSON
  values (``List(Json())``) instead of one struct padded with nulls: whatever keys and
  content shapes the files have (``tool_calls`` or not, text or a list of parts), every
  message comes back exactly as written;
- ``arguments`` are JSON strings, ids are strings, text content is a string.

One thing stays per file: ``images`` is a column only of records that show images (a
text model's SFTTrainer refuses a dataset with an ``images`` column). A mix of files with
and without images loads when a file with images comes first.

Consecutive messages of one role are merged so the chat alternates as chat templates
expect. A call the data never answers before the conversation moves on gets an empty
``tool`` answer to keep the chat valid; calls at the very end stay unanswered (a
next-action example). ``tools`` covers every function called: the trajectory's own
``tools`` where it has them, otherwise specs derived from the calls, each parameter typed
from the values seen.

The helpers here (``events_of``, ``link``, ``call_of``, ``message_text``, ...) define the
tool-call view of a trajectory that the other exporters share. They read both spellings
of ADP: published v1 (``<finish>``/``<solution>`` tags, quoted kwargs, no tool_call_id)
and ember's (``final``/``answer`` fields, typed kwargs, ``tool_call_id`` links).
"""

from __future__ import annotations

import ast
import json

from ember.adp.mapping import ConvertError
from ember.adp.model import EVENT_CLASSES, code_language, normalize_language, split_final_tags

CALLS = ("api_action", "code_action")

# language -> (tool name, argument holding the code)
CODE_TOOLS = {"bash": ("execute_bash", "command"), "python": ("execute_ipython_cell", "code")}
CODE_TOOL_DOCS = {
    "execute_bash": "Run a bash command in the terminal and return its output.",
    "execute_ipython_cell": "Run Python code in an IPython cell and return its output.",
}


# --- reading a trajectory -------------------------------------------------------------


def events_of(traj: dict) -> list[dict]:
    """The trajectory's events, checked enough for an exporter to rely on them."""
    if not isinstance(traj, dict):
        raise ConvertError("wrong-type",
                           f"trajectory should be an object, got {type(traj).__name__}")
    if "content" not in traj:
        raise ConvertError("missing-field", "trajectory has no 'content'")
    events = traj["content"]
    if not isinstance(events, list):
        raise ConvertError("wrong-type", f"content should be a list, got {type(events).__name__}")
    if not events:
        raise ConvertError("empty-trajectory", f"trajectory {traj.get('id')!r} has no events")
    for i, event in enumerate(events):
        if not isinstance(event, dict) or event.get("class_") not in EVENT_CLASSES:
            cls = event.get("class_") if isinstance(event, dict) else type(event).__name__
            raise ConvertError("unknown-event", f"content[{i}].class_ = {cls!r}")
        if event["class_"] == "api_action" and not isinstance(event.get("function"), str):
            raise ConvertError("missing-field", f"content[{i}] api_action has no function name")
        if event["class_"] == "api_action" and not isinstance(event.get("kwargs") or {}, dict):
            raise ConvertError("wrong-type", f"content[{i}].kwargs should be an object")
        if event["class_"] == "code_action" and not isinstance(event.get("language"), str):
            raise ConvertError("missing-field", f"content[{i}] code_action has no language")
    return events


def is_linked(events: list[dict]) -> bool:
    """Whether actions and observations are linked by tool_call_id (ember's spelling)."""
    return any(e.get("tool_call_id") for e in events)


def link(events: list[dict]) -> list[str | None]:
    """Per event: the call id an action makes, or the call id an observation answers.

    Linked trajectories pair by ``tool_call_id``. Published v1 has no ids, so (as ADP's
    own SFT scripts do) an observation right after an action answers it, and a run of
    observations answers a run of actions in order. Actions without an id get
    ``call_<n>``, n counting actions from 0 (the next free one if the data uses it).
    """
    linked = is_linked(events)
    ids: list[str | None] = [None] * len(events)
    used = {e["tool_call_id"] for e in events if e["class_"] in CALLS and e.get("tool_call_id")}
    pending: list[str] = []
    n = 0
    answering = False  # v1: inside the run of observations that follows an action
    for i, event in enumerate(events):
        cls = event["class_"]
        if cls in CALLS:
            cid = event.get("tool_call_id")
            if not cid:
                k = n
                while f"call_{k}" in used:
                    k += 1
                cid = f"call_{k}"
                used.add(cid)
            ids[i] = cid
            n += 1
            pending.append(cid)
            answering = True
        elif cls == "message_action":
            answering = False
            if not linked:
                pending.clear()
        elif linked:
            if event.get("tool_call_id") in pending:
                ids[i] = event["tool_call_id"]
                pending.remove(ids[i])
        elif answering and pending:
            ids[i] = pending.pop(0)
        else:
            answering = False
            pending.clear()
    return ids


def final_parts(event: dict) -> tuple[str, bool, str | None]:
    """A message_action's (text, final, answer), from ember's fields or v1's tags."""
    text = event.get("content") or ""
    if "final" in event or "answer" in event:
        return text, bool(event.get("final")), event.get("answer")
    return split_final_tags(text)


def message_text(event: dict) -> str:
    """A message's text with its answer written as ``<solution> … </solution>``."""
    text, _, answer = final_parts(event)
    if answer is None or "<solution>" in text:
        return text
    tag = f"<solution> {answer} </solution>"
    return tag if text.strip() == str(answer).strip() else f"{text}\n\n{tag}" if text else tag


def unquote(value):
    """A v1 kwarg (Python source such as ``'"shelf 1"'``) as a value; others unchanged."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value[1:-1]
        return parsed if isinstance(parsed, str) else value[1:-1]
    return value


def kwargs_of(event: dict, linked: bool) -> dict:
    """An api_action's arguments as typed values (v1's quoted strings unquoted)."""
    kwargs = event.get("kwargs") or {}
    return dict(kwargs) if linked else {k: unquote(v) for k, v in kwargs.items()}


def code_tool(language: str) -> tuple[str, str]:
    """(tool name, argument holding the code) for a language."""
    lang = normalize_language(language)
    return CODE_TOOLS.get(lang, (f"execute_{lang}", "code"))


def call_of(event: dict, linked: bool) -> tuple[str, dict]:
    """(function name, arguments) of an api_action or code_action."""
    if event["class_"] == "code_action":
        name, arg = code_tool(code_language(event))
        extra = event.get("kwargs")
        args = {arg: event.get("content") or ""}
        if isinstance(extra, dict):
            args.update((k, v) for k, v in extra.items() if k != arg)
        return name, args
    return event["function"], kwargs_of(event, linked)


def web_text(event: dict) -> str:
    """A web page as text: its URL, then its accessibility tree (or HTML)."""
    page = event.get("axtree") or event.get("html") or ""
    return f"URL: {event['url']}\n\n{page}" if event.get("url") else page


def image_notes(event: dict) -> str:
    """The labelled elements of an image, as text ("" when it has none)."""
    notes = [a.get("text") for a in event.get("annotations") or () if isinstance(a, dict)]
    notes = [n for n in notes if n]
    return "Elements detected: " + ", ".join(notes) if notes else ""


def image_text(event: dict) -> str:
    text = f"[Image: {event.get('content') or ''}]"
    notes = image_notes(event)
    return text + ("\n" + notes if notes else "")


def event_images(event: dict) -> list[str]:
    """The image paths an observation shows (an image, a web page's screenshot)."""
    if event["class_"] == "image_observation":
        return [event.get("content") or ""]
    shot = event.get("image_observation") if event["class_"] == "web_observation" else None
    return [shot["content"]] if isinstance(shot, dict) and shot.get("content") else []


def add_text(message: dict, text: str) -> None:
    """Append text to a message whose content is a string or a list of parts."""
    if isinstance(message["content"], str):
        message["content"] = _join(message["content"], text)
    elif text:
        parts = message["content"]
        if parts and parts[-1].get("type") == "text":
            parts[-1]["text"] = _join(parts[-1]["text"], text)
        else:
            parts.append({"type": "text", "text": text})


def observation_text(event: dict) -> str:
    if event["class_"] == "web_observation":
        return web_text(event)
    if event["class_"] == "image_observation":
        return image_text(event)
    return event.get("content") or ""


# --- tool specs -------------------------------------------------------------------------

_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (list, "array"), (dict, "object"), (type(None), "null"))


def _json_type(value) -> str:
    return next(name for kind, name in _JSON_TYPES if isinstance(value, kind))


def derive_tools(calls: list[tuple[str, dict]], declared: list | None = None,
                 code_tools: set[str] = frozenset()) -> list[dict]:
    """OpenAI function specs covering every call: declared ones first, then derived ones.

    A derived spec types each parameter from the values seen (``integer`` + ``number``
    widen to ``number``; mixed types list them all); a parameter present in every call
    is required. ``code_tools`` (names code actions were written as) get a description.
    """
    specs = [t for t in declared or ()
             if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    known = {t["function"].get("name") for t in specs}
    seen: dict[str, list[dict]] = {}
    for name, args in calls:
        if name not in known:
            seen.setdefault(name, []).append(args)
    for name, arg_lists in seen.items():
        types: dict[str, set] = {}
        for args in arg_lists:
            for key, value in args.items():
                types.setdefault(key, set()).add(_json_type(value))
        props = {}
        for key, kinds in types.items():
            if kinds == {"integer", "number"}:
                kinds = {"number"}
            props[key] = {"type": kinds.pop() if len(kinds) == 1 else sorted(kinds)}
        required = [k for k in types if all(k in args for args in arg_lists)]
        function = {"name": name}
        if name in code_tools:
            lang = name[len("execute_"):]
            function["description"] = CODE_TOOL_DOCS.get(
                name, f"Run {lang} code and return its output.")
        function["parameters"] = {"type": "object", "properties": props, "required": required}
        specs.append({"type": "function", "function": function})
    return specs


# --- the record form: tools as JSON text --------------------------------------------------


def chat_record(id, messages: list[dict], tools: list[dict] | None = None,
                images: list[str] | None = None) -> dict:
    """A sft-chat record in the form that loads together with any other (see the module
    docstring): ``tools`` as JSON text, a ``reasoning_content`` string on every assistant
    message (the messages are changed in place), ``images`` only when there are some.
    For any writer of sft-chat records (exporters, synthesized solutions)."""
    for message in messages:
        if message.get("role") == "assistant":
            message.setdefault("reasoning_content", "")
    record = {"id": str(id), "messages": messages,
              "tools": json.dumps(list(tools or ()), ensure_ascii=False)}
    if images:
        record["images"] = list(images)
    return record


def tools_of(record: dict) -> list[dict]:
    """A sft-chat record's tool specs as a list: ``tools`` is the JSON text of the list
    (what ``export`` writes) or, in files written before, the list itself; absent or
    null is no tools. ValueError when it is neither."""
    value = record.get("tools")
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except ValueError as e:
            raise ValueError(f"`tools` is not JSON text of a list: {e}") from None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValueError("`tools` is not a list of tool specs")
    return value


# --- export ------------------------------------------------------------------------------


def _join(*parts: str | None) -> str:
    return "\n\n".join(p for p in parts if p)


def export(trajectory: dict) -> dict:
    events = events_of(trajectory)
    linked = is_linked(events)
    ids = link(events)
    messages: list[dict] = []
    calls: list[tuple[str, dict]] = []
    unanswered: list[str] = []  # ids of the last assistant message's open calls
    answered: set[str] = set()
    images: list[str] = []  # image paths, in the order of the image parts

    def close_calls():
        # the conversation moves on: give open calls an empty answer so the chat stays valid
        for cid in unanswered:
            messages.append({"role": "tool", "tool_call_id": cid, "content": ""})
            answered.add(cid)
        unanswered.clear()

    def say(role: str, content: str, *, reasoning: str | None = None,
            tool_call: dict | None = None, image: str | None = None):
        last = messages[-1] if messages else None
        if role == "assistant" and last and last["role"] == "assistant" and not (
                last.get("tool_calls") and tool_call is None):
            last["content"] = _join(last["content"], content)
            if reasoning:
                last["reasoning_content"] = _join(last.get("reasoning_content"), reasoning)
        elif role == "user" and last and last["role"] == "user":
            if image is not None:
                add_image(last, image)
            else:
                add_text(last, content)
            return
        else:
            if role != "tool":
                close_calls()
            last = {"role": role, "content": content}
            if reasoning:
                last["reasoning_content"] = reasoning
            messages.append(last)
            if image is not None:
                last["content"] = []
                add_image(last, image)
        if tool_call is not None:
            last.setdefault("tool_calls", []).append(tool_call)

    def add_image(message: dict, path: str) -> None:
        if isinstance(message["content"], str):
            message["content"] = [{"type": "text", "text": message["content"]}] \
                if message["content"] else []
        message["content"].append({"type": "image"})
        images.append(path)

    pending_images: list[str] = []  # images of call results, shown once the results are in

    for event, cid in zip(events, ids):
        cls = event["class_"]
        answers_a_call = cid is not None and cid not in answered and cls not in CALLS
        if pending_images and not answers_a_call:  # the call results are all in
            for path in pending_images:
                say("user", "", image=path)
            pending_images.clear()
        if cls in CALLS:
            name, args = call_of(event, linked)
            calls.append((name, args))
            call = {"id": cid, "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}
            say("assistant", event.get("description") or "",
                reasoning=event.get("reasoning_content"), tool_call=call)
            unanswered.append(cid)
        elif cls == "message_action":
            say("assistant", _join(event.get("description"), message_text(event)),
                reasoning=event.get("reasoning_content"))
        elif cid is not None and cid not in answered:
            messages.append({"role": "tool", "tool_call_id": cid,
                             "content": observation_text(event)})
            answered.add(cid)
            if cid in unanswered:
                unanswered.remove(cid)
            for path in event_images(event):
                pending_images.append(path)
        elif cls == "text_observation" and event.get("source") == "agent":
            say("assistant", event.get("content") or "")
        elif cls == "text_observation" and event.get("source") == "user" and \
                event.get("name") == "system" and not messages:
            messages.append({"role": "system", "content": event.get("content") or ""})
        elif cls == "image_observation":
            say("user", "", image=event.get("content") or "")
            notes = image_notes(event)
            if notes:
                say("user", notes)
        elif cls == "web_observation" and event_images(event):
            say("user", observation_text(event))
            for path in event_images(event):
                say("user", "", image=path)
        else:
            say("user", observation_text(event))
    for path in pending_images:
        say("user", "", image=path)
    code_tools = {code_tool(code_language(e))[0] for e in events if e["class_"] == "code_action"}
    if images:
        # TRL puts images into the first user message written as a plain string; with
        # every message in parts it fills our placeholders instead
        for message in messages:
            if message["role"] != "tool" and isinstance(message["content"], str):
                message["content"] = [{"type": "text", "text": message["content"]}]
    return chat_record(trajectory.get("id"), messages,
                       derive_tools(calls, trajectory.get("tools"), code_tools), images)
