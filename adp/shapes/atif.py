"""Harbor ATIF trajectories (Agent Trajectory Interchange Format, v1.0-v1.7) -> ADP.

ATIF writes a run as numbered ``steps`` from ``system``, ``user`` or ``agent``:

- a ``user`` step -> a user ``text_observation`` (image parts -> ``image_observation``);
  a ``system`` step's prompt -> a user ``text_observation`` named ``system``;
- an ``agent`` step with ``tool_calls`` -> one action per call, the step's ``message``
  as the first one's description: ``execute_bash`` ``{"command"}``,
  ``execute_ipython_cell`` ``{"code"}`` and calls marked with a language become
  ``code_action``, every other call an ``api_action``;
- an ``agent`` step without calls -> a ``message_action`` (``reasoning_content`` kept);
- ``observation.results`` -> ``text_observation`` from the environment (or a web /
  image observation), linked to its call by ``tool_call_id``.

``extra.adp`` written by ``ember convert --to atif`` restores what ATIF has no field for,
so ADP -> ATIF -> ADP keeps ids, event classes and content. ``agent.tool_definitions``
become the trajectory's ``tools``; the id comes from ``session_id`` by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from ember.adp.mapping import (BaseMapping, ConvertError, get_field, mark_final, option,
                               record_details, record_id, typed)
from ember.adp.model import (api_action, code_action, image_observation, message_action,
                             text_observation, trajectory, web_observation)

CODE_TOOLS = {"execute_bash": ("bash", "command"), "execute_ipython_cell": ("python", "code")}


@dataclass
class Mapping(BaseMapping):
    id: str = option("session_id", "Field holding the trajectory id (ATIF v1.7 may use "
                                   "trajectory_id).", reads="template")
    steps: str = option("steps", "Field holding the list of steps.", reads="path")

    def consumed(self) -> frozenset[str]:
        return super().consumed() | ATIF_FIELDS

    def turn_keys(self):
        return self.steps, STEP_FIELDS


# What the reader takes from a trajectory and from each step.
ATIF_FIELDS = frozenset(("schema_version", "agent", "extra"))
STEP_FIELDS = frozenset(("step_id", "source", "message", "reasoning_content", "tool_calls",
                         "observation", "extra"))


def _adp(obj: dict) -> dict:
    extra = obj.get("extra")
    adp = extra.get("adp") if isinstance(extra, dict) else None
    return adp if isinstance(adp, dict) else {}


def _parts(content, where: str) -> tuple[str, list[dict]]:
    """ATIF text or content parts -> (text, image parts)."""
    if content is None or isinstance(content, str):
        return content or "", []
    typed(content, list, where)
    texts, images = [], []
    for i, part in enumerate(content):
        typed(part, dict, f"{where}[{i}]")
        if part.get("type") == "text":
            texts.append(part.get("text") or "")
        elif part.get("type") == "image":
            source = part.get("source")
            if not isinstance(source, dict) or not isinstance(source.get("path"), str):
                raise ConvertError("missing-field", f"{where}[{i}] image has no source.path")
            images.append(source)
        else:
            raise ConvertError("unknown-content", f"{where}[{i}].type = {part.get('type')!r}")
    return "\n".join(texts), images


def _call(call: dict, description: str | None, reasoning: str | None, where: str) -> dict:
    typed(call, dict, where)
    name = typed(get_field(call, "function_name"), str, f"{where}.function_name")
    args = call.get("arguments") or {}
    typed(args, dict, f"{where}.arguments")
    meta = _adp(call)
    cid = call.get("tool_call_id")
    cid = str(cid) if cid is not None and not meta.get("id_added") else None
    description = meta.get("description", description)
    reasoning = meta.get("reasoning_content", reasoning)
    language = meta.get("language")
    if language is None and meta.get("class_") != "api_action" and name in CODE_TOOLS \
            and set(args) == {CODE_TOOLS[name][1]}:
        language = CODE_TOOLS[name][0]
    if language is not None:
        arg = CODE_TOOLS.get(name, (None, "code"))[1]
        if arg not in args:
            arg = "code"
        code = args.get(arg, "")
        extra = {k: v for k, v in args.items() if k != arg}  # the code tool's other arguments
        event = code_action(language, typed(code, str, f"{where}.arguments"), description,
                            tool_call_id=cid, reasoning_content=reasoning, kwargs=extra or None)
    else:
        event = api_action(name, args, description, tool_call_id=cid, reasoning_content=reasoning)
    if meta.get("reward") is not None:
        event["reward"] = meta["reward"]
    return event


def _result(result: dict, where: str) -> list[dict]:
    typed(result, dict, where)
    meta = _adp(result)
    cid = result.get("source_call_id", meta.get("tool_call_id"))
    cid = str(cid) if cid is not None and not meta.get("id_added") else None
    text, images = _parts(result.get("content"), f"{where}.content")
    cls = meta.get("class_", "image_observation" if images and not text else "text_observation")
    if cls == "web_observation":
        page = meta.get("page", "axtree")
        fields = {"html": meta.get("html"), "axtree": None}
        fields[page] = text
        event = web_observation(**fields, url=meta.get("url"),
                                viewport_size=meta.get("viewport_size"),
                                image_observation=meta.get("image_observation"), tool_call_id=cid)
    elif cls == "image_observation":
        path = images[0]["path"] if images else text
        event = image_observation(path, meta.get("source", "environment"),
                                  annotations=meta.get("annotations"), tool_call_id=cid)
    else:
        event = text_observation(text, meta.get("source", "environment"), name=meta.get("name"),
                                 tool_call_id=cid)
    if meta.get("reward") is not None:
        event["reward"] = meta["reward"]
    extra_images = images if cls == "text_observation" else []
    return [event] + [image_observation(i["path"], "environment", tool_call_id=cid)
                      for i in extra_images]


def _step(step: dict, where: str) -> list[dict]:
    typed(step, dict, where)
    source = step.get("source")
    meta = _adp(step)
    text, images = _parts(step.get("message"), f"{where}.message")
    events: list[dict] = []
    if source == "user":
        if text or not images:
            events.append(text_observation(text, "user", name=meta.get("name")))
        for image in images:
            events.append(image_observation(image["path"], "user",
                                            annotations=meta.get("annotations")))
    elif source == "system":
        if text:
            events.append(text_observation(text, "user", name="system"))
    elif source == "agent":
        calls = step.get("tool_calls") or []
        typed(calls, list, f"{where}.tool_calls")
        reasoning = step.get("reasoning_content")
        if calls:
            for i, call in enumerate(calls):
                events.append(_call(call, (text or None) if i == 0 else None,
                                    reasoning if i == 0 else None,
                                    f"{where}.tool_calls[{i}]"))
        elif meta.get("class_") == "text_observation":
            events.append(text_observation(text, "agent", name=meta.get("name")))
        else:
            answer = meta.get("answer")
            events.append(message_action(
                text, meta.get("description"), final=bool(meta.get("final")),
                answer=str(answer) if answer is not None else None, reasoning_content=reasoning))
    else:
        raise ConvertError("unknown-source", f"{where}.source = {source!r}")
    if events and meta.get("reward") is not None:
        events[-1]["reward"] = meta["reward"]
    observation = step.get("observation")
    if observation is not None:
        typed(observation, dict, f"{where}.observation")
        results = typed(observation.get("results") or [], list, f"{where}.observation.results")
        for i, result in enumerate(results):
            events += _result(result, f"{where}.observation.results[{i}]")
    return events


def converter(mapping: Mapping):
    def convert(record: dict) -> dict:
        steps = typed(get_field(record, mapping.steps), list, f"'{mapping.steps}'")
        events = [e for i, step in enumerate(steps) for e in _step(step, f"steps[{i}]")]
        if not events:
            raise ConvertError("empty-trajectory", "the ATIF trajectory has no steps with content")
        meta = _adp(record)
        details = dict(meta.get("details") or {})
        details.update(record_details(record, mapping))
        agent = record.get("agent")
        tools = agent.get("tool_definitions") if isinstance(agent, dict) else None
        mark_final(events, mapping)
        return trajectory(record_id(record, mapping), events, details,
                          tools=tools if isinstance(tools, list) else None)

    return convert
